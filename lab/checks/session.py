"""`lab check` and `lab run`: the checks against live targets, in a run of their own.

    outcome = check(CheckRequest(models=["epoll"], scenarios=["stalls"]), view)
    outcome = run_scenario(RunRequest("c10k", models=["epoll"]), progress)

Each chooses the targets and scenarios (bad input is a UsageError before
anything starts), opens one LiveRun with one client swarm for all of them,
runs every applicable check (runner.py) and writes the verdicts into the run
directory: checks.json for `lab check`, results.json for `lab run`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Protocol

from ..console import say
from ..engine import orchestrator
from ..errors import UsageError
from ..plan import models, scenarios
from ..plan.models import Model
from ..plan.scenarios import Scenario
from ..run import images
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench
from .runner import Progress, run_model
from .verdict import Verdict, as_json


@dataclass
class Outcome:
    verdicts: list[Verdict]
    report: dict[str, Any]  # checks.json (`lab check`) or results.json (`lab run`)
    run_dir: Path
    took_s: float = 0.0


@dataclass(frozen=True)
class CheckRequest:
    models: list[str] = field(default_factory=list)
    every: bool = False  # --all: every Python model
    scenarios: list[str] = field(default_factory=list)  # names or files; none: every default scenario
    expect: list[str] = field(default_factory=list)  # KEY=VALUE overrides
    orchestrator: str | None = None
    swarm_replicas: int = 1


class View(Protocol):
    """What shows the checks' progress, entered while they run: updated as
    each check starts (None) and ends."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...

    def update(self, model: str, scenario: str, verdicts: list[Verdict] | None) -> None: ...


# names of the models, of the scenarios, and the (model, scenario) pairs that do not apply
ViewFor = Callable[[list[str], list[str], set[tuple[str, str]]], View]


def check(req: CheckRequest, view_for: ViewFor) -> Outcome:
    """`lab check`: every applicable scenario against every target chosen."""
    if req.every and req.models:
        raise UsageError("name models or use --all, not both")
    if not req.every and not req.models:
        raise UsageError(f"which models? name some or use --all (models: {', '.join(models.all_models())})")
    overrides = models.parse_expect(req.expect)
    chosen = [m for m in models.all_models().values() if m.kind == "model"] if req.every \
        else [models.get(m) for m in req.models]
    chosen = [m.with_expect(overrides) for m in chosen]
    found = scenarios.chosen(req.scenarios)
    applies = {m.name: [s.name for s in scenarios.applicable(m, found)] for m in chosen}
    if not any(applies.values()):
        raise UsageError("no check applies: these models declare none of the keys the scenarios judge "
                         "(see their model.yaml expect, or --expect)")
    skips = [s for m in chosen for s in scenarios.skipped(m, found)]
    for s in skips:
        say(f"skipped: {s['model']} {s['check']}: {s['why']}")
    began = time.monotonic()
    scenarios.traceable(orchestrator(req.orchestrator), found)
    eng = engine(req.orchestrator)
    chosen = images.runnable(eng, chosen, explicit=not req.every, say=say)
    params = {"models": [m.name for m in chosen], "scenarios": [s.name for s in found],
              "expect_overrides": overrides, "orchestrator": eng.kind, "swarm_replicas": req.swarm_replicas}
    view = view_for([m.name for m in chosen], [s.name for s in found],
                    {(m.name, s.name) for m in chosen for s in found if s.name not in applies[m.name]})
    with LiveRun(eng, "check", "all" if req.every else "-".join(req.models), say=say, params=params) as live:
        verdicts = judge_all(live, chosen, found, req.swarm_replicas, view.update, view)
        took = time.monotonic() - began
        report = as_json(verdicts, {"run": live.id, "models": [m.name for m in chosen],
                                    "scenarios": {s.name: str(s.file) for s in found},
                                    "expect_overrides": overrides, "duration_s": round(took, 1)}, skips)
        live.dir.write_json("checks.json", report)
    return Outcome(verdicts, report, live.dir.path, took)


@dataclass(frozen=True)
class RunRequest:
    scenario: str  # a name in scenarios/ or a file
    models: list[str] = field(default_factory=list)
    every: bool = False  # --all: every Python model that declares what the scenario judges
    orchestrator: str | None = None
    swarm_replicas: int = 1


def run_scenario(req: RunRequest, progress: Progress) -> Outcome:
    """`lab run`: one scenario against the targets chosen, every figure its judge computed."""
    if req.every and req.models:
        raise UsageError("name models with --model, or use --all, not both")
    if not req.every and not req.models:
        raise UsageError(f"lab run {req.scenario}: which models? name them with --model M (repeatable) "
                         "or use --all")
    scenario = scenarios.get(req.scenario)
    if req.every:  # the Python models; references and real servers are named
        chosen = [m for m in models.all_models().values()
                  if m.kind == "model" and scenarios.judged_keys(m, scenario)]
    else:
        chosen = [models.get(m) for m in req.models]
    for m in chosen:
        if not scenarios.judged_keys(m, scenario):
            raise UsageError(f"{m.name}'s model.yaml declares none of {', '.join(scenario.judges)}, "
                             f"which {scenario.name} judges")
    if not chosen:
        raise UsageError(f"no model declares {', '.join(scenario.judges)}, which {scenario.name} judges")
    scenarios.traceable(orchestrator(req.orchestrator), [scenario])
    eng = engine(req.orchestrator)
    with LiveRun(eng, "run", scenario.name, say=say,
                 params={"scenario": scenario.name, "models": [m.name for m in chosen],
                         "orchestrator": eng.kind, "swarm_replicas": req.swarm_replicas}) as live:
        verdicts = judge_all(live, chosen, [scenario], req.swarm_replicas, progress)
        report = as_json(verdicts, {"run": live.id, "scenario": scenario.name, "models": [m.name for m in chosen]})
        live.dir.write_json("results.json", report)
    return Outcome(verdicts, report, live.dir.path)


def judge_all(live: LiveRun, chosen: list[Model], found: list[Scenario], replicas: int, progress: Progress,
              view: ContextManager[Any] | None = None) -> list[Verdict]:
    """Every applicable scenario against each of ``chosen``, with one client swarm for all."""
    bench = Bench(live, replicas=replicas)
    verdicts: list[Verdict] = []
    with view if view is not None else contextlib.nullcontext():
        for model in chosen:
            verdicts += run_model(bench, model, found, progress)
    return verdicts
