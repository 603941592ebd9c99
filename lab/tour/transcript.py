"""The tour's transcript: Markdown and one self-contained HTML page per language.

    files = render(record, run_dir, ("en", "zh"))
    # {"transcript.en.md": b"...", "transcript.en.html": b"...", "plots/step-01.svg": b"...", ...}

Made from tour.json and the probes' results files in the run directory, and
nothing else, so `lab tour --render RUN` writes it again (in either language:
the words come from narration-<lang>.yaml, the figures from the record).
It is built from lab/report's parts: its Section and Table, its HTML and
Markdown for them, and its timeline figure (who was served when), drawn for
each step's chosen probe as the compare report draws its classic workload.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable

from ioschema import COMPARE_SCHEMA

from ..report import html as report_html, md as report_md
from ..report.data import Run
from ..report.document import Figure, Section
from ..report.tables import Table
from .lesson import FAILED, HELD, conclude
from .steps import narration, tidy

RESULT_CELL = {True: "ok", False: "fail", None: "unknown"}


def names(langs: Iterable[str]) -> list[str]:
    return [f"transcript.{lang}.{ext}" for lang in langs for ext in ("md", "html")]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def merged(pairs: list[list[Any]]) -> list[list[Any]]:
    """A connection's [send, reply] pairs with overlapping answered ones made
    one: the same bars drawn (a pipelined burst of 2,000 is one bar, not 2,000
    in the page), the same first send and last reply; unanswered ones kept."""
    out: list[list[Any]] = []
    for sent, got in sorted((p for p in pairs if p[1] is not None), key=lambda p: p[0]):
        if out and sent <= out[-1][1]:
            out[-1][1] = max(out[-1][1], got)
        else:
            out.append([sent, got])
    return out + [p for p in pairs if p[1] is None]


def timeline(step: dict[str, Any], run_dir: Path) -> bytes | None:
    """The step's probe drawn by lab/report's timeline figure: its results
    files given the shape of a compare run with one workload."""
    from ..report import plots  # matplotlib: only when a transcript is drawn

    docs = {}
    for model, rel in step["plot"]["files"].items():
        path = run_dir / rel
        if path.is_file():
            docs[model] = doc = json.loads(path.read_text())
            for conn in (doc.get("timeline") or {}).get("conns", []):
                conn["pairs"] = merged(conn["pairs"])
    if not docs:
        return None
    workload = f"{step['plot']['scenario']}-{step['plot']['probe']}"
    doc = {"schema": COMPARE_SCHEMA, "params": {"models": list(docs)},
           "workloads": [{"name": workload, "title": workload, "kind": "timeline", "warmup_s": 0,
                          "measure_s": 0, "flags": {}}],
           "models": {m: {"kind": "model", "repeats": [{"workloads": {workload: {"swarm": d}}}]}
                      for m, d in docs.items()}}
    return plots.timeline(Run(doc, None, None), workload)


def evidence(verdicts: list[dict[str, Any]], labels: dict[str, str]) -> Table:
    t = Table([labels["model"], labels["check"], labels["expected"], labels["observed"], labels["result"]],
              align="lllll")
    word = {True: labels["held"], False: labels["failed"], None: labels["unjudged"]}
    for v in verdicts:
        row = t.add([v["model"], v["check"], v["expected"], v["observed"], word[v["ok"]]],
                    "fail" if v["ok"] is False else "")
        t.cell_class[(row, 4)] = RESULT_CELL[v["ok"]]
    return t


def conclusion(step: dict[str, Any], parts: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The step's answer and lesson, or what was measured instead, or why it was not judged."""
    said = conclude(step["verdicts"], parts, step.get("errors"))
    c = labels["colon"]
    if said.kind == HELD:
        return ([f"**{labels['answer']}**{c}{said.answer}"] if said.answer else []) + \
            [f"**{labels['lesson']}**{c}{said.lesson}"]
    if said.kind == FAILED:
        instead = "; ".join(f"{v['model']} {v['check']}: {v['observed']} ({labels['expected']} {v['expected']})"
                            for v in said.instead)
        return [f"**{labels['instead']}**{c}{instead}", labels["instead_note"]]
    return [f"**{labels['not_judged']}**{c}" + "; ".join(said.why),
            f"{labels['not_judged_note']} {said.lesson}"]


def sections(record: dict[str, Any], words: dict[str, Any], plot_names: dict[int, str]) -> list[Section]:
    labels = words["labels"]
    c = labels["colon"]
    out = []
    for step in record["steps"]:
        parts = words["steps"].get(step["id"], {})
        figures = [Figure(plot_names[step["n"]], labels["plot"])] if step["n"] in plot_names else []
        out.append(Section(f"step-{step['n']}", f"{step['n']}. {tidy(parts.get('title', step['id']))}",
                           [f"**{labels['question']}**{c}{tidy(parts.get('question', ''))}",
                            f"**{labels['watch']}**{c}{tidy(parts.get('watch', ''))}",
                            *conclusion(step, parts, labels)],
                           figures, [(labels["evidence"], evidence(step["verdicts"], labels))]))
    return out


def summary(record: dict[str, Any], labels: dict[str, str]) -> str:
    verdicts = [v for s in record["steps"] for v in s["verdicts"]]
    return labels["wall"].format(wall=duration(record.get("wall_s")), steps=len(record["steps"]),
                                 held=sum(1 for v in verdicts if v["ok"] is True),
                                 failed=sum(1 for v in verdicts if v["ok"] is False),
                                 not_judged=sum(1 for v in verdicts if v["ok"] is None))


def page(lang: str, title: str, subtitle: str, body: list[Section], plots: dict[str, bytes], footer: str) -> bytes:
    """One page: lab/report's style sheet and sections, the figures inlined."""
    nav = " ".join(f'<a href="#{s.id}">{report_html.inline(s.title)}</a>' for s in body)
    text = "\n".join(report_html.section(s, plots) for s in body)
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{report_html.CSS}</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<p class="subtitle">{report_html.inline(subtitle)}</p>
<nav>{nav}</nav>
{text}
<footer>{report_html.inline(footer)}</footer>
</main>
</body>
</html>
""".encode()


def render(record: dict[str, Any], run_dir: Path, langs: Iterable[str]) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    plot_names: dict[int, str] = {}
    for step in record["steps"]:
        svg = timeline(step, run_dir)
        if svg is not None:
            plot_names[step["n"]] = f"step-{step['n']:02d}.svg"
            plots[plot_names[step["n"]]] = svg
    files = {f"plots/{name}": svg for name, svg in plots.items()}
    for lang in langs:
        words = narration(lang)
        labels = words["labels"]
        body = sections(record, words, plot_names)
        host = record.get("host") or {}
        subtitle = tidy(" ".join((labels["subtitle"], summary(record, labels), labels["meta"].format(
            run=record["run"], cpus=host.get("cpus", "?"), platform=host.get("platform", "?")))))
        files[f"transcript.{lang}.html"] = page(lang, labels["title"], subtitle, body, plots, labels["written"])
        md = [f"# {labels['title']}", subtitle, *(report_md.section(s) for s in body), "---",
              f"_{labels['written']}_"]
        files[f"transcript.{lang}.md"] = ("\n\n".join(md) + "\n").encode()
    return files
