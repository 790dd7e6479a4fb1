"""Publish one rendered document (dvc.yaml ``publish@<format>``, one stage per entry of
``report.formats``): data/report/report.<format> -> reports/report.<format>.

The report stage renders the documents together with everything else it releases (the
release scan reads their bytes there); publishing is a copy, so that DVC's outputs follow
``report.formats``: with ``formats: [html]`` no PDF is declared, none is expected."""

from __future__ import annotations

from models.errors import BadInputError, ConfigError, DisclosureBlockedError

from ..config import Params
from ..io import StageOutputs
from ..paths import Paths


def run(params: Params, fmt: str) -> None:
    paths = Paths.of(params)
    formats = list(params["report"]["formats"] or [])
    if fmt not in formats:
        raise ConfigError(f"publish --format {fmt}: not one of report.formats ({', '.join(formats) or 'none'}) in {params.path.name}")
    src = paths.documents_dir / f"report.{fmt}"
    if not src.is_file():
        disc = paths.reports_dir / "disclosure.json"
        if disc.is_file() and '"verdict": "block"' in disc.read_text(encoding="utf-8"):
            raise DisclosureBlockedError(f"the disclosure check blocked the release: no {fmt} document to publish; see {paths.reports_dir / 'disclosure.md'}")
        raise BadInputError(f"{src} does not exist: run `cluster-impact report --params {params.path.name}` first")
    with StageOutputs() as w:
        w.bytes(paths.reports_dir / f"report.{fmt}", src.read_bytes())
