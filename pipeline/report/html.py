"""HTML rendering: one self-contained file (CSS inline, figures as base64 PNG data URIs, no
scripts, no external URLs). Jinja2 with autoescape on for every template, so any text that
reaches the page (labels, titles, outcome names, reasons) is HTML-escaped."""

from __future__ import annotations

import base64
from importlib import resources
from typing import Any

import jinja2


def _env() -> jinja2.Environment:
    loader = jinja2.PackageLoader("pipeline.report", "templates")
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_html(content: dict[str, Any], figures: list[dict[str, Any]]) -> str:
    css = resources.files("pipeline.report").joinpath("templates/report.css").read_text(encoding="utf-8")
    imgs = {f["file"]: "data:image/png;base64," + base64.b64encode(f["png"]).decode("ascii") for f in figures}
    return _env().get_template("report.html.j2").render(c=content, figures=figures, imgs=imgs, css=css)
