"""Running the tour: each step's experiments against live containers, judged as `lab check` judges.

    done = tour(TourRequest(lang="en", start=3), show)

One run (runs/<when>-tour-...), one step after another.  A step runs each of
its (model, scenarios) through lab/checks' run_model, the function `lab
check` runs for every model: the same probes, the same judges, the same
retries on a busy host, the same Verdicts.  The tour adds only eyes: its
Bench tells the live view which server is up and which probe runs, and keeps
the step's files apart (steps/NN-id/).  Each step's containers are removed
before the next starts.  tour.json (rewritten after every step, so an
interrupted tour keeps what it saw), checks.json in `lab check`'s format, and
the transcript in every language are written into the run directory.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..checks import Verdict, as_json, run_model
from ..checks.verdict import NOT_JUDGED
from ..console import say
from ..engine import Gone
from ..errors import LabError
from ..measure.environment import host_environment
from ..plan import models, scenarios
from ..plan.models import Model
from ..plan.scenarios import Scenario, judged_keys
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench, Probe, Target
from . import transcript
from .lesson import outcome
from .steps import LANGUAGES, Step, load_steps, narration, select

SCHEMA = "iolab.tour/1"


@dataclass(frozen=True)
class TourRequest:
    lang: str = "en"
    step: int | None = None  # --step N: that one
    start: int | None = None  # --from N: it and the rest
    orchestrator: str | None = None


@dataclass
class TourOutcome:
    record: dict[str, Any]  # tour.json
    verdicts: list[Verdict]
    run_dir: Path


class Show(Protocol):
    """What the person sees: a step's words, its live view, its answer; the pause between steps."""

    def begin(self, step: Step, of: int) -> None: ...

    def running(self, model: str, scenario: str) -> None: ...

    def attach(self, target: Target) -> None: ...

    def probe(self, title: str, clients: int | None) -> None: ...

    def end(self, step: Step, record: dict[str, Any]) -> None: ...

    def pause(self) -> bool: ...  # False: stop the tour here

    def close(self) -> None: ...  # whatever happened: the terminal as it was


class ShownBench(Bench):
    """lab/run's Bench, unchanged in what it runs and records, with eyes: the
    view is told of each server and probe; the step's files go under steps/NN-id/."""

    def __init__(self, live: LiveRun, show: Show, step: Step) -> None:
        super().__init__(live, saved_under=step.folder)
        self.show, self.step = show, step

    def serve(self, model: Model, args: list[str] | None = None, trace: str = "msg",
              timeout: float = 60) -> Target:
        target = super().serve(model, args, trace, timeout)
        self.show.attach(target)
        return target

    def swarm(self, target: Target, name: str, flags: list[str], timeout: float = 120,
              save: bool = True) -> Probe:
        if save:  # a probe of the check (not a STATS question or a readiness poke)
            self.show.probe(f"{target.model.name} · {name}", clients_in(flags))
        return super().swarm(target, name, flags, timeout, save)

    def remove(self, target: Target) -> None:
        """As Bench.remove, the log kept under the step's name (a model may serve in several steps)."""
        with contextlib.suppress(Gone):
            self.live.dir.write_log(f"{self.step.folder}/{target.model.name}", target.container.logs())
            target.container.remove()

    def close(self) -> None:
        """The step's swarm container goes with the step."""
        self.live.discard(self.swarm_container, f"{self.step.folder}/swarm")


def clients_in(flags: list[str]) -> int | None:
    found = [f.split("=", 1)[1] for f in flags if f.startswith("--clients=")]
    return int(found[-1]) if found and found[-1].isdigit() else None


def unjudged(model: Model, found: list[Scenario], why: str) -> list[Verdict]:
    """A verdict for each key the step would have judged, when its server could not even run."""
    return [Verdict(model.name, s.name if key == s.expect else f"{s.name}:{key}", key, s.claim,
                    f"{key}: {model.expect.get(key)}", NOT_JUDGED + why, None)
            for s in found for key in judged_keys(model, s)]


def run_step(live: LiveRun, step: Step, show: Show) -> tuple[dict[str, Any], list[Verdict]]:
    began = time.monotonic()
    verdicts: list[Verdict] = []
    errors: list[str] = []
    bench = ShownBench(live, show, step)
    try:
        for exp in step.run:
            model = models.get(exp.model)
            found = [scenarios.get(name) for name in exp.scenarios]
            try:
                verdicts += run_model(bench, model, found,
                                      lambda m, s, v: show.running(m, s) if v is None else None)
            except LabError as exc:  # its server did not start (io_uring refused, say): said, and on
                errors.append(f"{model.name}: {exc}")
                verdicts += unjudged(model, found, str(exc))
    finally:
        bench.close()
    scenario, probe = step.plot_probe
    record = {"n": step.n, "id": step.id, "run": [{"model": e.model, "scenarios": list(e.scenarios)}
                                                   for e in step.run],
              "verdicts": [v.as_dict() for v in verdicts], "outcome": outcome([v.as_dict() for v in verdicts]),
              "errors": errors, "took_s": round(time.monotonic() - began, 1),
              "plot": {"scenario": scenario, "probe": probe,
                       "files": {m: f"{step.folder}/{m}/{scenario}-{probe}.results.json" for m in step.models}}}
    return record, verdicts


def tour(req: TourRequest, show: Show) -> TourOutcome:
    every = load_steps()
    chosen = select(every, req.step, req.start)
    narration(req.lang)  # an unknown language is bad input before anything starts
    eng = engine(req.orchestrator)
    began = time.monotonic()
    paused = 0.0
    verdicts: list[Verdict] = []
    what = f"step-{chosen[0].n}" if len(chosen) == 1 else f"steps-{chosen[0].n}-{chosen[-1].n}"
    params = {"lang": req.lang, "steps": [s.n for s in chosen], "orchestrator": eng.kind}
    with LiveRun(eng, "tour", what, say=say, params=params) as live, contextlib.closing(show):
        record: dict[str, Any] = {"schema": SCHEMA, "run": live.id, "lang": req.lang, "started": time.time(),
                                  "host": host_environment(), "steps": [], "wall_s": None, "paused_s": 0.0}
        for i, step in enumerate(chosen):
            show.begin(step, len(every))
            done, found = run_step(live, step, show)
            verdicts += found
            record["steps"].append(done)
            show.end(step, done)
            record.update(wall_s=round(time.monotonic() - began - paused, 1), paused_s=round(paused, 1))
            live.dir.write_json("tour.json", record)
            if i + 1 < len(chosen):
                waited = time.monotonic()
                go = show.pause()
                paused += time.monotonic() - waited
                if not go:
                    break
        record.update(wall_s=round(time.monotonic() - began - paused, 1), paused_s=round(paused, 1),
                      complete=len(record["steps"]) == len(chosen))
        write(live, record, verdicts)
    return TourOutcome(record, verdicts, live.dir.path)


def write(live: LiveRun, record: dict[str, Any], verdicts: list[Verdict]) -> None:
    """tour.json, checks.json (as `lab check` writes it) and the transcript in every language."""
    live.dir.write_json("checks.json", as_json(verdicts, {"run": live.id, "verb": "tour",
                                                          "models": sorted({v.model for v in verdicts}),
                                                          "duration_s": record["wall_s"]}))
    for name, data in transcript.render(record, live.dir.path, LANGUAGES).items():
        live.dir.write_bytes(name, data)
    record["transcripts"] = sorted(transcript.names(LANGUAGES))
    live.dir.write_json("tour.json", record)
