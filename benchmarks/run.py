"""Time cluster-impact against its peers, side by side in one run.

    uv run --group bench python benchmarks/run.py --sizes 10000 100000 1000000 --years 20

For each size the project's generator (pipeline.simulate) writes a panel of N firms x T years;
then every task runs in a fresh Python process (so memory is that task's own: peak resident
set size from the OS, including loading the panel) with a time limit. Writes
benchmarks/out/results.json and BENCHMARKS.md (machine line, wall time, peak memory, ratios
peer / ours, and whether the headline numbers agree).

Nothing here is part of the test suite: speed is shown by running this, never by timed
assertions in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"

# (family, ours, peers)
FAMILIES = [
    ("group-by floor", "floor_groupby", ["floor_duckdb"]),
    ("CS unconditional", "ours_cs", ["ours_cs_duckdb", "moderndid_cs", "csdid_cs", "differences_cs"]),
    ("CS doubly robust, 1 covariate", "ours_cs_dr", ["moderndid_cs_dr", "csdid_cs_dr", "differences_cs_dr"]),
    ("TWFE", "ours_twfe", ["ours_twfe_duckdb", "pyfixest_twfe"]),
    ("event study", "ours_event_study", ["ours_event_study_duckdb", "pyfixest_event_study"]),
    ("Poisson FE", "ours_ppml", ["pyfixest_fepois"]),
    ("NN matching 1:1 (firms)", "ours_matching", ["r_matchit"]),
]


def make_panel(n_firms: int, years: int, seed: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"panel_{n_firms}_{years}_{seed}.parquet"
    if path.exists():
        return path
    code = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
import numpy as np, pandas as pd
from pipeline.simulate import simulate_economy
e = simulate_economy(n_firms={n_firms}, years=(2003, 2003 + {years} - 1), seed={seed})
f = e.firms
ids = pd.factorize(f["firm_id"], sort=True)[0].astype("int64")
mem = e.membership.groupby("firm_id")["join_year"].min()
ft = f["firm_id"].map(mem).fillna(0).astype("int64")
ft = ft.where((ft > 2003) & (ft <= 2003 + {years} - 1), 0)
y = np.log(f["value_added"].to_numpy(float) / f["employees"].to_numpy(float))
d = pd.DataFrame({{"firm_id": ids, "year": f["year"].astype("int64").to_numpy(), "first_treat": ft.to_numpy(), "y": y,
                  "count": f["patent_applications"].astype("int64").to_numpy()}})
d = d[np.isfinite(d["y"])]
d["x"] = d.groupby("firm_id")["y"].transform("size") * 0 + np.log(f.loc[d.index, "employees"].to_numpy(float)).clip(-10, 20)
d["x"] = d.groupby("firm_id")["x"].transform("first")
d["treated"] = (d["first_treat"] > 0).astype("int64")
d["post"] = (d["treated"].eq(1) & (d["year"] >= d["first_treat"])).astype("int64")
d["rel_time"] = (d["year"] - d["first_treat"]).where(d["first_treat"] > 0).astype("Int64")
d = d.reset_index(drop=True)
d.to_parquet({str(path)!r})
print(len(d))
"""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    print(f"generated {path.name} in {time.perf_counter() - t0:.1f}s", flush=True)
    return path


def measure_peak(name, panel, timeout, mem_gib):
    """Run under /usr/bin/time-like accounting: a wrapper child reports its own child's maxrss."""
    code = f"""
import resource, subprocess, sys, json, time, os
t0 = time.perf_counter()
lim = int({mem_gib} * 2**30)
p = subprocess.run([sys.executable, {str(HERE / '_tasks.py')!r}, {name!r}, {str(panel)!r}], capture_output=True, text=True,
                   timeout={timeout}, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (lim, lim)),
                   env=dict(os.environ, PYTHONPATH={str(ROOT)!r}))
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
res = {{"status": "ok" if p.returncode == 0 else "error", "peak_rss_gib": ru.ru_maxrss / 2**20, "wall_process": time.perf_counter() - t0}}
for line in p.stdout.splitlines():
    if line.startswith("RESULT "):
        res.update(json.loads(line[7:]))
if p.returncode != 0:
    res["error"] = (p.stderr.strip().splitlines() or ["?"])[-1][:300]
print(json.dumps(res))
"""
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout + 30)
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        res = {"status": "timeout"}
    except (json.JSONDecodeError, IndexError):
        res = {"status": "error", "error": "subprocess.TimeoutExpired" if "TimeoutExpired" in p.stderr else p.stderr.strip()[-300:]}
    res["task"] = name
    return res


