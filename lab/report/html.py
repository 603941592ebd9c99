"""report.html: one self-contained file.  The figures are inlined as base64
SVG images, the style sheet is in the page; nothing is fetched from anywhere,
so it opens the same in any browser, online or not."""

from __future__ import annotations

import base64
import html
import re

from .document import Document, Section
from .tables import Table

CSS = """
:root { --ink:#1f2328; --muted:#59636e; --line:#d8dee4; --band:#f6f8fa; --bad:#b03a2e; --good:#1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 28px 60px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 40px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
p { margin: 8px 0; max-width: 900px; }
.subtitle { color: var(--muted); margin: 0 0 14px; }
nav { font-size: 14px; margin: 0 0 8px; }
nav a { color: #0969da; text-decoration: none; margin-right: 16px; white-space: nowrap; }
code { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
       background: var(--band); padding: 1px 4px; border-radius: 4px; }
figure { margin: 14px 0 18px; }
figure img { display: block; width: 100%; max-width: 1000px; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 2px; }
.scroll { overflow-x: auto; margin: 6px 0 4px; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { text-align: left; background: var(--band); font-weight: 600; vertical-align: bottom; min-width: 3.5em; }
td.r, th.r { text-align: right; }
td.r { font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfbfc; }
tr.fail td { color: var(--bad); }
tr.ceiling td { background: #f4f1fb; font-style: italic; }
td.best { font-weight: 700; background: #dafbe1 !important; }
td.ok { color: var(--good); font-weight: 600; }
td.fail { color: var(--bad); font-weight: 600; }
td.unknown { color: #7d5a00; background: #fff5c2 !important; font-weight: 600; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 12px; }
footer { color: var(--muted); font-size: 12px; margin-top: 48px; border-top: 1px solid var(--line); padding-top: 8px; }
"""


def inline(text: str) -> str:
    """Escape, then the two bits of Markdown the report's prose uses."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def table(t: Table) -> str:
    aligns = t.aligns()
    head = "".join(f'<th class="{"r" if a == "r" else "l"}">{html.escape(c)}</th>'
                   for c, a in zip(t.columns, aligns))
    body = []
    for r, (row, cls) in enumerate(zip(t.rows, t.row_class)):
        cells = "".join(f'<td class="{" ".join(filter(None, ("r" if a == "r" else "l", t.cls(r, c))))}">'
                        f"{html.escape(v)}</td>" for c, (v, a) in enumerate(zip(row, aligns)))
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    show_head = any(c for c in t.columns)
    parts = ['<div class="scroll"><table>']
    if show_head:
        parts.append(f"<thead><tr>{head}</tr></thead>")
    parts.append("<tbody>" + "\n".join(body) + "</tbody></table></div>")
    parts += [f'<p class="note">{inline(n)}</p>' for n in t.notes]
    return "\n".join(parts)


def section(s: Section, plots: dict[str, bytes]) -> str:
    parts = [f'<section id="{s.id}">', f"<h2>{inline(s.title)}</h2>"]
    parts += [f"<p>{inline(p)}</p>" for p in s.paragraphs]
    for f in s.figures:
        svg = base64.b64encode(plots[f.file]).decode()
        parts.append(f'<figure><img alt="{html.escape(f.alt)}" src="data:image/svg+xml;base64,{svg}">'
                     f"<figcaption>{html.escape(f.alt)} (plots/{html.escape(f.file)})</figcaption></figure>")
    for caption, t in s.tables:
        if caption:
            parts.append(f"<h3>{inline(caption)}</h3>")
        parts.append(table(t))
    parts.append("</section>")
    return "\n".join(parts)


def render(doc: Document, plots: dict[str, bytes]) -> bytes:
    nav = " ".join(f'<a href="#{s.id}">{inline(re.sub(r"^[0-9]+. ", "", s.title))}</a>' for s in doc.sections)
    body = "\n".join(section(s, plots) for s in doc.sections)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(doc.title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>{html.escape(doc.title)}</h1>
<p class="subtitle">{inline(doc.subtitle)}</p>
<nav>{nav}</nav>
{body}
<footer>Rendered by <code>lab report</code> from this run's <code>results.json</code>; the same files
come out every time it is rendered again.</footer>
</main>
</body>
</html>
"""
    return page.encode()
