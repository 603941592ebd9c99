"""report.md: the same report for a code host (GitHub, GitLab, ...), with
the figures as files beside it in plots/."""

from __future__ import annotations

from .document import Document, Section
from .tables import Table


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def table(t: Table) -> str:
    aligns = t.aligns()
    lines = ["| " + " | ".join(cell(c) for c in t.columns) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in aligns) + "|"]
    for r, (row, cls) in enumerate(zip(t.rows, t.row_class)):
        # the best of a column in bold; a verdict's colour is in its words already
        cells = [f"**{cell(v)}**" if t.cls(r, c) == "best" else cell(v) for c, v in enumerate(row)]
        if cls == "fail" and cells:
            cells[0] = f"**{cells[0]}** ✗"
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines)
    if t.notes:
        out += "\n\n" + "\n".join(f"_{n}_" for n in t.notes)
    return out


def section(s: Section) -> str:
    parts = [f"## {s.title}"]
    parts += s.paragraphs
    parts += [f"![{f.alt}](plots/{f.file})" for f in s.figures]
    for caption, t in s.tables:
        if caption:
            parts.append(f"### {caption}")
        parts.append(table(t))
    return "\n\n".join(parts)


def render(doc: Document) -> bytes:
    parts = [f"# {doc.title}", doc.subtitle]
    parts += [section(s) for s in doc.sections]
    parts.append("---\n\n_Rendered by `lab report` from this run's `results.json`; rendering it again gives "
                 "the same files. The same report, self-contained: `report.html`._")
    return ("\n\n".join(parts) + "\n").encode()
