"""Hostile environments and messy inputs through the REAL console command (issue 21):
every case gets its documented exit code (2 bad input, 3 disclosure block, 4 design cannot
be estimated, 6 the environment prevents the run), a message naming the file, key or
column, the count and the fix, no traceback, and no partial or stale output.

Environment cases use real mechanisms, not mocks: a file where a folder should be, a
read-only filesystem (a ``ro`` tmpfs: chmod does not stop root, which the tests run as),
a full disk (a 64 KiB tmpfs), a second run started while the first holds the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.cli import pinned_environment  # the environment the CLI re-executes into
from tests._project import cli, copy_project, make_project, output_files

ENV = dict(os.environ, CLUSTER_IMPACT_QUIET="1", MPLBACKEND="Agg", DVC_NO_ANALYTICS="1")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    make_project(root, n_firms=200, seed=5)
    return root


@pytest.fixture(scope="module")
def estimated(sample, tmp_path_factory):
    """The sample after ingest, build_groups and estimate (copied per test that needs it)."""
    root = copy_project(sample, tmp_path_factory.mktemp("hostile_est"))
    for stage in ("ingest", "build_groups", "estimate"):
        cli(stage, "--params", "params.yaml", cwd=root, check=True)
    return root


def _copy_estimated(estimated: Path, dst: Path) -> Path:
    shutil.copytree(estimated, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".cluster-impact.lock"))
    return dst


def _params(root: Path, mutate) -> None:
    p = yaml.safe_load((root / "params.yaml").read_text())
    mutate(p)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def _csv(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "data/raw" / name, dtype=str, keep_default_na=False)


def _handled(res, code: int, needles: list[str]) -> None:
    err = res.stderr
    assert res.returncode == code, f"exit {res.returncode}, expected {code}\n{err[-3000:]}"
    assert "traceback" not in err.lower(), err[-3000:]
    for n in needles:
        assert n.lower() in err.lower(), f"{n!r} not in message:\n{err[-3000:]}"


def _all_files(base: Path) -> list[str]:
    """Every file and folder under ``base``, hidden temporaries included."""
    return sorted(str(p.relative_to(base)) for p in base.rglob("*")) if base.exists() else []


def _root_can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def _tmpfs(where: Path, options: str):
    """A small real filesystem mounted at ``where`` (root only)."""
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


# ------------------------------------------------------------------------ environment: exit 6
def test_file_where_interim_folder_should_be(sample, tmp_path):
    root = copy_project(sample, tmp_path)
    (root / "data/interim").write_text("not a folder\n")
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    _handled(res, 6, [str(root / "data/interim"), "is a file where the output folder interim/ should be", "Fix: move or delete"])
    assert (root / "data/interim").read_text() == "not a folder\n"  # untouched
    assert not [f for f in _all_files(root / "data") if not f.startswith("raw") and f != "interim"]


def test_file_where_estimates_folder_should_be(estimated, tmp_path):
    """data/estimates is swapped in as a directory: a file in its place is named, not a crash."""
    root = _copy_estimated(estimated, tmp_path)
    shutil.rmtree(root / "data/estimates")
    (root / "data/estimates").write_text("x")
    res = cli("estimate", "--params", "params.yaml", cwd=root)
    _handled(res, 6, [str(root / "data/estimates"), "is a file where the output folder estimates/ should be", "Fix"])
    assert (root / "data/estimates").read_text() == "x"
    assert not [f for f in os.listdir(root / "data") if f.startswith(".estimates")]  # no temporary left


@pytest.mark.skipif(not _root_can_mount(), reason="needs root to mount a read-only tmpfs (chmod does not stop root)")
def test_read_only_reports_folder(estimated, tmp_path):
    root = _copy_estimated(estimated, tmp_path)
    before = output_files(root)
    with _tmpfs(root / "reports", "ro,size=1m"):
        res = cli("report", "--params", "params.yaml", cwd=root)
        _handled(res, 6, [f"{root / 'reports'}", "read-only", "Fix: make the folder writable"])
        assert _all_files(root / "reports") == []
    assert output_files(root) == before


def test_read_only_reports_folder_as_non_root(estimated, request):
    """The same as an ordinary user (setpriv to nobody), where chmod a-w does stop writes."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to switch to an unprivileged user with setpriv")
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", "import pipeline.cli"],
                           cwd=Path(__file__).resolve().parents[1], env=dict(ENV, **pinned_environment()), capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run this project's Python: {probe.stderr.strip()[-200:]}")
    # not under pytest's tmp_path: pytest keeps /tmp/pytest-of-<user> at mode 0700 and resets it
    # whenever another xdist worker first asks for a temporary folder, which cut nobody off from
    # the project mid-test (exit 6 "cannot create the lock file" in one CI run)
    root = Path(tempfile.mkdtemp(prefix="cluster-impact-nobody-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    os.chmod(root, 0o755)
    _copy_estimated(estimated, root)
    subprocess.run(["chown", "-R", "65534:65534", str(root)], check=True)
    (root / "reports").mkdir()
    os.chown(root / "reports", 65534, 65534)
    os.chmod(root / "reports", 0o555)
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "pipeline", "report", "--params", "params.yaml"],
        cwd=root, env=dict(ENV, **pinned_environment()), capture_output=True, text=True, timeout=600,
    )
    _handled(res, 6, [f"{root / 'reports'}", "Permission denied", "Fix: make the folder writable"])
    assert _all_files(root / "reports") == []


