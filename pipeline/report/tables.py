"""Tables of the report: number formatting, safe CSV, and regression tables in the spirit of
fixest's ``etable`` (estimators as columns, terms as rows, SE in parentheses, N at the foot)
rendered as LaTeX, Markdown and CSV.

Every text cell that leaves this module is escaped for its target: CSV cells starting with
``= + - @`` (and tab / carriage return) get a leading ``'`` so spreadsheet programs keep them as
text (OWASP "CSV injection"); LaTeX special characters are escaped; Markdown pipes escaped.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .significance import Significance

ESTIMATOR_LABELS = {
    "twfe": "TWFE",
    "event_study": "Event study (TWFE)",
    "cs": "Callaway–Sant'Anna",
    "sunab": "Sun–Abraham",
    "imputation": "Imputation (BJS)",
    "did2s": "Two-stage DiD",
    "lpdid": "Local-projections DiD",
    "sdid": "Synthetic DiD",
    "bacon": "Bacon decomposition",
    "matching": "Matching",
    "weighting": "Weighting",
    "ppml": "PPML",
    "etwfe_poisson": "ETWFE Poisson",
}

HEADLINE_ORDER = ("simple", "static", "matched")

# readable names of the pipeline's outcomes and columns; report.labels in params.yaml overrides
DEFAULT_LABELS = {
    "labour_productivity": "Labour productivity (real value added per employee)",
    "log_labour_productivity": "Labour productivity (log)",
    "log_tfp": "Total factor productivity (log)",
    "export_status": "Exporter (share)",
    "export_intensity": "Export intensity",
    "log_exports": "Exports (log)",
    "exports": "Exports",
    "patents": "Patent applications",
    "patent_status": "Patenting firm (share)",
    "employment": "Employment",
    "employment_growth": "Employment growth",
    "log_employment": "Employment (log)",
    "rd": "R&D expenditure",
    "rd_intensity": "R&D intensity",
    "wage_per_employee": "Wage per employee",
    "log_capital": "Capital (log)",
    "log_intermediates": "Intermediate inputs (log)",
    "log_value_added": "Value added (log, real)",
    "turnover": "Turnover",
    "value_added": "Value added",
}


# --------------------------------------------------------------------------- formatting


def isnum(x: Any) -> bool:
    if x is None or x is pd.NA:
        return False
    try:
        return not math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 3) -> str:
    """Fixed formatting by magnitude: ``digits`` decimals below 10, two below 100, one below
    10 000, none (with thousands separators) above. Missing -> empty string; no "-0.000"."""
    if not isnum(x):
        return ""
    v = float(x)
    a = abs(v)
    d = digits if a < 10 else 2 if a < 100 else 1 if a < 10_000 else 0
    s = f"{v:,.{d}f}"
    if s.startswith("-") and float(s.replace(",", "")) == 0:
        s = s[1:]
    return s


def scale_digits(values) -> int:
    """Decimals for a column of numbers on one scale (one outcome): 3 below 1 in median
    absolute value, 2 below 100, 1 below 10 000, else 0."""
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").abs().dropna()
    v = v[v > 0]
    if v.empty:
        return 3
    m = float(v.median())
    return 3 if m < 1 else 2 if m < 100 else 1 if m < 10_000 else 0


def fmt_fixed(x: Any, digits: int) -> str:
    """``x`` with exactly ``digits`` decimals and thousands separators ('' when missing)."""
    if not isnum(x):
        return ""
    s = f"{float(x):,.{digits}f}"
    if s.startswith("-") and float(s.replace(",", "")) == 0:
        s = s[1:]
    return s


def fmt_int(x: Any) -> str:
    return f"{int(x):,}" if isnum(x) else ""


def fmt_p(p: Any) -> str:
    if not isnum(p):
        return ""
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def stars(p: Any, sig: Significance | None = None) -> str:
    """Significance stars at the report's levels (:class:`~.significance.Significance`:
    one star at ``estimate.alpha``, more at the stricter conventional levels)."""
    return (sig or Significance()).stars(p)


def label(key: Any, labels: dict[str, str], default: dict[str, str] | None = None) -> str:
    """User label (report.labels) > ``default`` > :data:`DEFAULT_LABELS` > the key itself."""
    k = "" if key is None or key is pd.NA else str(key)
    if k in labels:
        return str(labels[k])
    if default and k in default:
        return default[k]
    return DEFAULT_LABELS.get(k, k)


# --------------------------------------------------------------------------- escaping

_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: a *string* starting with = + - @ (or tab/CR) gets a
    leading apostrophe. Numbers are left alone (a negative estimate stays a number)."""
    if isinstance(value, str) and value.startswith(_CSV_TRIGGERS):
        return "'" + value
    return value


