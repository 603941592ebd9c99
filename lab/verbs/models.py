"""lab models: the server models, what each one is and what it promises."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from ..console import escape, out
from ..plan import models as catalogue


KINDS = [("model", "Python models"), ("reference", "references (calibration, not under study)"),
         ("server", "real servers")]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the server models and what each one does")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    found = catalogue.all_models()
    if args.json:
        out.print_json(json.dumps({n: {"kind": m.kind, "protocol": m.protocol, "port": m.port,
                                       "summary": m.summary, "description": m.description,
                                       "expect": m.expect} for n, m in found.items()}))
        return 0
    for kind, title in KINDS:  # the Python models first; references and real servers apart
        chosen = {n: m for n, m in found.items() if m.kind == kind}
        if not chosen:
            continue
        table = Table(title=title, show_header=True, header_style="bold", expand=False, show_lines=True)
        table.add_column("model" if kind == "model" else kind, style="bold cyan", no_wrap=True)
        table.add_column("what it is")
        for name, m in chosen.items():
            table.add_row(name, f"[bold]{escape(m.summary)}[/]\n{escape(m.description)}")
        out.print(table)
    return 0
