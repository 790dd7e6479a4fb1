# Reference values for models/did/_sdid.py (synthetic DiD), computed with R synthdid
# (synth-inference/synthdid 0.0.9, git commit 70c1ce3, installed into a temporary library;
# not on CRAN/Debian) on its own california_prop99 data (tests/data/california_prop99.csv).
# Output: tests/reference/synthdid_prop99.json
#   Rscript tests/reference/scripts/synthdid_prop99.R  (with R_LIBS pointing at that library)
# Install (its one dependency, mvtnorm, from Debian):
#   apt-get install -y r-base-core r-cran-mvtnorm r-cran-jsonlite
#   git clone https://github.com/synth-inference/synthdid && git -C synthdid checkout 70c1ce3
#   mkdir -p /tmp/Rlib-synthdid && R CMD INSTALL --no-docs -l /tmp/Rlib-synthdid synthdid
#   R_LIBS=/tmp/Rlib-synthdid Rscript tests/reference/scripts/synthdid_prop99.R
# Records: the SDID estimate (published -15.6, Arkhangelsky et al. 2021 AER Table 1), the unit
# and time weights, the noise level and zetas, the DiD and SC estimates, the jackknife SE of a
# two-treated-unit design (placebo-free, deterministic), and the placebo SE with the exact
# permutations R drew (set.seed(1); placebo_se calls sample(1:N0) once per replication and
# nothing else draws), so the Python port can be fed the same draws.
suppressPackageStartupMessages({library(synthdid); library(jsonlite)})
df <- read.csv("tests/data/california_prop99.csv", sep = ";")
setup <- panel.matrices(df)
Y <- setup$Y; N0 <- setup$N0; T0 <- setup$T0
est <- synthdid_estimate(Y, N0, T0)
w <- attr(est, "weights"); o <- attr(est, "opts")
reps <- 200L
set.seed(1); se_placebo <- sqrt(vcov(est, method = "placebo", replications = reps))
set.seed(1); perms <- t(replicate(reps, sample(1:N0)))
# a design with two treated units for the jackknife: the last control (Wyoming, as
# panel.matrices orders controls alphabetically) moved into the treated block beside California
Y2 <- Y[c(1:(N0 - 1), N0, N0 + 1), ]
est2 <- synthdid_estimate(Y2, N0 - 1, T0)
se_jk2 <- sqrt(vcov(est2, method = "jackknife"))
res <- list(
  source = paste0("R ", R.version$major, ".", R.version$minor, ", synthdid ", packageVersion("synthdid"),
                  " (git 70c1ce3); script tests/reference/scripts/synthdid_prop99.R"),
  units = rownames(Y), years = as.integer(colnames(Y)), N0 = N0, T0 = T0,
  estimate = c(est), omega = w$omega, lambda = w$lambda,
  noise_level = sd(apply(Y[1:N0, 1:T0], 1, diff)), zeta_omega = o$zeta.omega, zeta_lambda = o$zeta.lambda,
  did = c(did_estimate(Y, N0, T0)), sc = c(sc_estimate(Y, N0, T0)),
  placebo_replications = reps, placebo_seed = 1L, se_placebo = c(se_placebo),
  placebo_perms = perms,  # 1-based control indices, one row per replication
  two_treated = list(treated = rownames(Y2)[N0:(N0 + 1)], estimate = c(est2), se_jackknife = c(se_jk2),
                     omega = attr(est2, "weights")$omega, lambda = attr(est2, "weights")$lambda)
)
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = FALSE), "tests/reference/synthdid_prop99.json")
