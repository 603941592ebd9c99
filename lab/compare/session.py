"""lab compare from start to end: the plan, every model's repeats, then the report.

    outcome = compare(Request(models="epoll,threads", repeat=1))
    outcome.doc          # results.json, as written to outcome.run_dir
    exit_status(outcome.doc, outcome.checks)

Each model runs in its own fresh server container per repeat, alone on the
engine (the previous model's containers are removed first, so their CPU never
colours the next one's figures): repeat.py.  The native reference runs first
when it is there, as the ceiling row.  Real servers are also classified
(lab/observe's probes, on a fresh server of their own); --checks then runs
the behaviour checks against the same models, in the same run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checks, config
from ..console import say
from ..engine import Engine, orchestrator
from ..errors import EXIT_FAILED, EXIT_NOT_JUDGED, LabError, UsageError
from ..measure.environment import environment
from ..observe import classify
from ..observe.probes import classify_model
from ..plan import compose, models, scenarios
from ..plan.commands import program
from ..report import render_run, results
from ..report.terminal import Progress
from ..run import images
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench
from .plan import SERVER_TRACE, Plan, Request, comparable, make_plan
from .repeat import measure_model
from .workloads import Workload
from .wrk import wrk_available


@dataclass
class Outcome:
    doc: dict[str, Any]  # results.json
    checks: dict[str, Any] | None  # checks.json, with --checks
    run_dir: Path


def compare(req: Request) -> Outcome:
    """Plan, measure every model's repeats (and classifications, and the
    checks), write results.json and render the report."""
    catalogue = comparable(models.all_models())
    topology = compose.load_topology(config.compose_file())
    plan = make_plan(req, catalogue, topology)
    if plan.wrk and (why := wrk_available()):
        raise UsageError(why)
    params = _params(req, plan)
    scenarios.traceable(orchestrator(req.orchestrator), [scenarios.get(w.scenario) for w in plan.workloads
                                                         if w.scenario])
    eng = engine(req.orchestrator)
    kept = [m.name for m in images.runnable(eng, [catalogue[n] for n in plan.models], explicit=bool(req.models),
                                            say=say)]
    plan.models[:] = kept  # the plan and params hold this list
    params["orchestrator"] = eng.kind
    _announce(plan, req)
    what = plan.models[0] if len(plan.models) == 1 else f"{len(plan.models)}-models"
    with LiveRun(eng, "compare", what, say=say, params=params, topology=topology) as live:
        doc = _new_doc(live, plan, params, topology, eng)
        report = _measure(live, plan, req, catalogue, doc)
        doc["run"]["ended_wall"] = round(time.time(), 3)
        live.dir.write_json("results.json", doc)
        for rel, content in render_run(live.dir.path).items():
            live.dir.write_bytes(rel, content)
    return Outcome(doc, report, live.dir.path)


def _params(req: Request, plan: Plan) -> dict[str, Any]:
    """run.json's and results.json's `params`."""
    return {"models": plan.models, "targets": req.targets, "scenarios": [w.name for w in plan.workloads],
            "repeat": req.repeat, "duration": req.duration, "clients": plan.clients, "checks": bool(req.checks),
            "reference": next((m for m in plan.models if plan.kinds[m] == "reference"), None),
            "orchestrator": req.orchestrator or None, "swarm_replicas": req.swarm_replicas}


def _announce(plan: Plan, req: Request) -> None:
    """One line: what will run, and about how long it takes."""
    planned = sum((plan.seconds(w) + 0.3) * req.repeat for m in plan.models for w in plan.workloads
                  if not plan.skipped(m, w)) + 1.5 * len(plan.models) * req.repeat
    say(f"comparing {_n(len(plan.models), 'model')} x {_n(req.repeat, 'repeat')} x "
        f"{_n(len(plan.workloads), 'workload')} ({', '.join(w.name for w in plan.workloads)}): "
        f"about {planned / 60:.1f} min" + (", then the behaviour checks" if req.checks else ""))


def _new_doc(live: LiveRun, plan: Plan, params: dict[str, Any], topology: compose.Topology,
             eng: Engine) -> dict[str, Any]:
    """results.json before anything is measured, with the image the run uses."""
    image = live.ensure_image()
    doc = results.new(live.id, {**params, "argv": ["lab", *sys.argv[1:]], "server_trace": SERVER_TRACE,
                               "server_commands": plan.server_commands,
                               "swarm_base_command": program(topology.service("swarm").spec["command"])},
                      environment(eng), [workload_doc(w, plan) for w in plan.workloads])
    doc["environment"]["containers"]["image"] = image
    return doc


def _measure(live: LiveRun, plan: Plan, req: Request, catalogue: dict[str, models.Model],
             doc: dict[str, Any]) -> dict[str, Any] | None:
    """Every model's repeats (and classification) into ``doc``, then the
    checks with --checks: checks.json, else None."""
    steps = sum(req.repeat for m in plan.models for w in plan.workloads if not plan.skipped(m, w)) \
        + sum(1 for m in plan.models if req.classify or plan.kinds[m] == "server")  # a classification each
    began = time.monotonic()
    with Progress(steps) as ui:
        for name in plan.models:
            entry = doc["models"][name] = {
                "kind": plan.kinds[name], "summary": catalogue[name].summary,
                "expect": catalogue[name].expect, "server_command": plan.server_commands[name],
                "skipped": skipped_doc(plan, name), "repeats": []}
            for rep in range(1, req.repeat + 1):
                entry["repeats"].append(measure_model(live, plan, name, rep, ui, doc["environment"]))
                results.note_repeat(doc, name, entry["repeats"][-1])
            if req.classify or plan.kinds[name] == "server":
                entry["classification"] = classify_target(live, catalogue[name], ui, req.swarm_replicas)
        doc["run"]["measured_s"] = round(time.monotonic() - began, 1)
        live.dir.write_json("results.json", doc)  # the figures are safe before the checks begin
        if not req.checks:
            return None
        report = run_checks(live, [catalogue[m] for m in plan.models], ui, req.swarm_replicas)
        live.dir.write_json("checks.json", report)
        return report


def classify_target(live: LiveRun, model: models.Model, ui: Progress, replicas: int) -> dict[str, Any]:
    """`lab classify`'s probes on a fresh server of its own: the inferred
    class beside the declared one (results.json's models.<m>.classification)."""
    bench = None
    try:
        with ui.step(f"{model.name} classify", 12.0):
            bench = Bench(live, saved_under="classify", replicas=replicas)
            seen, found = classify_model(bench, model)
        return {**classify.judged_against(found, classify.declared(model)), "observed": seen.as_dict()}
    except LabError as exc:
        return {"error": str(getattr(exc, "explanation", None) or exc)}
    finally:
        if bench is not None:
            live.discard(bench.swarm_container, f"swarm.{model.name}-classify")


def run_checks(live: LiveRun, chosen: list[models.Model], ui: Progress, replicas: int = 1) -> dict[str, Any]:
    """`lab check`'s code against ``chosen``, in this run: checks.json."""
    began = time.monotonic()
    scenario_list = scenarios.chosen(None)
    verdicts: list[checks.Verdict] = []
    bench = Bench(live, saved_under="checks", replicas=replicas)

    def progress(model: str, scenario: str, found: list[checks.Verdict] | None) -> None:
        if found is not None:
            words = {True: "held", False: "FAILED", None: "not judged"}
            ui.note(f"check {model} {scenario}: " + "; ".join(f"{words[v.ok]}" + ("" if v.ok else f" ({v.observed})")
                                                             for v in found))
    try:
        for model in chosen:
            verdicts += checks.run_model(bench, model, scenario_list, progress)
    finally:
        live.discard(bench.swarm_container, "swarm.checks")
    skips = [s for m in chosen for s in scenarios.skipped(m, scenario_list)]
    meta = {"run": live.id, "models": [m.name for m in chosen],
            "scenarios": {s.name: str(s.file) for s in scenario_list},
            "duration_s": round(time.monotonic() - began, 1), "by": "lab compare --checks"}
    return checks.as_json(verdicts, meta, skips)


def exit_status(doc: dict[str, Any], report: dict[str, Any] | None) -> int:
    """1 if a measurement or a verdict failed; 3 if a verdict was not judged; else 0."""
    oks = [c.get("ok") for c in (report or {}).get("checks", [])]
    oks += [(rec.get("check") or {}).get("ok") for m in doc["models"].values() for rep in m["repeats"]
            for rec in rep["workloads"].values() if rec.get("check")]
    oks += [v.get("ok") for m in doc["models"].values() for rep in m["repeats"]
            for rec in rep["workloads"].values() for v in (rec.get("cost") or {}).get("verdicts", [])]
    if any(ok is False for ok in oks):
        say(f"{sum(1 for ok in oks if ok is False)} expectation(s) did not hold: see the report's verdicts")
    elif any(ok is None for ok in oks):
        say(f"{sum(1 for ok in oks if ok is None)} expectation(s) could not be judged: see the report's verdicts")
    if doc["errors"] or any(ok is False for ok in oks):
        return EXIT_FAILED
    return EXIT_NOT_JUDGED if any(ok is None for ok in oks) else 0


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def skipped_doc(plan: Plan, model: str) -> dict[str, str]:
    """{workload: why} for what ``model`` does not run (``workload/wrk``: wrk's part)."""
    found = {w.name: why for w in plan.workloads if (why := plan.skipped(model, w))}
    if plan.wrk and plan.kinds.get(model) == "reference":
        found.update({f"{w.name}/wrk": "wrk speaks HTTP; the reference answers the line protocol only"
                      for w in plan.workloads if w.wrk})
    return found


def workload_doc(w: Workload, plan: Plan) -> dict[str, Any]:
    doc = {"name": w.name, "title": w.title, "kind": w.kind, "about": w.about, "flags": w.flags,
           "warmup_s": w.warmup, "measure_s": plan.measure(w)}
    if w.scenario:  # where its flags came from, and the server flags it ran with
        doc.update(scenario=w.scenario, server_flags=scenarios.get(w.scenario).server)
    if plan.wrk and w.wrk:
        doc["wrk_seconds"] = plan.wrk_seconds(w)
    return doc