@pytest.mark.skipif(not _root_can_mount(), reason="needs root to mount a small tmpfs")
@pytest.mark.parametrize("stage,folder", [("ingest", "data/interim"), ("report", "reports")])
def test_full_disk(sample, estimated, tmp_path, stage, folder):
    """ENOSPC on a real 64 KiB filesystem: exit 6 naming the folder; no temporary left."""
    root = _copy_estimated(estimated, tmp_path) if stage == "report" else copy_project(sample, tmp_path)
    if (root / folder).exists():
        shutil.rmtree(root / folder)
    with _tmpfs(root / folder, "size=64k"):
        res = cli(stage, "--params", "params.yaml", cwd=root)
        _handled(res, 6, ["no space left", str(root / folder), "Fix: free disk space"])
        assert _all_files(root / folder) == [], "partial outputs or temporaries left on the full disk"


# ----------------------------------------------------------------------------- lock and race
def _lock_held(root: Path) -> bool:
    path = root / ".cluster-impact.lock"
    if not path.exists():
        return False
    with open(path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def test_second_run_in_same_folder_is_refused_while_first_runs(sample, tmp_path):
    root = copy_project(sample, tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--params", "params.yaml"], cwd=root, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _lock_held(root):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.02)
        second = cli("run", "--params", "params.yaml", cwd=root)
        assert first.poll() is None, "the first run ended before the second started: the test proves nothing"
        _handled(second, 6, ["another cluster-impact run", f"pid {first.pid}", ".cluster-impact.lock", "Fix: wait"])
    finally:
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    # the first run's outputs are complete and no temporary is left anywhere
    assert (root / "reports/report.html").is_file() and (root / "data/estimates/_summary.json").is_file()
    hidden = [f for f in _all_files(root) if Path(f).name.startswith(".") and Path(f).name != ".cluster-impact.lock"]
    assert hidden == []
    # once the first run is over, a new run may start (the lock is released by the kernel)
    assert not _lock_held(root)


def test_live_temporaries_of_another_process_are_never_deleted(sample, tmp_path):
    """A later run removes temporaries of dead processes (a killed run), never those of a live one."""
    root = copy_project(sample, tmp_path)
    interim = root / "data/interim"
    interim.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    try:
        mine = interim / f".panel.parquet.{live.pid}.abcd1234.tmp"
        mine.write_bytes(b"in progress")
        stale = interim / f".panel.parquet.{dead_pid}.efgh5678.tmp"
        stale.write_bytes(b"left by a killed run")
        old_style = interim / ".ingest_flow.json.zz9x.tmp"  # a name without a pid: an older version's
        old_style.write_bytes(b"old")
        res = cli("ingest", "--params", "params.yaml", cwd=root)
        _handled(res, 0, [])
        assert mine.read_bytes() == b"in progress"
        assert not stale.exists() and not old_style.exists()
    finally:
        live.kill()
        live.wait()


# ------------------------------------------------------------------------- plain-text figures
@pytest.mark.parametrize("where", ["labels and cluster ids", "sector codes"])
def test_dollar_and_backslash_are_plain_text_in_figures(sample, tmp_path, where):
    r"""``$\undefinedmacro$`` in report.labels and ``$...$`` cluster ids / sector codes stopped
    matplotlib's mathtext parser; every text is now drawn as it is."""
    root = copy_project(sample, tmp_path)
    hostile = [r"$\undefinedmacro$", "CL$x^$", r"a\b$"]
    if where == "labels and cluster ids":
        mem = _csv(root, "membership.csv")
        ids = sorted(mem["cluster_id"].unique())
        mem["cluster_id"] = mem["cluster_id"].replace(dict(zip(ids, hostile)))
        mem.to_csv(root / "data/raw/membership.csv", index=False)
        if (root / "data/raw/costs.csv").exists():  # the costs name the same initiatives (data.costs)
            costs = _csv(root, "costs.csv")
            costs["initiative"] = costs["initiative"].replace(dict(zip(ids, hostile)))
            costs.to_csv(root / "data/raw/costs.csv", index=False)
        loo_by = "cluster_id"
        labels = {"log_labour_productivity": r"$\undefinedmacro$ productivity", "twfe": r"TWFE $\frac{"}
    else:
        firms = _csv(root, "firms.csv")
        codes = sorted(firms["nace2"].unique())
        firms["nace2"] = firms["nace2"].replace(dict(zip(codes, hostile)))
        firms.to_csv(root / "data/raw/firms.csv", index=False)
        defl = _csv(root, "deflators.csv")
        defl["nace2"] = defl["nace2"].replace(dict(zip(codes, hostile)))
        defl.to_csv(root / "data/raw/deflators.csv", index=False)
        loo_by = "sector"
        labels = {}
    _params(root, lambda p: (p["estimate"].update(outcomes=["log_labour_productivity"], estimators=["twfe", "event_study", "checks"],
                                                  checks={"checks": ["leave_one_out"], "loo_by": loo_by}),
                             p["report"].update(labels=labels)))
    res = cli("run", "--params", "params.yaml", cwd=root)
    _handled(res, 0, [])
    figs = root / "reports/figures"
    loo = pd.read_csv(figs / "leave_one_out-log_labour_productivity.csv", dtype={"left_out": str}, keep_default_na=False)
    assert {h for h in hostile} & set(loo["left_out"]), loo["left_out"].tolist()
    for png in ("leave_one_out-log_labour_productivity.png", "event_study-log_labour_productivity.png", "forest-proportional.png"):
        assert (figs / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if labels:
        assert r"$\undefinedmacro$ productivity" in (root / "reports/report.html").read_text()


# ----------------------------------------------------------------------------------- provenance
def test_provenance_records_the_bytes_ingest_read(estimated, tmp_path):
    root = _copy_estimated(estimated, tmp_path)
    firms = root / "data/raw/firms.csv"
    read = hashlib.md5(firms.read_bytes()).hexdigest()
    flow = json.loads((root / "data/interim/ingest_flow.json").read_text())
    assert flow["inputs"]["firms"] == {"path": "data/raw/firms.csv", "md5": read}
    with open(firms, "a") as fh:  # the file changes after ingest has read it
        fh.write("F999999,2010\n")
    now = hashlib.md5(firms.read_bytes()).hexdigest()
    res = cli("report", "--params", "params.yaml", cwd=root)
    _handled(res, 0, [])
    prov = json.loads((root / "reports/provenance.json").read_text())["data"]
    assert prov["firms"]["md5"] == read and prov["firms"]["read_by"] == "ingest"
    assert prov["firms"]["changed_since_read"] is True and prov["firms"]["current_md5"] == now
    assert "changed_since_read" not in prov["membership"]
    assert prov["membership"]["md5"] == hashlib.md5((root / "data/raw/membership.csv").read_bytes()).hexdigest()
    html = (root / "data/report/report.html").read_text()  # `report` renders; `publish` copies it to reports/
    assert f"{read} (as read; the file changed since, now {now}: rerun the pipeline)" in html


# ----------------------------------------------------------------------------------- disclosure
def test_disclosure_block_removes_the_previous_release(estimated, tmp_path):
    root = _copy_estimated(estimated, tmp_path)
    res = cli("report", "--params", "params.yaml", cwd=root)
    _handled(res, 0, [])
    assert (root / "reports/estimates.csv").is_file() and any((root / "reports/tables").iterdir())
    _params(root, lambda p: p["report"].update(disclosure={"profile": "strict", "on_fail": "block"}))
    res = cli("report", "--params", "params.yaml", cwd=root)
    _handled(res, 3, ["blocks the release", "disclosure.md", "were removed from reports/"])
    assert _all_files(root / "reports") == ["disclosure.json", "disclosure.md"]
    assert json.loads((root / "reports/disclosure.json").read_text())["verdict"] == "block"


# ------------------------------------------------------------------------- misleading messages
def blank_value_added(root):
    f = _csv(root, "firms.csv")
    f["value_added"] = ""
    f.to_csv(root / "data/raw/firms.csv", index=False)


def all_join_2015_not_yet_treated(root):
    mem = _csv(root, "membership.csv").drop_duplicates("firm_id").assign(join_year="2015", leave_year="")
    mem.to_csv(root / "data/raw/membership.csv", index=False)
    f = _csv(root, "firms.csv")
    f[f["firm_id"].isin(set(mem["firm_id"]))].to_csv(root / "data/raw/firms.csv", index=False)
    _params(root, lambda p: p["estimate"].update(control_group="notyettreated", estimators=["cs", "twfe"]))


def one_year_panel(root):
    f = _csv(root, "firms.csv")
    f[f["year"] == "2015"].to_csv(root / "data/raw/firms.csv", index=False)


def header_repeated(root):
    lines = (root / "data/raw/firms.csv").read_text().splitlines(keepends=True)
    (root / "data/raw/firms.csv").write_text("".join(lines[:1000] + [lines[0]] + lines[1000:]))


def constant_outcome(root):
    f = _csv(root, "firms.csv")
    f["exports"] = "250.5"
    f.to_csv(root / "data/raw/firms.csv", index=False)


def covariate_separates_members(root):
    """A covariate of the user's own that only members have: in every (g,t) cell the
    propensity score is ~1 (R did's overlap guard), so every ATT(g,t) is NA."""
    f = _csv(root, "firms.csv")
    members = set(_csv(root, "membership.csv")["firm_id"])
    f["insider"] = f["firm_id"].isin(members).astype(int).astype(str)
    f.to_csv(root / "data/raw/firms.csv", index=False)
    _params(root, lambda p: p["estimate"].update(covariates=["insider"], estimators=["cs"]))


MESSAGES = {
    # name: (mutation, exit code, needles, phrases that must NOT appear, the stage that fails)
    "all-blank value_added": (blank_value_added, 4, ["'log_labour_productivity' has no value in any of", "value_added", "Fix:"],
                              ["no never-member"], "estimate"),
    "every firm joins in 2015, not-yet-treated": (all_join_2015_not_yet_treated, 4, ["all join in 2015", "no never-member firm", "notyettreated", "Fix: include the non-member firms"],
                                                  ["pre-treatment period"], "estimate"),
    "one-year panel": (one_year_panel, 4, ["a single year (2015)", "at least two years", "Fix:"], ["pre-treatment period", "no treated units"], "estimate"),
    "header repeated mid-file": (header_repeated, 2, ["data/raw/firms.csv", "header line is repeated at line 1001", "1 row(s)", "Fix: delete the repeated header"],
                                 ["not numbers"], "ingest"),
    "all ATT(g,t) NA (overlap)": (covariate_separates_members, 4, ["ATT(g,t) cells are NA", "propensity-score logit", "first: (g,t)=(",
                                                                   "Fix: the covariates (insider) nearly determine membership", "est_method: reg"],
                                  ["aggte: all ATT(g,t) are NA", "RuntimeWarning"], "estimate"),
    "constant outcome": (constant_outcome, 4, ["'exports' is the constant 250.5", "rounding noise", "twfe, event_study, cs", "Fix:"], [], "estimate"),
}
FAILS_AT = {"ingest": ["data/interim"], "estimate": ["data/estimates", "reports"]}


@pytest.mark.parametrize("case", list(MESSAGES))
def test_messages_say_what_is_really_wrong(sample, tmp_path, case):
    mutate, code, needles, absent, stage = MESSAGES[case]
    root = copy_project(sample, tmp_path)
    mutate(root)
    res = cli("run", "--params", "params.yaml", cwd=root)
    _handled(res, code, needles)
    for phrase in absent:
        assert phrase not in res.stderr, f"misleading {phrase!r} in:\n{res.stderr[-2000:]}"
    for folder in FAILS_AT[stage]:
        assert _all_files(root / folder) == [], f"{folder}: {_all_files(root / folder)}"


def test_constant_outcome_is_listed_under_on_error_skip(sample, tmp_path):
    root = copy_project(sample, tmp_path)
    constant_outcome(root)
    _params(root, lambda p: p["estimate"].update(outcomes=["log_labour_productivity", "exports"], estimators=["twfe"], on_error="skip"))
    res = cli("run", "--params", "params.yaml", cwd=root)
    _handled(res, 0, [])
    summary = json.loads((root / "data/estimates/_summary.json").read_text())
    assert [s["outcome"] for s in summary["skipped"]] == ["exports"]
    assert "constant 250.5" in summary["skipped"][0]["reason"]
    assert [r["outcome"] for r in summary["results"]] == ["log_labour_productivity"]


# --------------------------------------------------------------------------------- permissions
def _run_with_umask(args: list[str], root: Path, umask: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=root, env=ENV, capture_output=True, text=True,
                          timeout=900, preexec_fn=lambda: os.umask(umask))


@pytest.mark.parametrize("umask,stages", [(0o027, ["run"]), (0o002, ["ingest"])])
def test_outputs_get_the_mode_of_an_ordinary_file(sample, tmp_path, umask, stages):
    """Not mkstemp's 0600 (nor mkdtemp's 0700): 0666 / 0777 less the umask."""
    root = copy_project(sample, tmp_path)
    for s in stages:
        res = _run_with_umask([s, "--params", "params.yaml"], root, umask)
        _handled(res, 0, [])
    folders = ["data/interim"] + (["data/processed", "data/estimates", "reports"] if stages == ["run"] else [])
    seen = 0
    for folder in folders:
        for p in [root / folder, *(root / folder).rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            want = (0o777 if p.is_dir() else 0o666) & ~umask
            assert mode == want, f"{p.relative_to(root)}: {oct(mode)}, expected {oct(want)}"
            seen += 1
    assert seen >= (5 if stages == ["ingest"] else 40)
