"""PDF rendering through Typst (the ``typst`` Python package): the same content dict as the
HTML page, laid out as an A4 report. Figures are the same PNG bytes, written to a private
temporary folder that is Typst's root for this compilation.

Determinism: only the fonts embedded in Typst are used (``ignore_system_fonts=True``: Libertinus
Serif, New Computer Modern, DejaVu Sans Mono), so the PDF does not depend on the machine's
fonts; the creation timestamp is the provenance date when given, else a fixed epoch
(2000-01-01), never the wall clock.

Every text that reaches Typst goes in as a Typst *string literal* (:func:`ts`), never as
markup, so characters like ``# $ * _ < > @ [ ]`` in labels cannot inject Typst code.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

FIXED_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


class ReportRenderError(RuntimeError):
    """Typst could not compile the report."""


def ts(s: Any) -> str:
    """A Typst string literal for any text (escapes backslash, quote, newlines)."""
    s = str(s)
    s = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "")
    return f'"{s}"'


def _cell(s: Any, bold: bool = False, color: str | None = None) -> str:
    inner = ts(s)
    if color:
        inner = f"text(fill: rgb({ts(color)}), {inner})"
    if bold:
        inner = f"strong({inner})"
    return f"[#{inner}]"


def _table(header: list[str], rows: list[list[Any]], align: list[str] | None = None, size: str = "8.5pt", widths: str | None = None) -> str:
    k = len(header)
    align = align or ["left"] * k
    cols = widths or "(" + ", ".join(["auto"] * k) + ")"
    # table.header: repeated on every page the table spans, and never left alone at a page
    # foot (Typst moves a header without any row after it to the next page)
    parts = [f"#text(size: {size})[#set par(justify: false)\n#table(columns: {cols}, align: ({', '.join(align)}), stroke: none, inset: (x: 5pt, y: 3pt),",
             "table.header(table.hline(stroke: 1pt),",
             ", ".join(_cell(h, bold=True) for h in header) + ",",
             "table.hline(stroke: 0.5pt)),"]
    for r in rows:
        parts.append(", ".join(_cell(v) for v in r) + ",")
    parts.append("table.hline(stroke: 1pt))]")
    return "\n".join(parts) + "\n"


def _par(s: str) -> str:
    return f"#par({ts(s)})\n"


def _absent(s: str) -> str:
    return f"#text(fill: rgb(\"#5b6673\"), style: \"italic\", {ts(s)})\n\n"


def _h(level: int, s: str) -> str:
    return f"#heading(level: {level}, {ts(s)})\n"


def _bullets(items: list[str]) -> str:
    return "#list(" + ", ".join(f"[#{ts(i)}]" for i in items) + ")\n"


def _figure(path: str, caption: str, height: str | None = None) -> str:
    size = f"width: 88%, height: {height}, fit: \"contain\"" if height else "width: 88%"
    return f"#figure(image({ts(path)}, {size}), caption: {ts(caption)})\n"


LIGHT_FILL = {"green": ("#2f8f3a", "#2f6b2f"), "amber": ("#e3a21a", "#a8740c"), "red": ("#c0392b", "#8a1c1c"),
              "none": ("#d5dbe1", "#8d969f"), "withheld": ("#ffffff", "#8d969f")}


def _light(light: str, text: str) -> str:
    fill, stroke = LIGHT_FILL.get(light, LIGHT_FILL["none"])
    return (f"[#box(circle(radius: 3.6pt, fill: rgb({ts(fill)}), stroke: 0.6pt + rgb({ts(stroke)}))) "
            f"#text(size: 6.5pt, fill: rgb(\"#5b6673\"), {ts(text)})]")


def _page_one(c: dict[str, Any], figures: list[dict[str, Any]], ci: str) -> str:
    """The headline table (one row per outcome, pipeline.report.headline), its legend, the
    forest figure(s) the content provides and the caveats: the first page of the PDF."""
    out = [_par("The question: did joining a cluster initiative change members' productivity, exports and patenting, and by how much? "
                "Each effect is the average, over member firms after joining, of the difference to what they would have had without joining "
                "(the ATT; estimand and comparison firms in Findings in detail).")]
    rows = c.get("page_one") or []
    if rows:
        head = ["Outcome (estimator)", "Answer", "Effect", ci, "Range (estimators)", "Pre-trends", "Sensitivity", "Disclosure"]
        parts = ["#text(size: 8pt)[#set par(justify: false)\n#table(columns: (auto, auto, auto, auto, auto, auto, auto, auto), "
                 "align: (left + horizon, left + horizon, right + horizon, right + horizon, right + horizon, left + horizon, left + horizon, left + horizon), "
                 "stroke: none, inset: (x: 4pt, y: 3pt),",
                 "table.header(table.hline(stroke: 1pt),", ", ".join(_cell(h, bold=True) for h in head) + ",", "table.hline(stroke: 0.5pt)),"]
        for r in rows:
            first = f"[#{ts(r['outcome'])} \\ #text(size: 6.5pt, fill: rgb(\"#5b6673\"), {ts(r['estimator'] + ('; ' + r['unit'] if r.get('scale') == 'level' and r.get('unit') else ''))})]"
            cells = [first, _cell(r["answer"]), _cell(r["effect"], bold=True), _cell(r["ci"]), _cell(r["range"])]
            cells += [_light(r["lights"][k]["light"], r["lights"][k]["text"]) for k in ("pretrend", "sensitivity", "disclosure")]
            parts.append(", ".join(cells) + ",")
        parts.append("table.hline(stroke: 1pt))]")
        out.append("\n".join(parts) + "\n")
        if c.get("page_one_sources"):
            out.append(f"#text(size: 7pt, fill: rgb(\"#5b6673\"), {ts(c['page_one_sources'])})\n\n")
        out.append("#text(size: 7pt, fill: rgb(\"#5b6673\"))[" + " ".join(f"#strong({ts(g['name'] + ':')}) #{ts(g['text'] + '.')}" for g in c.get("page_one_legend") or []) + "]\n\n")
    else:
        out.append(_absent("No estimates were available for this report."))
    if c.get("caveats"):
        out.append(f"#block(fill: rgb(\"#f4f6f8\"), inset: 7pt, width: 100%)[#set par(justify: false)\n#text(size: 9pt)[#strong(\"Caveats. \")#{ts(' '.join(c['caveats']))}]]\n")
    forests = [f for f in figures if f["kind"] == "forest"]
    # one figure per scale when the figures provide several: they share what the table leaves
    # of the page (8.5 cm below a six-outcome table, 0.6 cm less per further outcome)
    room = max(4.0, 8.5 - 0.6 * max(0, len(rows) - 6))
    if len(forests) == 2:  # level and proportional side by side: each keeps the full height
        cells = [f"[#figure(image({ts(f['file'])}, width: 100%, height: {room:.1f}cm, fit: \"contain\"), caption: {ts(f['caption'])})]" for f in forests]
        out.append(f"#grid(columns: (1fr, 1fr), column-gutter: 10pt, {', '.join(cells)})\n")
    else:
        for f in forests:
            out.append(_figure(f["file"], f["caption"], height=f"{max(2.5, room / len(forests)):.1f}cm"))
    return "".join(out)


PREAMBLE = r"""
#set document(title: TITLE)
#set page(paper: "a4", margin: (x: 2.1cm, top: 2.2cm, bottom: 2.2cm),
  header: context { if counter(page).get().first() > 1 [#text(size: 8pt, fill: rgb("#5b6673"), TITLE) #h(1fr) #text(size: 8pt, fill: rgb("#5b6673"), "Impact evaluation report")] },
  footer: context [#h(1fr) #text(size: 8pt, fill: rgb("#5b6673"), counter(page).display("1 / 1", both: true)) #h(1fr)])
#set text(font: "Libertinus Serif", size: 10.5pt, lang: "en")
#set par(justify: true, leading: 0.62em)
#set heading(numbering: "1.1")
#show heading.where(level: 1): it => block(above: 1.6em, below: 0.8em)[#text(size: 14pt, fill: rgb("#1f4e79"), weight: "bold", it)]
#show heading.where(level: 2): it => block(above: 1.2em, below: 0.6em)[#text(size: 11.5pt, weight: "bold", it)]
#show figure.caption: it => text(size: 8.5pt, fill: rgb("#5b6673"), it)
#show raw: set text(font: "DejaVu Sans Mono", size: 7pt)
"""


def typst_source(c: dict[str, Any], figures: list[dict[str, Any]]) -> str:
    figs = {f["file"]: f for f in figures}
    out = [PREAMBLE.replace("TITLE", ts(c["title"]))]
    ci = c.get("ci_label", "95% interval")  # the report's 1 - alpha (estimate.alpha)
    d = c["disclosure"]
    verdict_color = "#2f6b2f" if d["verdict"] == "pass" else "#8a1c1c"
    out.append(f"#block(width: 100%, inset: (bottom: 8pt), stroke: (bottom: 2pt + rgb(\"#1f4e79\")))[#set par(justify: false)\n#text(size: 20pt, weight: \"bold\", fill: rgb(\"#1f4e79\"), {ts(c['title'])}) \\ "
               f"#text(size: 10pt, fill: rgb(\"#5b6673\"), {ts(c['subtitle'] + (' · code version ' + c['commit'] if c['commit'] else '') + ' · disclosure control: ' + d['profile'] + ' ')})"
               f"#text(size: 10pt, weight: \"bold\", fill: rgb({ts(verdict_color)}), {ts(d['verdict_label'])})]\n")
    out.append(_h(1, "Executive summary"))
    out.append(_page_one(c, figures, ci))
    out.append("#pagebreak(weak: true)\n#outline(depth: 1, indent: 1em)\n")
    out.append(f"#block(fill: rgb(\"#f4f6f8\"), stroke: (left: 3pt + rgb({ts(verdict_color)})), inset: 8pt, width: 100%)[#strong(\"Disclosure control: \")#{ts(d['status'])}]\n")

    out.append(_h(1, "Findings in detail"))
    out.append(_par(c["estimand"]))
    out.append(_h(2, "Main findings"))
    out.append(_bullets(c["findings"]) if c["findings"] else _absent("No estimates were available for this report."))
    out.append(_h(2, "Credibility checks at a glance"))
    if c["pretrends"]:
        out.append(_par(f"Pre-trend tests: {c['pretrend_counts']} (one row per estimator in the section Pre-trends)."))
    else:
        out.append(_absent((c.get("absent") or {}).get("pretrend") or "No pre-trend test is available (no event-study estimator was run)."))
    if c["check_summary"]:
        out.append(_bullets([s + " Every check in the section Credibility checks." for s in c["check_summary"]]))
    else:
        out.append(_absent("The credibility battery (placebos, randomization inference, leave-one-out, spillovers) was not run."))
    if c["sens_summary"]:
        out.append(_bullets(c["sens_summary"]))
    for b in c["bacon"]:
        out.append(_par(f"Bacon decomposition ({b['outcome']}): " + "; ".join(f"{r['type']} {r['weight']}" for r in b["rows"]) + " of the TWFE weight."))
    if c.get("inference_summary"):
        out.append(_h(2, "Inference and number of clusters"))
        out.append(_par(c["inference_summary"]))
        out.append(_table(["Outcome", "Estimator", "Verdict", "Finding", "Numbers"],
                          [[r["outcome"], r["estimator"], r["verdict"], " ".join([r["sentence"], *r.get("notes", [])]), r["numbers"]] for r in c["inference"]],
                          size="7pt", widths="(auto, auto, auto, 1.4fr, 1fr)"))
    out.append(_h(2, "Limitations"))
    out.append(_bullets(c["limitations"]))

    out.append(_h(1, "Sample flow"))
    if c["missing"]["flow"]:
        out.append(_absent("No sample-flow information was supplied by the ingest and group-building stages."))
    else:
        out.append(_table(["Stage", "Item", "Rows"], [[r["stage"], r["item"], r["count"]] for r in c["flow"]], ["left", "left", "right"], widths="(auto, 1fr, auto)"))
        if c["flow_info"]:
            out.append(_h(2, "Further counts"))
            out.append(_table(["Stage", "Item", "Count"], [[r["stage"], r["item"], r["count"]] for r in c["flow_info"]], ["left", "left", "right"], widths="(auto, 1fr, auto)"))
        out.append(_absent("Counts between 1 and the disclosure threshold are shown as '< k'."))

    out.append(_h(1, "Group composition"))
    if c["missing"]["groups"]:
        out.append(_absent("No group summary (cohorts, clusters, sectors) was supplied."))
    for g in c["groups"]:
        out.append(_h(2, f"By {g['dimension']}"))
        out.append(_table([g["dimension"], "Firms", "Firm-years", "Members"], [[r["level"], r["n_firms"], r["n_firm_years"], r["n_members"]] for r in g["rows"]], ["left", "right", "right", "right"]))
        if g["more"]:
            out.append(_absent(f"{g['more']} further levels in tables/groups_summary.csv."))

    out.append(_cluster_context(c, figs))
    out.append(_value_for_money(c))

    note = c.get("section_note") or {}
    absent = c.get("absent") or {}
    out.append(_h(1, "Estimates across estimators" + note.get("estimates", "")))
    if absent.get("estimates"):
        out.append(_absent(absent["estimates"]))
    if c["missing"]["estimates"]:
        out.append(_absent("No headline estimates are available."))
    else:
        out.append(_table(["Outcome", "Estimator", "Unit", "ATT", ci, "SE", "p", "Obs.", "Treated"],
                          [[h["outcome"], h["estimator"], h.get("unit", ""), h["estimate"], h["ci"], h["se"], h["p"], h["n_obs"], h["n_treated"]] for h in c["headline"]],
                          ["left", "left", "left", "right", "right", "right", "right", "right", "right"], size="8pt"))
        if any(f["kind"] == "forest" for f in figures):
            out.append(_absent("The forest figure(s) of these estimates are in the Executive summary."))

    out.append(_h(1, "Regression tables"))
    if not c["regtabs"]:
        out.append(_absent("No estimates, hence no regression tables."))
    for t in c["regtabs"]:
        out.append(_h(2, t["title"]))
        k = len(t["columns"])
        rows = []
        for r in t["rows"]:
            rows.append([r["label"], *r["est"]])
            rows.append(["", *r["se"]])
        for f in t["foot"]:
            rows.append([f["label"], *f["vals"]])
        header = [""] + [f"({i + 1})\n{col}" for i, col in enumerate(t["columns"])]
        out.append(_table(header, rows, ["left"] + ["center"] * k, size="7.5pt", widths="(auto, " + ", ".join(["1fr"] * k) + ")"))
        out.append(_absent(t["note"]))

    out.append(_h(1, "Event studies"))
    if c["missing"]["event_study"]:
        out.append(_absent("No dynamic (event-time) estimates were produced."))
    else:
        out.append(_par("Each point is the average effect on members the given number of years after joining (year -1 is the reference). Points before joining should be close to zero if members and comparison firms were on parallel paths."))
        for f in figures:
            if f["kind"] == "event_study":
                out.append(_figure(f["file"], f["caption"]))

    out.append(_h(1, "Pre-trends"))
    if c["missing"]["pretrend"]:
        out.append(_absent((c.get("absent") or {}).get("pretrend") or "No joint pre-trend test is available for the estimators run."))
    else:
        out.append(_par("Joint Wald test that all pre-joining (lead) coefficients are zero."))
        out.append(_table(["Outcome", "Estimator", "Wald", "df", "p", "Verdict"], [[p["outcome"], p["estimator"], p["statistic"], p["df"], p["p"], p["verdict"]] for p in c["pretrends"]],
                          ["left", "left", "right", "right", "right", "left"], widths="(auto, auto, auto, auto, auto, 1fr)"))

    out.append(_h(1, "Sensitivity to parallel-trends violations"))
    if c["missing"]["sensitivity"]:
        out.append(_absent("No sensitivity analysis was requested (set estimate.sensitivity in params.yaml to compute HonestDiD robust intervals and pre-test power for event studies)."))
    else:
        out.append(_par("How large may violations of parallel trends after joining be before the conclusion changes? The robust intervals (Rambachan & Roth 2023, relative magnitudes) "
                        "allow the post-joining violation to be up to M̄ times the largest violation between consecutive pre-joining periods; M̄ = 0 is exact parallel trends."))
        for sb in c["sensitivity"]:
            out.append(_h(2, sb["title"]))
            if sb["withheld"]:
                out.append(_absent("Withheld by disclosure control: the event-study coefficients behind this analysis were withheld."))
                continue
            if sb["not_run"]:
                out.append(_absent(f"Not run: {sb['not_run']}"))
                continue
            for snt in sb["sentences"]:
                out.append(_par(snt))
            if sb["rows"]:
                out.append(_table(["M̄", "Lower bound", "Upper bound", "Excludes 0", "Method", "Inference", "Restriction"],
                                  [[r["M"], r["lb"], r["ub"], r["excludes_zero"], r["method"], r["inference"], r["Delta"]] for r in sb["rows"]],
                                  ["right", "right", "right", "left", "left", "left", "left"], size="8pt"))
            if sb["figure"] in figs:
                out.append(_figure(sb["figure"], figs[sb["figure"]]["caption"]))

    out.append(_h(1, "Credibility checks" + note.get("credibility", "")))
    if absent.get("credibility"):
        out.append(_absent(absent["credibility"]))
    elif c["missing"]["credibility"]:
        out.append(_absent("The credibility battery (estimator 'checks': placebos, randomization inference, leave-one-out, spillovers) was not run for this report."))
    else:
        out.append(_par("Each check re-estimates the effect on a design where it should be zero (placebos), re-computes its significance without asymptotics (randomization inference), "
                        "drops one cluster at a time, or compares controls exposed and unexposed to spillovers. These numbers are diagnostics, not effect estimates, "
                        "and are not part of the estimates table."))
        for cb in c["credibility"]:
            out.append(_h(2, cb["outcome"]))
            out.append(_par(cb["summary"]))
            out.append(_table(["Check", "Verdict", "Finding", "Numbers"], [[r["check"], r["verdict"], r["sentence"], r["numbers"]] for r in cb["rows"]],
                              size="7.5pt", widths="(auto, auto, 1.3fr, 1fr)"))
            if cb["figure"] in figs:
                out.append(_figure(cb["figure"], figs[cb["figure"]]["caption"]))

    out.append(_h(1, "Outcomes and their estimands"))
    if not c["families"]:
        out.append(_absent("No outcomes were estimated."))
    for fam in c["families"]:
        out.append(_h(2, fam["outcome"]))
        out.append(_par("Estimand: " + fam["estimand"]))
        for n in fam["notes"]:
            out.append(_par(n))
        if fam["margins"]:
            out.append(_table(["Margin", "Source", f"Estimate [{ci}]"], [[m["margin"], m["source"], m["value"]] for m in fam["margins"]],
                              ["left", "left", "right"], size="8pt", widths="(auto, 1fr, auto)"))

    out.append(_h(1, "Goodman-Bacon decomposition" + note.get("bacon", "")))
    if absent.get("bacon"):
        out.append(_absent(absent["bacon"]))
    elif c["missing"]["bacon"]:
        out.append(_absent("The Goodman-Bacon decomposition (estimator 'bacon') was not run for this report."))
    for b in c["bacon_detail"]:
        out.append(_h(2, b["outcome"]))
        out.append(_par(b["sentence"]))
        out.append(_table(["Comparison type", "2x2 components", "Share of TWFE weight", "Weighted estimate"],
                          [[r["type"] + (" (forbidden)" if r["forbidden"] else ""), r["n"], r["weight"], r["estimate"]] for r in b["rows"]],
                          ["left", "right", "right", "right"]))
        if b["released"]:
            out.append(_absent(f"All components in {b['released']}."))

    out.append(_h(1, "Effect heterogeneity" + note.get("heterogeneity", "")))
    if absent.get("heterogeneity"):
        out.append(_absent(absent["heterogeneity"]))
    elif not c.get("heterogeneity"):
        out.append(_absent("Subgroup effects (estimator 'heterogeneity') were not estimated for this report."))
    for h in c.get("heterogeneity") or []:
        out.append(_h(2, h["outcome"]))
        for dim in h["dims"]:
            out.append(_par(f"By {dim['dimension']}. {dim['sentence']}"))
            out.append(_table(["Subgroup", f"ATT [{ci}]", "Member firms"], [[r["level"], r["value"], r["n"]] for r in dim["rows"]],
                              ["left", "right", "right"]))
        if h["skipped"]:
            out.append(_absent(h["skipped"]))

    out.append(_h(1, "Covariate balance" + note.get("balance", "")))
    if absent.get("balance"):
        out.append(_absent(absent["balance"]))
    if c["missing"]["balance"] and not absent.get("balance"):
        out.append(_absent("No matching or weighting estimator was run, so there is no balance table."))
    for b in c["balance"]:
        out.append(_h(2, b["title"]))
        out.append(_table(b["columns"], b["rows"], ["left"] + ["right"] * (len(b["columns"]) - 1), size="8pt"))
        if b["figure"] in figs:
            out.append(_figure(b["figure"], "Absolute standardised mean differences before and after matching; |SMD| below 0.1 is conventionally balanced."))
        if b.get("ties"):
            out.append(_par(b["ties"]))
        if b.get("overlap") in figs:
            out.append(_figure(b["overlap"], "Propensity-score distributions of members and controls before and after matching. " + b.get("overlap_caption", "")))

    out.append(_h(1, "Disclosure control"))
    out.append(_par(f"Profile {d['profile']} (on failure: {d['on_fail']}). Verdict: {d['verdict']}. {d['status']}"))
    out.append(_table(["Check", "Rule"], [[ch["check"], ch["rule"]] for ch in d["checks"]], widths="(auto, 1fr)"))
    if d["withheld"]:
        out.append(_h(2, f"Withheld items ({d['n_withheld']})"))
        out.append(_table(["What", "Rule", "Items"], [[w["what"], w["rule"], w["n"]] for w in d["withheld_by_reason"]], ["left", "left", "right"], widths="(auto, 1fr, auto)"))
        out.append(_absent(f"First {len(d['withheld'])} withheld items (all in disclosure.md):"))
        out.append(_table(["Item", "Reasons"], [[w["item"], "; ".join(w["reasons"])] for w in d["withheld"]], size="7.5pt", widths="(auto, 1fr)"))
    else:
        out.append(_par("No item was withheld."))
    for s in d["scan"]:
        out.append(_par(f"Release scan: {s['item']} - {'; '.join(s['reasons'])}"))

    out.append(_h(1, "Methods appendix"))
    out.append("Notation: $Y_(i t)$ outcome of firm $i$ in year $t$; $G_i$ the year firm $i$ joined (cohort); $D_(i t) = bb(1)[t >= G_i]$; $alpha_i, lambda_t$ firm and year fixed effects.\n\n")
    out.append(_par(c.get("fixed_effects_text", "")))
    for m in c["methods"]:
        out.append(_h(2, m["title"]))
        out.append(f"#block(fill: rgb(\"#f4f6f8\"), inset: 6pt, width: 100%)[{m['typst']}]\n")  # trusted constant (build.METHODS)
        out.append(_par(m["text"]))
        out.append(f"#text(size: 9pt, fill: rgb(\"#5b6673\"), {ts('Reference: ' + m['ref'])})\n\n")

    out.append(_h(1, "Provenance"))
    if c["prov_rows"]:
        out.append(_table(["Item", "Value"], [[r["key"], r["value"]] for r in c["prov_rows"]], widths="(auto, 1fr)"))
    else:
        out.append(_absent("No provenance information was supplied."))
    if c["data_rows"]:
        out.append(_h(2, "Input data (md5, as in dvc.lock)"))
        out.append(_table(["Input", "Path", "md5"], [[r["name"], r["path"], r["md5"]] for r in c["data_rows"]], size="7.5pt", widths="(auto, 1fr, auto)"))
        if c.get("data_note"):
            out.append(_absent(c["data_note"]))
    if c["pkg_rows"]:
        out.append(_h(2, "Software"))
        grid = c.get("pkg_grid") or [[r] for r in c["pkg_rows"]]
        out.append(_table(["Package", "Version"] * 3, [sum(([r["name"], r["version"]] for r in g), []) + [""] * (6 - 2 * len(g)) for g in grid], size="8pt"))
    if c["mach_rows"]:
        out.append(_h(2, "Machine"))
        out.append(_table(["Item", "Value"], [[r["key"], r["value"]] for r in c["mach_rows"]], widths="(auto, 1fr)"))
    return "".join(out)


def _timestamp(date: Any) -> dt.datetime:
    if date:
        try:
            d = dt.date.fromisoformat(str(date)[:10])
            return dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    return FIXED_EPOCH


def render_pdf(content: dict[str, Any], figures: list[dict[str, Any]], date: Any = None, source: str | None = None) -> bytes:
    """Compile the report to PDF bytes; raise :class:`ReportRenderError` with Typst's
    diagnostics if compilation fails. ``source``: the :func:`typst_source` of ``content``
    when the caller has it already (the release scan reads the same text)."""
    import typst

    src = source if source is not None else typst_source(content, figures)
    with tempfile.TemporaryDirectory(prefix="ci-report-") as tmp:
        root = Path(tmp)
        for f in figures:
            p = root / f["file"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(f["png"])
        (root / "report.typ").write_text(src, encoding="utf-8")
        try:
            pdf = typst.compile(src.encode("utf-8"), root=str(root), ignore_system_fonts=True, format="pdf", timestamp=_timestamp(date))
        except Exception as exc:  # typst.TypstError and binding errors
            msg = getattr(exc, "message", None) or str(exc)
            diag = getattr(exc, "diagnostic", "")
            raise ReportRenderError(f"typst could not compile the PDF report: {msg} {diag}".strip()) from exc
    if not isinstance(pdf, (bytes, bytearray)) or not pdf.startswith(b"%PDF"):
        raise ReportRenderError("typst returned no PDF bytes")
    return bytes(pdf)


def _value_for_money(c: dict[str, Any]) -> str:
    """The value-for-money section (pipeline.report.value_for_money)."""
    out = [_h(1, "Value for money")]
    v = c.get("vfm")
    if not v:
        out.append(_absent(c.get("vfm_absent") or "Not computed."))
        return "".join(out)
    out += [_par(s) for s in v["sentences"]]
    out.append(_table(["Quantity", "Outcome", "Estimate", "Interval", "Interval method", "Firm-years"],
                      [[r["quantity"], r["outcome"], r["estimate"], r["interval"], r["method"], r["firm_years"]] for r in v["rows"]],
                      ["left", "left", "right", "right", "left", "right"]))
    out.append(_bullets(v["notes"]))
    out.append(_absent(f"Money in {v['unit']}; every row in {v['file']}; 'withheld': fewer treated firms than the disclosure threshold."))
    return "".join(out)


def _cluster_context(c: dict[str, Any], figs: dict[str, dict[str, Any]]) -> str:
    """The cluster map and monitoring scoreboard sections (pipeline.report.cluster_context)."""
    out = [_h(1, "Cluster map: where the clusters are")]
    m = c.get("cluster_map")
    if not m:
        out.append(_absent(c.get("cluster_map_absent") or "The cluster map was not built."))
    else:
        out.append(_par(m["intro"]))
        if m.get("figure") in figs:
            out.append(_figure(m["figure"], figs[m["figure"]]["caption"]))
        out.append(_h(2, f"Strong clusters and starred cells, {m['year']}"))
        if m["rows"]:
            out.append(_table(["Region", "Sector", m["size_label"], "Firms", "LQ", "Strong", "Stars", "Members in cell"],
                              [[r["region"], r["sector"], r["size"], r["firms"], r["lq"], r["strong"], r["stars"], r["members"]] for r in m["rows"]],
                              ["left", "left", "right", "right", "right", "center", "left", "right"], size="8pt"))
            if m["more"]:
                out.append(_absent(f"{m['more']} further cells in {m['file']}."))
        else:
            out.append(_absent(f"No cell is a strong cluster or has a star in {m['year']}."))
        if m["initiatives"]:
            out.append(_h(2, "Do the initiatives' members sit in clusters?"))
            out.append(_table(["Initiative", "Members", "In a strong cluster", "In a starred cell", "Mean stars"],
                              [[r["cluster_id"], r["members"], r["strong"], r["starred"], r["mean_stars"]] for r in m["initiatives"]],
                              ["left", "right", "right", "right", "right"]))
            out.append(_absent(f"Each member's region x sector (at its first panel year) read in the year before it joined; the same reading is the panel column cluster_strength ({m['strength']}), a dimension of the effect-heterogeneity estimator."))
        out.append(_h(2, f"Regional specialisation and sectoral concentration, {m['year']}"))
        out.append(_table(["Region", m["size_label"], "Hachman", "Krugman", "Herfindahl"],
                          [[r["region"], r["size"], r["hachman"], r["krugman"], r["herfindahl"]] for r in m["regions"]], ["left"] + ["right"] * 4, size="8pt"))
        out.append(_table(["Sector", m["size_label"], "Ellison-Glaeser gamma", "G", "Firm Herfindahl H"],
                          [[r["sector"], r["size"], r["gamma"], r["G"], r["H"]] for r in m["sectors"]], ["left"] + ["right"] * 4, size="8pt"))
        if m.get("more_regions") or m.get("more_sectors"):
            out.append(_absent(f"{m['more_regions']} further regions and {m['more_sectors']} further sectors in {m['file']}."))
        out.append(_bullets(m["rules"]))
        out.append(_absent(f"Every year, cell, region and sector in {m['file']}; blank cells are withheld by disclosure control."))
    out.append(_h(1, "Monitoring scoreboard: how the initiatives are doing"))
    sb = c.get("scoreboard")
    if not sb:
        out.append(_absent(c.get("scoreboard_absent") or "The monitoring scoreboard was not built."))
        return "".join(out)
    out.append(_par(sb["intro"]))
    if sb.get("figure") in figs:
        out.append(_figure(sb["figure"], figs[sb["figure"]]["caption"]))
    head = ["Indicator", "Members, baseline", f"Members, {sb['latest']}", "Comparison, baseline", f"Comparison, {sb['latest']}"]
    parts = ["#text(size: 7.5pt)[#set par(justify: false)\n#table(columns: (1fr, auto, auto, auto, auto), align: (left, right, right, right, right), stroke: none, inset: (x: 4pt, y: 2.5pt),",
             "table.header(table.hline(stroke: 1pt),", ", ".join(_cell(h, bold=True) for h in head) + ",", "table.hline(stroke: 0.5pt)),"]
    for b in sb["blocks"]:  # one header row per initiative spanning the table
        parts.append(f"table.cell(colspan: 5, {_cell(b['cluster_id'], bold=True)}),")
        parts += [", ".join(_cell(v) for v in (r["indicator"], r["mb"], r["ml"], r["cb"], r["cl"])) + "," for r in b["rows"]]
    parts.append("table.hline(stroke: 1pt))]")
    out.append("\n".join(parts) + "\n")
    for n in sb["notes"]:
        out.append(_absent(n))
    out.append(_absent(f"Every year and initiative in {sb['file']} (per-indicator series for dvc plots in plots/scoreboard/); 'withheld': fewer than the threshold of firms, or one or two firms dominate the total."))
    return "".join(out)
