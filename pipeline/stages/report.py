"""Stage 4, report: estimates + flows -> reports/ (HTML, PDF, tables, figures, metrics,
provenance, disclosure summary). Exit 3 when the disclosure profile blocks the release:
then only the disclosure summary is written, so the reviewer sees why, and every release
file of an earlier run (report, tables, figures, estimates.csv, metrics, provenance) is
removed, so no unsuppressed number of a previous run stays beside a blocked verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.errors import DisclosureBlockedError

from ..config import Params
from ..io import StageOutputs, prune
from ..paths import Paths
from ..report.build import build_report
from ..report.inputs import load_inputs

DISCLOSURE_FILES = ("disclosure.json", "disclosure.md")
# everything under reports/ the report stage owns (dvc.yaml outs, metrics and plots)
OWNED_FILES = ("report.html", "report.pdf", "estimates.csv", "metrics.json", "provenance.json", *DISCLOSURE_FILES)
OWNED_DIRS = ("tables", "figures", "plots")


def _remove_release(reports: Path, keep: set[str]) -> None:
    """Delete the stage's earlier outputs not in ``keep`` (paths relative to ``reports``)."""
    for name in OWNED_FILES:
        if name not in keep:
            (reports / name).unlink(missing_ok=True)
    for sub in OWNED_DIRS:
        d = reports / sub
        if not d.is_dir() or d.is_symlink():
            continue
        mine = {reports / rel for rel in keep if rel.startswith(sub + "/")}
        if mine:
            prune(d, mine)
        else:
            shutil.rmtree(d)


DOCUMENTS = ("report.html", "report.pdf")  # rendered into data/report/, published by `publish`


def run(params: Params) -> None:
    paths = Paths.of(params)
    reports, documents = paths.reports_dir, paths.documents_dir
    out = build_report(load_inputs(params), params.section("report"), params.seed)
    if out.verdict == "block":
        # the earlier release goes first: a failure or a kill below never leaves its numbers
        # beside this run's verdict
        _remove_release(reports, set(DISCLOSURE_FILES))
        for old in DOCUMENTS:
            (documents / old).unlink(missing_ok=True)
        with StageOutputs() as w:
            for name in DISCLOSURE_FILES:
                if name in out.files:
                    w.bytes(reports / name, out.files[name])
        _remove_release(reports, {n for n in DISCLOSURE_FILES if n in out.files})
        raise DisclosureBlockedError(
            f"disclosure profile '{params['report']['disclosure']}' blocks the release: "
            f"{len(out.blocked)} item(s) fail; see {reports / 'disclosure.md'}. Nothing else was released: "
            "the report, tables, figures, estimates.csv, metrics.json and provenance.json of any earlier run "
            "were removed from reports/"
        )
    with StageOutputs() as w:
        for rel, data in sorted(out.files.items()):
            w.bytes((documents if rel in DOCUMENTS else reports) / rel, data)
    prune(documents, {documents / rel for rel in out.files if rel in DOCUMENTS})
    _remove_release(reports, set(out.files))  # a format dropped from report.formats: its old copy goes too
