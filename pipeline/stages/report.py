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


def run(params: Params) -> None:
    reports = Paths.of(params).reports_dir
    out = build_report(load_inputs(params), params.section("report"), params.seed)
    if out.verdict == "block":
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
            w.bytes(reports / rel, data)
    written = {reports / rel for rel in out.files}
    for sub in {rel.split("/")[0] for rel in out.files if "/" in rel}:
        prune(reports / sub, written)