def machine_line() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, {platform.system()}"


def render(results: dict, years: int, timeout: float | None = None, mem_gib: float | None = None) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine_line()}. Panels: N firms x {years} years from `pipeline.simulate` (seed 1).",
        "Produced by `uv run --group bench python benchmarks/run.py`; each task in a fresh process;",
        "time = the estimator call (panel already loaded; since the runs of 2026-11-22 16:10 UTC the task's modules are",
        "imported before the clock starts, for ours and the peers alike -- earlier runs included 1-2 s of imports per task);",
        "memory = peak resident set of the process,",
        "loading included (tasks marked duckdb read the Parquet file themselves and never load the panel).",
        "Ratio = task time / the family's first row (ours, in memory); > 1 means the first row is faster.",
        "Rows within a family are measured in the same run (column run); families may come from different runs (`--merge`).",
        f"Each task ran under a {timeout:g} s time limit and a {mem_gib:g} GiB address-space limit (RLIMIT_AS, so a peer can fail"
        " to allocate before its resident memory reaches the limit); a failed or timed-out peer means its time is more than"
        " the limit or its memory more than the machine gives it." if timeout and mem_gib else "",
        "",
    ]
    for size, fams in results.items():
        lines += [f"## {int(size):,} firms", "", "| family | task | status | seconds | peak GiB | ratio vs ours | headline | run |", "|---|---|---|---|---|---|---|---|"]
        for fam, rows in fams.items():
            ours = rows[0]
            for r in rows:
                sec = r.get("seconds")
                ratio = ""
                if r is not ours and sec and ours.get("seconds"):
                    ratio = f"{sec / ours['seconds']:.1f}x"
                head = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items() if k not in ("task", "status", "seconds", "peak_rss_gib", "wall_process", "error", "task_seconds", "run")}
                status = r["status"] + (f": {r['error']}" if r.get("error") else "")
                lines.append(f"| {fam} | {r['task']} | {status[:80]} | {sec:.2f} |" if sec else f"| {fam} | {r['task']} | {status[:80]} | – |")
                lines[-1] += f" {r.get('peak_rss_gib', float('nan')):.2f} | {ratio} | {json.dumps(head)} | {r.get('run', '')} |"
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per task")
    ap.add_argument("--mem-gib", type=float, default=22.0, help="address-space limit per task")
    ap.add_argument("--only", nargs="*", help="families to run (substring match)")
    ap.add_argument("--render-only", action="store_true", help="rewrite BENCHMARKS.md from benchmarks/out/results.json")
    ap.add_argument("--skip-peers-above", type=int, default=None, help="skip peers on sizes above this (they may need hours)")
    ap.add_argument("--merge", action="store_true", help="keep the families of benchmarks/out/results.json not re-measured by this run (each row says when it ran)")
    args = ap.parse_args(argv)
    if args.render_only:
        results = json.loads((OUT / "results.json").read_text())
        (ROOT / "BENCHMARKS.md").write_text(render(results, args.years, args.timeout, args.mem_gib))
        return 0
    results: dict = {}
    if args.merge and (OUT / "results.json").exists():
        results = json.loads((OUT / "results.json").read_text())
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for n in args.sizes:
        panel = make_panel(n, args.years, args.seed)
        results.setdefault(str(n), {})
        for fam, ours, peers in FAMILIES:
            if args.only and not any(o in fam for o in args.only):
                continue
            tasks = [ours] + ([] if args.skip_peers_above and n > args.skip_peers_above else peers)
            rows = []
            for t in tasks:
                r = measure_peak(t, panel, args.timeout, args.mem_gib)
                r["run"] = stamp
                print(f"{n:>9,} {fam:<32} {t:<22} {r['status']:<8} {r.get('seconds', float('nan')):8.2f}s {r.get('peak_rss_gib', float('nan')):6.2f} GiB", flush=True)
                rows.append(r)
            results[str(n)][fam] = rows
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
        (ROOT / "BENCHMARKS.md").write_text(render(results, args.years, args.timeout, args.mem_gib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
