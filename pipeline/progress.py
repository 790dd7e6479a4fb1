"""Progress and notes on stderr: one line per step with its elapsed time.

Quiet when CLUSTER_IMPACT_QUIET=1 (tests). Never writes to stdout, so outputs that are
piped stay clean.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager


def _quiet() -> bool:
    return os.environ.get("CLUSTER_IMPACT_QUIET") == "1"


def note(msg: str) -> None:
    if not _quiet():
        print(f"[cluster-impact] {msg}", file=sys.stderr, flush=True)


@contextmanager
def step(label: str):
    t0 = time.perf_counter()
    note(f"{label} ...")
    yield
    note(f"{label} done in {time.perf_counter() - t0:.1f}s")
