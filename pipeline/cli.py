"""The ``cluster-impact`` command.

    cluster-impact run          --params params.yaml   # every stage in order, then publish each format
    cluster-impact ingest       --params params.yaml
    cluster-impact build_groups --params params.yaml
    cluster-impact estimate     --params params.yaml
    cluster-impact report       --params params.yaml   # renders the documents into data/report/
    cluster-impact publish      --params params.yaml --format html   # -> reports/report.html
    cluster-impact input        --params params.yaml --name firms    # fingerprint of data.firms
    cluster-impact check        --params params.yaml   # validate params and input headers; writes nothing
    cluster-impact simulate     --firms 2500 --seed 1 --out data/raw   # the sample generator
    cluster-impact init         --firms F --membership M [--out params.yaml]   # propose params from your files

Exit codes (DESIGN.md §3.5): 0 ok, 2 bad input data, 3 disclosure blocked, 4 design cannot be
estimated, 5 bad or unsafe configuration, 6 the environment prevents the run (an output
location blocked by a file or not writable, a full disk, another run holding the project lock
``.cluster-impact.lock``); 1 for an unexpected internal error (a bug: please report it with the
traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

from models.errors import ClusterImpactError

STAGES = ("ingest", "build_groups", "estimate", "report")


def _run_stage(name: str, params_path: Path, *args: str) -> None:
    from .config import load_params
    from .progress import note

    params = load_params(params_path)
    module = importlib.import_module(f"pipeline.stages.{name}")
    t0 = time.perf_counter()
    what = f"{name} {' '.join(args)}".strip()
    note(f"stage {what}: start")
    module.run(params, *args)
    note(f"stage {what}: done in {time.perf_counter() - t0:.1f}s")


def _formats(params_path: Path) -> list[str]:
    from .config import load_params

    return list(load_params(params_path)["report"]["formats"] or [])


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def pinned_environment() -> dict[str, str]:
    """The variables the CLI fixes before numpy loads, so that a run is byte-identical
    whatever the machine's core count, BLAS kernel or SIMD width (README: Reproducibility).

    * ``PYTHONHASHSEED=0``: string hashing is randomised per process by default, and a
      backend that iterates over a set of names (pyfixest orders its fixed effects this way)
      then sums in a different order from run to run.
    * ``OPENBLAS_NUM_THREADS=1`` (and ``MKL_NUM_THREADS``): a multithreaded BLAS splits a
      product's work differently with 1 and 2 threads, and the edge micro-kernels round
      differently from the full ones, so ``R^-1 R^-T``, ``Q'y`` and a GMM moment vector
      changed in the last bits with the thread count, and an iterative solver (the ACF
      production function) amplified that to 1e-11 in the elasticities.
    * ``OPENBLAS_CORETYPE=Haswell`` on x86-64 CPUs with AVX2 and FMA (x86-64-v3): OpenBLAS
      otherwise picks a kernel per CPU model (Haswell, SkylakeX, Zen, ...), and kernels
      accumulate in different orders and with or without FMA.
    * ``NPY_DISABLE_CPU_FEATURES``: numpy's AVX-512 loops (exp, log, reductions) are
      switched off so that every x86-64-v3 machine runs the same AVX2 loops.

    What can still differ: a machine without AVX2/FMA (pre-2013 x86, or another
    architecture) runs other kernels and may differ in the last bits; engine duckdb/spark
    sum in parallel.
    """
    want = {"PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= _cpu_flags():
        want["OPENBLAS_CORETYPE"] = "Haswell"
        want["NPY_DISABLE_CPU_FEATURES"] = "X86_V4 AVX512_ICL AVX512_SPR"
    return want


def _pin_environment(argv: list[str]) -> None:
    """Re-execute once with :func:`pinned_environment` unless it is already in force."""
    if os.environ.get("CLUSTER_IMPACT_NO_REEXEC") == "1":
        return
    want = pinned_environment()
    if all(os.environ.get(k) == v for k, v in want.items()):
        return
    os.environ.update(want)
    os.execv(sys.executable, [sys.executable, "-m", "pipeline", *argv])


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if from_command_line:
        _pin_environment(argv)
    if argv and argv[0] == "simulate":
        simulate = importlib.import_module("pipeline.simulate")  # by name, like the stages: not a stage's code

        return _guard(lambda: simulate.main(argv[1:]) or 0)

    parser = argparse.ArgumentParser(prog="cluster-impact", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {"run": "all stages in order (ingest, build_groups, estimate, report, publish)",
             "input": "fingerprint one input of data: (DVC's input@<name> stages)",
             "publish": "copy one rendered document to reports/ (DVC's publish@<format> stages)"}
    helps["check"] = "validate params.yaml and the input files' headers before any stage runs (writes nothing)"
    for name in ("run", *STAGES, "build-groups", "input", "publish", "check"):
        p = sub.add_parser(name, help=helps.get(name, f"the {name} stage"))
        p.add_argument("--params", default="params.yaml", type=Path, help="params file (default: params.yaml)")
        if name == "input":
            p.add_argument("--name", required=True, help="the key under data: (firms, membership, deflators, ...)")
        if name == "publish":
            p.add_argument("--format", required=True, choices=("html", "pdf"), help="one of report.formats")
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
        init = importlib.import_module("pipeline.init")  # by name, like simulate: not a stage's code

        return _guard(lambda: init.main(args))

    if args.command == "check":
        def check() -> int:
            from .config import load_params

            ingest = importlib.import_module("pipeline.ingest")  # by name: not a code dependency of every stage
            params = load_params(args.params)
            summary = ingest.check_inputs(params)
            f = summary["firms"]
            option_columns = importlib.import_module("pipeline.option_columns")  # by name, like ingest
            option_columns.check_columns(params, f["panel_columns"], set(f["panel_numeric"]), f"the panel built from {f['path']}")
            print(f"cluster-impact check: {args.params} is valid; {f['path']}: {f['columns']} columns, "
                  f"{len(f['mapped'])} mapped, {len(f['passthrough'])} of your own in use ({', '.join(f['passthrough']) or 'none'}); "
                  + "; ".join(f"{k}: {v.get('path') or 'from_panel ' + v.get('from_panel', '')} ok" for k, v in summary.items() if k != "firms"))
            return 0

        return _guard(check)

    def go() -> int:
        from .config import load_params
        from .lock import project_lock

        command = args.command.replace("-", "_")
        root = load_params(args.params).root  # a bad params file is exit 5 before the lock is taken
        with project_lock(root, command):
            if command == "input":
                _run_stage("input", args.params, args.name)
            elif command == "publish":
                _run_stage("publish", args.params, args.format)
            else:
                for stage in STAGES if command == "run" else (command,):
                    _run_stage(stage, args.params)
                if command == "run":
                    for fmt in _formats(args.params):
                        _run_stage("publish", args.params, fmt)
        return 0

    return _guard(go)


def _guard(fn) -> int:
    try:
        return int(fn())
    except ClusterImpactError as exc:
        print(f"cluster-impact: error (exit {exc.exit_code}): {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        from .io import environment_error

        env = environment_error(exc, Path(exc.filename or "."), "read or write")
        if env is None:
            raise
        print(f"cluster-impact: error (exit {env.exit_code}): {env}", file=sys.stderr)
        return env.exit_code
    except KeyboardInterrupt:
        print("cluster-impact: interrupted; outputs of the interrupted stage were not written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
