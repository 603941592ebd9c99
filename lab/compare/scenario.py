"""A scenario's workload (c10k, syscalls), measured as `lab check` measures it."""

from __future__ import annotations

from typing import Any

from .. import checks
from ..errors import LabError
from ..measure.cgroup import server_cpu
from ..measure.environment import engine_cpu_model
from ..plan import models, scenarios
from ..report import results
from ..run.live import LiveRun
from ..run.probe import Bench, Probe, Target
from .plan import READY_TIMEOUT, SERVER_TRACE, START_FIELDS
from .workloads import Workload


def run_scenario(live: LiveRun, model: str, rep: int, w: Workload, env: dict[str, Any],
                 replicas: int = 1) -> dict[str, Any]:
    """A scenario's workload, measured as `lab check` measures it (the same
    code: lab.checks' probes and the scenario's judge): a fresh server with
    the scenario's server flags, the swarm by exec in an idle swarm
    container with the scenario's flags, the peak reading once the server
    has accepted every client.  The judge's figures are kept, and compare's
    own connection counters (results.c10k_counters) beside them."""
    scenario, spec = scenarios.get(str(w.scenario)), models.get(model)
    got: dict[str, Any] = {"error": None}
    bench = target = None
    # the scenario's own --trace wins; Bench.serve adds --trace itself, so it goes once
    trace = next((a.split("=", 1)[1] for a in scenario.server if a.startswith("--trace=")), SERVER_TRACE)
    args = [a for a in scenario.server if not a.startswith("--trace=")]
    try:
        bench = Bench(live, saved_under=f"probes/r{rep}", replicas=replicas)
        target = bench.serve(spec, args=args, trace=trace, timeout=READY_TIMEOUT)
        if env["engine"]["cpu_model"] is None:
            env["engine"]["cpu_model"] = engine_cpu_model(target.container)
        ctx = checks.Context(spec, scenario, target, checks.tolerances(spec))
        verdicts = checks.check(bench, ctx)
        if "main" not in ctx.probes:
            raise LabError(verdicts[0].observed)
        if w.kind == "cost":  # its figures are the judge's; no throughput (traced runs are slowed)
            got.update(results.cost_record(verdicts, _server(target)))
        else:
            got.update(_record(ctx, verdicts[0], target))
    except Exception as exc:  # a probe or judge that breaks is a failed measurement, not a lost run
        got["error"] = str(getattr(exc, "explanation", None) or exc) or type(exc).__name__
    finally:
        if target is not None:
            target.close()
        live.discard(target.container if target else live.containers.get(model), f"{model}.r{rep}.{w.name}")
        live.discard(bench.swarm_container if bench else live.containers.get("swarm"),
                     f"swarm.{model}-r{rep}-{w.name}")
    return got


def _record(ctx: checks.Context, verdict: checks.Verdict, target: Target) -> dict[str, Any]:
    """c10k's record: the swarm's results, the peak reading, the counters."""
    probe, reading = ctx.probes["main"], ctx.readings.get("main", {})
    counters = results.c10k_counters(ctx.events(probe), probe.results, reading.get("peak_t"),
                                     verdict.figures.get("kept_to_the_end"))
    return results.scenario_record(probe, reading, verdict, _server(target), _cpu(probe, reading, target), counters)


def _server(target: Target) -> dict[str, Any]:
    start = next(iter(target.events.matching(lambda e: e["ev"] == "start")), {})
    return {"command": target.container.command(), "ready_after_s": round(target.healthy_after, 3),
            "start": {k: start.get(k) for k in START_FIELDS}}


def _cpu(probe: Probe, reading: dict[str, Any], target: Target) -> dict[str, Any]:
    """The server's CPU between the check's readings just before the swarm
    started and after it ended (the ramp included, so no CPU per reply)."""
    spans = [(reading["cpu_before"], reading["cpu_after"])] if "cpu_after" in reading else []
    return server_cpu(spans, 0.0, target.cgroup.source, (probe.results.get("started") or {}).get("monotonic"))
