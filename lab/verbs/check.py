"""lab check MODEL [MODEL...] | --all: prove each model's claims against live containers.

Every scenario in scenarios/ runs against every target that declares a key
it judges (services/<name>/model.yaml); each check a target does not
declare is skipped, with one line saying so.  --all is every Python model;
references and real servers (kind: reference, server) are checked by name.  A live table shows progress;
the final table gives expected, observed and the result of each: pass,
FAIL, or "not judged" (yellow: the evidence the judge needs was missing,
or the host was too busy for the claim; such a check runs once more first).
Everything captured (each container's log, the swarm's results, the figures
each check computed) lands in the run directory, with checks.json.

--expect KEY=VALUE overrides a declaration of the named models for this
run (VALUE is YAML, checked as model.yaml is; recorded in checks.json):
`lab check epoll --scenario stalls --expect block_stalls_others=false`
must turn exactly that check red.

Exit 0 when every expectation held, 1 when one did not, 3 when none failed
but some could not be judged, 2 when no check applies.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.live import Live
from rich.table import Table

from ..checks.session import CheckRequest, check
from ..checks.verdict import Verdict, conclude, counts, outcome
from ..console import err, escape, out, say
from . import _args

MARK = {None: "[yellow]not judged[/]", True: "[green]pass[/]", False: "[red]FAIL[/]"}
CELL = {"held": "[green]✓[/]", "failed": "[red]✗[/]", "not judged": "[yellow]?[/]"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="prove each model's declared behaviour against live containers",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", metavar="MODEL", help="models to check")
    p.add_argument("--all", action="store_true",
                   help="every Python model (references and real servers are checked by name)")
    p.add_argument("--scenario", action="append", default=[], metavar="NAME|FILE",
                   help="only this scenario (a name in scenarios/ or a YAML file); repeatable")
    p.add_argument("--expect", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model.yaml expectation of the named models for this run; repeatable")
    p.add_argument("--json", action="store_true", help="print checks.json on stdout instead of tables")
    _args.orchestrator(p, replicas=True)
    p.set_defaults(func=run)


class Board:
    """The live model x check table (on a terminal), or plain lines."""

    def __init__(self, names: list[str], scenarios: list[str], skipped: set[tuple[str, str]], live: bool) -> None:
        self.cells: dict[tuple[str, str], str] = {key: "[dim]–[/]" for key in skipped}
        self.names, self.scenarios = names, scenarios
        self.live = Live(self.table(), console=err, refresh_per_second=4, transient=False) if live else None

    def __enter__(self) -> "Board":
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.stop()

    def table(self) -> Table:
        t = Table(title="lab check", header_style="bold")
        t.add_column("model")
        for s in self.scenarios:
            t.add_column(s, justify="center")
        for m in self.names:
            t.add_row(m, *(self.cells.get((m, s), "[dim]·[/]") for s in self.scenarios))
        return t

    def update(self, model: str, scenario: str, verdicts: list[Verdict] | None) -> None:
        if verdicts is None:
            self.cells[(model, scenario)] = "[cyan]…[/]"
        else:
            worst = outcome(verdicts)
            self.cells[(model, scenario)] = CELL[worst]
            if self.live is None:
                say(f"{model:<11} {scenario:<17} " + ("pass" if worst == "held" else "; ".join(
                    ("" if v.ok is None else "FAIL: ") + v.observed for v in verdicts if not v.ok)))
        if self.live is not None:
            self.live.update(self.table())


def final_table(verdicts: list[Verdict]) -> Table:
    t = Table(title="lab check: expected and observed", header_style="bold", show_lines=False)
    for col in ("model", "check", "expected", "observed", "result"):
        t.add_column(col, overflow="fold")
    for v in verdicts:
        t.add_row(v.model, v.check, escape(v.expected), escape(v.observed), MARK[v.ok])
    return t


def run(args: argparse.Namespace) -> int:
    done = check(CheckRequest(args.models, args.all, args.scenario, args.expect, args.orchestrator,
                              args.swarm_replicas),
                 lambda names, scenarios, skipped: Board(names, scenarios, skipped,
                                                         live=sys.stderr.isatty() and not args.json))
    if args.json:
        print(json.dumps(done.report, indent=2))
    else:
        out.print(final_table(done.verdicts))
        n = counts(done.verdicts)
        out.print(f"{n['held']} of {len(done.verdicts)} expectations held, {n['failed']} failed, "
                  f"{n['not_judged']} not judged ({done.took_s:.0f}s); run directory {done.run_dir}", markup=False)
    return conclude(done.verdicts, f"{done.run_dir}/checks.json")
