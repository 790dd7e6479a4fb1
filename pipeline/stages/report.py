"""Stage 4, report: estimates + flows -> reports/ (HTML, PDF, tables, figures, metrics,
provenance, disclosure summary). Exit 3 when the disclosure profile blocks the release:
then only the disclosure summary is written, so the reviewer sees why."""

from __future__ import annotations

from models.errors import DisclosureBlockedError

from ..config import Params
from ..io import StageOutputs, prune
from ..paths import Paths
from ..report.build import build_report
from ..report.inputs import load_inputs


DOCUMENTS = ("report.html", "report.pdf")  # rendered into data/report/, published by `publish`


def run(params: Params) -> None:
    paths = Paths.of(params)
    reports, documents = paths.reports_dir, paths.documents_dir
    out = build_report(load_inputs(params), params.section("report"), params.seed)
    if out.verdict == "block":
        for old in [documents / d for d in DOCUMENTS] + [reports / d for d in DOCUMENTS]:
            old.unlink(missing_ok=True)  # no earlier run's document survives a blocked release
        with StageOutputs() as w:
            for name in ("disclosure.json", "disclosure.md"):
                if name in out.files:
                    w.bytes(reports / name, out.files[name])
        raise DisclosureBlockedError(
            f"disclosure profile '{params['report']['disclosure']}' blocks the release: "
            f"{len(out.blocked)} item(s) fail; see {reports / 'disclosure.md'}"
        )
    with StageOutputs() as w:
        for rel, data in sorted(out.files.items()):
            w.bytes((documents if rel in DOCUMENTS else reports) / rel, data)
    prune(documents, {documents / rel for rel in out.files if rel in DOCUMENTS})
    for d in DOCUMENTS:
        if d not in out.files:  # a format dropped from report.formats: its old copy goes too
            (reports / d).unlink(missing_ok=True)
    written = {reports / rel for rel in out.files}
    for sub in {rel.split("/")[0] for rel in out.files if "/" in rel}:
        prune(reports / sub, written)
