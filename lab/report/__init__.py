"""The compare report, rendered from a run directory and nothing else.

    files = render_run(Path("runs/20260101-120000-compare-11-models-ab12cd"))
    # {"results.csv": b"...", "report.html": b"...", "report.md": b"...",
    #  "plots/timeline-classic.svg": b"...", ...}

Inputs: results.json (schema iolab.compare/1, SCHEMA.md) and, if present,
checks.json (iolab.checks/1, written by `lab check`).  Outputs are pure
functions of those files: rendering a run again gives the same bytes.

    data.py      loading, checking the schema, derived figures
    tables.py    the tables (HTML, Markdown, terminal) and results.csv
    plots.py     the figures (matplotlib, deterministic SVG)
    document.py  what the report says, section by section
    html.py      report.html, self-contained
    md.py        report.md, figures in plots/
    results.py   writing results.json: what `lab compare` keeps of what it measured
    terminal.py  what `lab compare` shows while it runs and when it ends
"""

from __future__ import annotations

import os
from pathlib import Path

from .data import Run, load

__all__ = ["Run", "load", "render", "render_run", "write_files"]


def render(run: Run) -> dict[str, bytes]:
    """Every output file of the report, by path relative to the run directory."""
    from . import document, html, md, plots, tables

    figures = plots.all_plots(run)
    doc = document.build(run, list(figures))
    files = {"results.csv": tables.csv_bytes(run), "report.html": html.render(doc, figures),
             "report.md": md.render(doc)}
    files.update({f"plots/{name}": svg for name, svg in figures.items()})
    return files


def render_run(run_dir: Path) -> dict[str, bytes]:
    return render(load(Path(run_dir)))


def write_files(root: Path, files: dict[str, bytes]) -> list[Path]:
    """Write each file whole or not at all (a temporary name, then rename)."""
    written = []
    for rel, content in sorted(files.items()):
        target = Path(root) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(content)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(target)
    return written

