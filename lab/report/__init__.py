"""The compare report, rendered from a run directory and nothing else.

    files = render_run(Path("runs/20260101-120000-compare-11-models-ab12cd"))
    # {"results.csv": b"...", "report.html": b"...", "report.md": b"...",
    #  "plots/timeline-classic.svg": b"...", ...}
    render_again(run_dir, out, baseline_dir)    # `lab report`: the files written

Inputs: results.json (schema iolab.compare/2, or /1, SCHEMA.md) and, if
present, checks.json (iolab.checks/*, written by `lab compare --checks` or
`lab check`); and, for a before/after report, another run's results.json.
Outputs are pure functions of those files: rendering a run again gives the
same bytes.

    schema.py    what results.json and checks.json may hold (JSON Schema), read
                 strictly: a figure outside its domain is exit 2, naming the field
    data.py      loading, checking the schema, derived figures: who was served,
                 what limited a figure, what each model's checks said
    tables.py    the tables (HTML, Markdown, terminal)
    c10k.py      the C10K section's tables
    csvfile.py   results.csv
    baseline.py  each figure against another run's, with the noise
    plots.py     the figures (matplotlib, deterministic SVG)
    document.py  what the report says, section by section
    html.py      report.html, self-contained
    md.py        report.md, figures in plots/
    results.py   writing results.json: what `lab compare` keeps of what it measured
    terminal.py  what `lab compare` shows while it runs and when it ends
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .data import Run, load

__all__ = ["Rendered", "Run", "load", "render", "render_again", "render_run", "write_files"]


def render(run: Run, baseline: Run | None = None) -> dict[str, bytes]:
    """Every output file of the report, by path relative to the run directory
    (with ``baseline``: a section setting each figure against that run's)."""
    from . import csvfile, document, html, md, plots

    figures = plots.all_plots(run)
    doc = document.build(run, list(figures), baseline)
    files = {"results.csv": csvfile.csv_bytes(run), "report.html": html.render(doc, figures),
             "report.md": md.render(doc)}
    files.update({f"plots/{name}": svg for name, svg in figures.items()})
    return files


def render_run(run_dir: Path, baseline_dir: Path | None = None) -> dict[str, bytes]:
    return render(load(Path(run_dir)), load(Path(baseline_dir)) if baseline_dir else None)


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



@dataclass
class Rendered:
    run: Run
    baseline: Run | None
    folder: Path  # where the files went
    written: list[Path]


def render_again(source: Path, out: Path | None = None, baseline: Path | None = None) -> Rendered:
    """`lab report`: a run's report rendered from its files alone, into
    ``out`` (default: the run directory), against ``baseline`` if given."""
    if baseline is not None and baseline.resolve() == source.resolve():
        raise UsageError("--baseline names the run itself; give another compare run")
    this, before = load(source), load(baseline) if baseline else None
    folder = out or source
    try:
        written = write_files(folder, render(this, before))
    except OSError as exc:
        raise UsageError(f"cannot write the report into {folder}: {exc.strerror}") from None
    return Rendered(this, before, folder, written)
