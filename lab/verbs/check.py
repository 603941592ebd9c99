"""lab check MODEL [MODEL...] | --all: prove each model's claims against live containers.

Every scenario in scenarios/ runs against every model that declares the
expectation it judges (services/<model>/model.yaml).  A live table shows
progress; the final table gives expected, observed, pass or fail for each.
Everything captured (each container's log, the swarm's results, the figures
each check computed) lands in the run directory, with checks.json.
Exit 0 when every expectation held, 1 when one did not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from rich.live import Live
from rich.table import Table

from .. import checks, models
from ..console import err, out, say
from ..context import engine
from ..errors import ExpectationFailed, UsageError
from ..live import LiveRun
from ..probe import Bench

MARK = {None: "[yellow]?[/]", True: "[green]pass[/]", False: "[red]FAIL[/]"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="prove each model's declared behaviour against live containers",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", metavar="MODEL", help="models to check")
    p.add_argument("--all", action="store_true", help="every model")
    p.add_argument("--scenario", action="append", default=[], metavar="NAME|FILE",
                   help="only this scenario (a name in scenarios/ or a YAML file); repeatable")
    p.add_argument("--json", action="store_true", help="print checks.json on stdout instead of tables")
    p.set_defaults(func=run)


class Board:
    """The live model x check table (on a terminal), or plain lines."""

    def __init__(self, names: list[str], scenarios: list[str], live: bool) -> None:
        self.cells: dict[tuple[str, str], str] = {}
        self.names, self.scenarios = names, scenarios
        self.live = Live(self.table(), console=err, refresh_per_second=4, transient=False) if live else None

    def table(self) -> Table:
        t = Table(title="lab check", header_style="bold")
        t.add_column("model")
        for s in self.scenarios:
            t.add_column(s, justify="center")
        for m in self.names:
            t.add_row(m, *(self.cells.get((m, s), "[dim]·[/]") for s in self.scenarios))
        return t

    def update(self, model: str, scenario: str, verdicts: list[checks.Verdict] | None) -> None:
        if verdicts is None:
            self.cells[(model, scenario)] = "[cyan]…[/]"
        else:
            ok = all(v.ok for v in verdicts)
            self.cells[(model, scenario)] = "[green]✓[/]" if ok else "[red]✗[/]"
            if self.live is None:
                say(f"{model:<11} {scenario:<17} " + ("pass" if ok else "FAIL: " + "; ".join(
                    v.observed for v in verdicts if not v.ok)))
        if self.live is not None:
            self.live.update(self.table())


def final_table(verdicts: list[checks.Verdict]) -> Table:
    t = Table(title="lab check: expected and observed", header_style="bold", show_lines=False)
    for col in ("model", "check", "expected", "observed", "result"):
        t.add_column(col, overflow="fold")
    for v in verdicts:
        t.add_row(v.model, v.check, v.expected, v.observed, MARK[v.ok])
    return t


def run(args: argparse.Namespace) -> int:
    if args.all and args.models:
        raise UsageError("name models or use --all, not both")
    if not args.all and not args.models:
        raise UsageError(f"which models? name some or use --all (models: {', '.join(models.all_models())})")
    chosen = list(models.all_models().values()) if args.all else [models.get(m) for m in args.models]
    scenarios = checks.scenario_files(args.scenario)
    plan = {m.name: [s.name for s in checks.applicable(m, scenarios)] for m in chosen}
    if not any(plan.values()):
        raise UsageError("no scenario applies to these models (see their model.yaml expect keys)")
    began = time.monotonic()
    eng = engine()
    what = "all" if args.all else "-".join(args.models)
    params = {"models": [m.name for m in chosen], "scenarios": [s.name for s in scenarios]}
    verdicts: list[checks.Verdict] = []
    board = Board([m.name for m in chosen], [s.name for s in scenarios],
                  live=sys.stderr.isatty() and not args.json)
    with LiveRun(eng, "check", what, say=say, params=params) as live:
        bench = Bench(live)
        if board.live:
            board.live.start()
        try:
            for model in chosen:
                verdicts += checks.run_model(bench, model, scenarios, board.update)
        finally:
            if board.live:
                board.live.stop()
        took = time.monotonic() - began
        report: dict[str, Any] = checks.as_json(verdicts, {
            "run": live.id, "models": [m.name for m in chosen],
            "scenarios": {s.name: str(s.file) for s in scenarios}, "duration_s": round(took, 1)})
        live.dir.write_json("checks.json", report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        out.print(final_table(verdicts))
        failed = [v for v in verdicts if not v.ok]
        out.print(f"{len(verdicts) - len(failed)} of {len(verdicts)} expectations held "
                  f"({took:.0f}s); run directory {live.dir.path}")
    if not report["passed"]:
        raise ExpectationFailed(f"{sum(1 for v in verdicts if not v.ok)} expectation(s) did not hold; "
                                f"see {live.dir.path}/checks.json")
    return 0
