"""lab status: every run this lab has on the engine, and how it is doing."""

from __future__ import annotations

import argparse
import json
import time

from rich.table import Table

from ..console import out
from ..run.context import inventory
from ..run.runs import describe
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="list the lab's runs and containers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _args.orchestrator_seen(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    runs = [describe(res) for res in inventory().runs().values()]
    if args.json:
        out.print_json(json.dumps({"runs": runs, "at": time.time()}))
        return 0
    if not runs:
        out.print("no lab runs on this engine (start one with `lab up MODEL`)")
        return 0
    table = Table(show_header=True, header_style="bold")
    for col in ("run", "orchestrator", "verb", "owner", "container", "state", "health", "address"):
        table.add_column(col)
    for r in runs:
        first = True
        for c in r["containers"] or [{"name": "-", "state": "-", "health": "-", "ip": ""}]:
            head = (r["run"], r["orchestrator"], r["verb"], r["owner"]) if first else ("",) * 4
            table.add_row(*head, c["name"], c["state"], c["health"], c["ip"])
            first = False
    out.print(table)
    return 0
