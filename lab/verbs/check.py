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
import time
from typing import Any

from rich.live import Live
from rich.table import Table

from .. import checks
from ..console import err, escape, out, say
from ..engine import Engine
from ..errors import EnvironmentProblem, UsageError
from ..plan import models, scenarios as scenario_files
from ..run import images
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench
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
            worst = checks.outcome(verdicts)
            self.cells[(model, scenario)] = CELL[worst]
            if self.live is None:
                say(f"{model:<11} {scenario:<17} " + ("pass" if worst == "held" else "; ".join(
                    ("" if v.ok is None else "FAIL: ") + v.observed for v in verdicts if not v.ok)))
        if self.live is not None:
            self.live.update(self.table())


def final_table(verdicts: list[checks.Verdict]) -> Table:
    t = Table(title="lab check: expected and observed", header_style="bold", show_lines=False)
    for col in ("model", "check", "expected", "observed", "result"):
        t.add_column(col, overflow="fold")
    for v in verdicts:
        t.add_row(v.model, v.check, escape(v.expected), escape(v.observed), MARK[v.ok])
    return t


def usable(eng: Engine, chosen: list[models.Model], explicit: bool) -> list[models.Model]:
    """The models the base image can run.  One named that it cannot: exit 2
    before anything starts; under --all, left out with a line saying why."""
    lacking = images.lacking(eng, [m.name for m in chosen], say)
    if lacking and explicit:
        name, missing = next(iter(lacking.items()))
        raise EnvironmentProblem(images.needs_line(name, missing))
    for name, missing in lacking.items():
        say(f"left out: {images.needs_line(name, missing)}")
    return [m for m in chosen if m.name not in lacking]


def run(args: argparse.Namespace) -> int:
    _args.replicas_need_swarm(args)
    if args.all and args.models:
        raise UsageError("name models or use --all, not both")
    if not args.all and not args.models:
        raise UsageError(f"which models? name some or use --all (models: {', '.join(models.all_models())})")
    overrides = models.parse_expect(args.expect)
    chosen = [m for m in models.all_models().values() if m.kind == "model"] if args.all \
        else [models.get(m) for m in args.models]
    chosen = [m.with_expect(overrides) for m in chosen]
    scenarios = scenario_files.chosen(args.scenario)
    plan = {m.name: [s.name for s in scenario_files.applicable(m, scenarios)] for m in chosen}
    if not any(plan.values()):
        raise UsageError("no check applies: these models declare none of the keys the scenarios judge "
                         "(see their model.yaml expect, or --expect)")
    skips = [s for m in chosen for s in scenario_files.skipped(m, scenarios)]
    for s in skips:
        say(f"skipped: {s['model']} {s['check']}: {s['why']}")
    began = time.monotonic()
    eng = engine(args.orchestrator)
    chosen = usable(eng, chosen, explicit=not args.all)
    what = "all" if args.all else "-".join(args.models)
    params = {"models": [m.name for m in chosen], "scenarios": [s.name for s in scenarios],
              "expect_overrides": overrides, "orchestrator": eng.kind, "swarm_replicas": args.swarm_replicas}
    verdicts: list[checks.Verdict] = []
    board = Board([m.name for m in chosen], [s.name for s in scenarios],
                  {(m.name, s.name) for m in chosen for s in scenarios if s.name not in plan[m.name]},
                  live=sys.stderr.isatty() and not args.json)
    with LiveRun(eng, "check", what, say=say, params=params) as live:
        bench = Bench(live, replicas=args.swarm_replicas)
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
            "scenarios": {s.name: str(s.file) for s in scenarios}, "expect_overrides": overrides,
            "duration_s": round(took, 1)}, skips)
        live.dir.write_json("checks.json", report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        out.print(final_table(verdicts))
        n = checks.counts(verdicts)
        out.print(f"{n['held']} of {len(verdicts)} expectations held, {n['failed']} failed, "
                  f"{n['not_judged']} not judged ({took:.0f}s); run directory {live.dir.path}", markup=False)
    return checks.conclude(verdicts, f"{live.dir.path}/checks.json")
