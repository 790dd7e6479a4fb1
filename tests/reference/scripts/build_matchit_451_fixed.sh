#!/usr/bin/env bash
# Build the reference MatchIt used by matchit_lalonde.R.
#
# Why: Debian bookworm ships r-cran-matchit 4.5.1, whose propensity-score nearest-neighbour
# code (src/nn_matchC_vec.cpp) has two bugs fixed upstream in MatchIt 4.5.3:
#   1. `abs()` on a double resolves to the integer abs, so |p_i - p_j| is 0 for every pair of
#      propensity scores: calipers never bind and the left neighbour (smaller score) is always
#      taken instead of the nearer one (upstream commit 4b5b2f8, "std::abs").
#   2. with replace=TRUE and ratio>1 the "already matched to this treated unit" check compares a
#      0-based index with the 1-based match matrix, so a treated unit can get the same control
#      twice (NEWS 4.5.3, issue #159).
# MatchIt >= 4.5.3 needs chk and rlang >= 1.1, which are not installable here, so we build
# MatchIt 4.5.1 (git commit 80f32f3 of github.com/kosukeimai/MatchIt) with exactly those two
# upstream fixes into a private library; nothing else changes.
#
# Usage: bash tests/reference/scripts/build_matchit_451_fixed.sh /path/to/MatchIt-git-checkout LIBDIR
set -euo pipefail
SRC=${1:?path to a git checkout of kosukeimai/MatchIt}
LIB=${2:?library directory to install into}
WORK=$(mktemp -d)
git -C "$SRC" archive --prefix=MatchIt/ 80f32f3 | tar -x -C "$WORK"
F="$WORK/MatchIt/src/nn_matchC_vec.cpp"
sed -i -e 's/\babs(/std::abs(/g' -e 's/check_in(d_ord\[k\], row)/check_in(d_ord[k] + 1, row)/' "$F"
sed -i 's/^Version: 4.5.1$/Version: 4.5.1.9001/' "$WORK/MatchIt/DESCRIPTION"
mkdir -p "$LIB"
R CMD INSTALL --no-docs --no-multiarch --no-test-load -l "$LIB" "$WORK/MatchIt"
