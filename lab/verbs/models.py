"""lab models: the server models, what each one is and what it promises."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from .. import models as catalogue
from ..console import out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the server models and what each one does")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    found = catalogue.all_models()
    if args.json:
        out.print_json(json.dumps({n: {"summary": m.summary, "description": m.description,
                                       "expect": m.expect} for n, m in found.items()}))
        return 0
    table = Table(show_header=True, header_style="bold", expand=False, show_lines=True)
    table.add_column("model", style="bold cyan", no_wrap=True)
    table.add_column("what it is")
    for name, m in found.items():
        table.add_row(name, f"[bold]{m.summary}[/]\n{m.description}")
    out.print(table)
    return 0
