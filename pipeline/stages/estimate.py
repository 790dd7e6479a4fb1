"""Stage 3, estimate: processed panel -> data/estimates/<outcome>-<estimator>.{parquet,json}."""

from __future__ import annotations

from ..config import Params
from ..estimate import estimate_all, write_results
from ..paths import Paths


def run(params: Params) -> None:
    paths = Paths.of(params)
    write_results(estimate_all(paths.processed_panel, params), paths.estimates_dir)