def to_csv_bytes(df: pd.DataFrame, float_format: str = "%.10g") -> bytes:
    """Deterministic CSV with formula-neutralised text cells (header included)."""
    out = df.copy()
    out.columns = [csv_safe(str(c)) for c in out.columns]
    for c in out.columns:
        s = out[c]
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            out[c] = s.astype("object").map(lambda v: csv_safe(v) if isinstance(v, str) else v)
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\n", float_format=float_format)
    return buf.getvalue().encode("utf-8")


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "[": "{[}",  # so a cell starting with [ is never read as the optional argument of \\
    "]": "{]}",
}


def latex_escape(s: Any) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(s))


def md_escape(s: Any) -> str:
    """Escape for a Markdown table cell: pipes, backslashes, HTML brackets, backticks and
    link brackets (so labels cannot inject markup, links or HTML)."""
    s = str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    for ch in "`[]<>":
        s = s.replace(ch, "\\" + ch)
    return s


# --------------------------------------------------------------------------- headline rows


def headline_rows(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (outcome, estimator): the first ``simple``, else ``static``, else
    ``matched`` row (the same rule as :meth:`EstimationResult.headline`)."""
    out = []
    for (o, e), part in tidy.groupby(["outcome", "estimator"], sort=True):
        for agg in HEADLINE_ORDER:
            rows = part[part["aggregation"] == agg]
            if len(rows):
                out.append(rows.iloc[0])
                break
    if not out:
        return tidy.iloc[0:0]
    return pd.DataFrame(out).reset_index(drop=True)


# --------------------------------------------------------------------------- etable


@dataclass
class RegTable:
    """A regression table: ``columns`` (estimator keys), ``rows`` (term key, label) and the
    formatted cells ``cells[term][estimator] = (estimate_with_stars, "(se)")``; ``foot`` rows
    (label, {estimator: text})."""

    outcome: str
    title: str
    columns: list[str]
    column_labels: list[str]
    rows: list[tuple[str, str]]
    cells: dict[str, dict[str, tuple[str, str]]]
    foot: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    note: str = ""

    def to_frame(self) -> pd.DataFrame:
        recs = []
        for key, lab in self.rows:
            rec = {"term": lab}
            rec2 = {"term": ""}
            for c, cl in zip(self.columns, self.column_labels):
                est, se = self.cells.get(key, {}).get(c, ("", ""))
                rec[cl] = est
                rec2[cl] = se
            recs += [rec, rec2]
        for lab, vals in self.foot:
            rec = {"term": lab}
            for c, cl in zip(self.columns, self.column_labels):
                rec[cl] = vals.get(c, "")
            recs.append(rec)
        return pd.DataFrame(recs, columns=["term", *self.column_labels])

    def to_markdown(self) -> str:
        head = ["", *self.column_labels]
        lines = [f"**{md_escape(self.title)}**", "", "| " + " | ".join(md_escape(h) for h in head) + " |",
                 "|" + "|".join(["---"] + [":---:"] * len(self.columns)) + "|"]
        for key, lab in self.rows:
            ests = [md_escape(self.cells.get(key, {}).get(c, ("", ""))[0]) for c in self.columns]
            ses = [md_escape(self.cells.get(key, {}).get(c, ("", ""))[1]) for c in self.columns]
            lines.append("| " + " | ".join([md_escape(lab), *ests]) + " |")
            lines.append("| " + " | ".join(["", *ses]) + " |")
        for lab, vals in self.foot:
            lines.append("| " + " | ".join([md_escape(lab), *[md_escape(vals.get(c, "")) for c in self.columns]]) + " |")
        if self.note:
            lines += ["", md_escape(self.note)]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        k = len(self.columns)
        lines = [
            "% generated by cluster-impact; requires \\usepackage{booktabs}",
            "\\begin{table}[htbp]\\centering",
            f"\\caption{{{latex_escape(self.title)}}}",
            "\\begin{tabular}{l" + "c" * k + "}",
            "\\toprule",
            " & " + " & ".join(f"({i + 1})" for i in range(k)) + " \\\\",
            " & " + " & ".join(latex_escape(c) for c in self.column_labels) + " \\\\",
            "\\midrule",
        ]
        for key, lab in self.rows:
            ests = [latex_escape(self.cells.get(key, {}).get(c, ("", ""))[0]).replace(r"\textasciicircum{}", "") for c in self.columns]
            ses = [latex_escape(self.cells.get(key, {}).get(c, ("", ""))[1]) for c in self.columns]
            ests = [_latex_stars(e) for e in ests]
            lines.append(latex_escape(lab) + " & " + " & ".join(ests) + " \\\\")
            lines.append(" & " + " & ".join(ses) + " \\\\")
        lines.append("\\midrule")
        for lab, vals in self.foot:
            lines.append(latex_escape(lab) + " & " + " & ".join(latex_escape(vals.get(c, "")) for c in self.columns) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        if self.note:
            lines.append(f"\\par\\footnotesize {latex_escape(self.note)}")
        lines += ["\\end{table}", ""]
        return "\n".join(lines)


def _latex_stars(s: str) -> str:
    n = len(s) - len(s.rstrip("*"))
    return s[: len(s) - n] + (f"$^{{{'*' * n}}}$" if n else "")


def regression_table(tidy: pd.DataFrame, metas: dict[str, dict], outcome: str, labels: dict[str, str], suppressed_mark: str = "[suppressed]",
                     sig: Significance | None = None, units: dict[str, str] | None = None, digits_of: dict[str, int] | None = None) -> RegTable:
    """The etable of one outcome from released tidy rows (``estimate`` NaN + ``suppressed``
    True -> the suppressed mark); stars at the levels of ``sig`` (``estimate.alpha``).
    ``units``: per estimator the unit of its estimates (a "Unit" foot row;
    pipeline.report.units.row_unit); ``digits_of``: per estimator the decimals of its scale
    (a proportional Poisson column is not rounded like the level columns)."""
    sig = sig or Significance()
    part = tidy[tidy["outcome"] == outcome]
    digits = scale_digits(part["estimate"].tolist() + part["std_error"].tolist())
    ests = sorted(part["estimator"].dropna().unique().tolist(), key=_estimator_order)
    heads = headline_rows(part)
    rows: list[tuple[str, str]] = []
    cells: dict[str, dict[str, tuple[str, str]]] = {}

    def put(key: str, est: str, r: pd.Series) -> None:
        d = (digits_of or {}).get(est, digits)
        if bool(r.get("suppressed", False)):
            cells.setdefault(key, {})[est] = (suppressed_mark, "")
        else:
            cells.setdefault(key, {})[est] = (fmt_fixed(r["estimate"], d) + stars(r["p_value"], sig), f"({fmt_fixed(r['std_error'], d)})" if isnum(r["std_error"]) else "")

    if len(heads):
        rows.append(("ATT", label("ATT", labels, {"ATT": "ATT (overall)"})))
        for _, r in heads.iterrows():
            put("ATT", str(r["estimator"]), r)
    dyn = part[(part["aggregation"] == "dynamic") & part["event_time"].notna()]
    for e in sorted(dyn["event_time"].astype(int).unique()):
        key = f"e{e}"
        rows.append((key, label(f"event_time_{e}", labels) if f"event_time_{e}" in labels else f"Event time {e:+d}" if e else "Event time 0"))
        for _, r in dyn[dyn["event_time"].astype(int) == e].iterrows():
            put(key, str(r["estimator"]), r)
    foot: list[tuple[str, dict[str, str]]] = []
    nobs, ntr, vc, cg, pt = {}, {}, {}, {}, {}
    for est in ests:
        meta = metas.get(f"{outcome}-{est}") or {}
        nobs[est] = fmt_int(meta.get("n_obs"))
        ntr[est] = fmt_int(meta.get("n_treated_units"))
        vc[est] = str(meta.get("vcov") or "")
        cg[est] = str(meta.get("control_group") or "")
        p = (meta.get("pretrend") or {}).get("p_value")
        pt[est] = fmt_p(p)
    if units:
        foot.append(("Unit", {est: units.get(est, "") for est in ests}))
    foot.append(("Observations", nobs))
    foot.append(("Treated firms", ntr))
    foot.append(("Std. errors", vc))
    foot.append(("Control group", cg))
    if any(pt.values()):
        foot.append(("Pre-trend test p", pt))
    return RegTable(
        outcome=outcome,
        title=f"Effect of cluster membership on {label(outcome, labels)}",
        columns=ests,
        column_labels=[label(e, labels, ESTIMATOR_LABELS) for e in ests],
        rows=rows,
        cells=cells,
        foot=foot,
        note=f"Standard errors in parentheses. {sig.star_note()}. "
        f"{suppressed_mark} = withheld by disclosure control.",
    )


def _estimator_order(key: str) -> tuple[int, str]:
    order = list(ESTIMATOR_LABELS)
    return (order.index(key) if key in order else len(order), key)
