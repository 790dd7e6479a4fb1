"""The ``cluster-impact`` command.

    cluster-impact run          --params params.yaml   # all four stages in order
    cluster-impact ingest       --params params.yaml
    cluster-impact build_groups --params params.yaml
    cluster-impact estimate     --params params.yaml
    cluster-impact report       --params params.yaml
    cluster-impact simulate     --firms 2500 --seed 1 --out data/raw   # the sample generator
    cluster-impact init         --firms F --membership M [--out params.yaml]   # propose params from your files

Exit codes (DESIGN.md §3.5): 0 ok, 2 bad input data, 3 disclosure blocked, 4 design cannot be
estimated, 5 bad or unsafe configuration; 1 for an unexpected internal error (a bug: please
report it with the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from models.errors import ClusterImpactError

STAGES = ("ingest", "build_groups", "estimate", "report")


def _run_stage(name: str, params_path: Path) -> None:
    from .config import load_params
    from .progress import note

    params = load_params(params_path)
    module = importlib.import_module(f"pipeline.stages.{name}")
    t0 = time.perf_counter()
    note(f"stage {name}: start")
    module.run(params)
    note(f"stage {name}: done in {time.perf_counter() - t0:.1f}s")


def _pin_hash_seed(argv: list[str]) -> None:
    """Re-execute with PYTHONHASHSEED=0 unless it is already pinned.

    String hashing is randomised per process by default, and a backend that iterates over a
    set of names (pyfixest orders its fixed effects this way) then sums in a different order
    from run to run: the last bits of an estimate changed between two identical runs. Pinning
    the hash seed makes every run byte-identical (DESIGN.md: same data and params, same bytes).
    """
    import os

    if os.environ.get("PYTHONHASHSEED") == "0" or os.environ.get("CLUSTER_IMPACT_NO_REEXEC") == "1":
        return
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, "-m", "pipeline", *argv])


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if from_command_line:
        _pin_hash_seed(argv)
    if argv and argv[0] == "simulate":
        from .simulate import main as simulate_main

        return _guard(lambda: simulate_main(argv[1:]) or 0)

    parser = argparse.ArgumentParser(prog="cluster-impact", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", *STAGES, "build-groups"):
        p = sub.add_parser(name, help="all stages in order" if name == "run" else f"the {name} stage")
        p.add_argument("--params", default="params.yaml", type=Path, help="params file (default: params.yaml)")
    sub.add_parser("simulate", help="generate a synthetic economy (see: cluster-impact simulate --help)")
    p = sub.add_parser("init", help="propose a commented params.yaml from your firm panel and membership register",
                       description="Read the headers and a sample of rows of your files, propose the column mapping, year window, "
                       "derived outcomes and estimators, and write a commented params file (never over an existing file: exit 5).")
    p.add_argument("--firms", required=True, type=Path, help="the firm-year panel (csv, parquet, dta, xlsx)")
    p.add_argument("--membership", required=True, type=Path, help="the membership register (one row per firm x initiative spell)")
    p.add_argument("--deflators", type=Path, help="optional sector-year price indices (columns sector, year, deflator)")
    p.add_argument("--out", default="params.yaml", type=Path, help="params file to write (default: params.yaml; never overwritten)")
    p.add_argument("--column", action="append", metavar="NAME=COLUMN", help="force a firm-file mapping, e.g. --column year=jahr (repeatable)")
    p.add_argument("--membership-column", action="append", metavar="NAME=COLUMN", help="force a register mapping, e.g. --membership-column join_year=start")
    p.add_argument("--sample-rows", type=int, default=2000, help="rows read to check the columns' types (default 2000)")
    args = parser.parse_args(argv)
    if args.command == "init":
        from .init import main as init_main

        return _guard(lambda: init_main(args))

    def go() -> int:
        command = args.command.replace("-", "_")
        for stage in STAGES if command == "run" else (command,):
            _run_stage(stage, args.params)
        return 0

    return _guard(go)


def _guard(fn) -> int:
    try:
        return int(fn())
    except ClusterImpactError as exc:
        print(f"cluster-impact: error (exit {exc.exit_code}): {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cluster-impact: interrupted; outputs of the interrupted stage were not written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
