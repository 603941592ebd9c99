"""wrk beside the swarm: the HTTP twin of a workload, from a tools container.

    wrk_available()                  why --client wrk cannot run here, or None
    run_wrk(live, plan, model, w, ...)  wrk against the server, with the server's
                                     and the whole host's CPU meanwhile: its figures
"""

from __future__ import annotations

import time
from typing import Any

from .. import config
from ..engine import Unit
from ..measure.cgroup import Cgroup
from ..measure.host import CpuOnly, HostCpu, window_cores
from ..plan import compose
from ..report import results
from ..run import tools
from ..run.live import LiveRun
from .plan import Plan
from .workloads import Workload

WRK_PATH_BYTES = 64  # the request path's length: the HTTP twin of the swarm's 64-byte lines


def wrk_command(plan: Plan, model: str, w: Workload, threads: int) -> list[str]:
    """wrk's HTTP twin of ``w``: as many keep-alive connections, one request
    in flight on each (wrk's closed loop), a path as long as the swarm's line."""
    return wrk_argv(plan.target(model), int(w.flags.get("clients", 50)), plan.wrk_seconds(w), threads)


def run_wrk(live: LiveRun, plan: Plan, model: str, w: Workload, server: Unit,
            env: dict[str, Any]) -> dict[str, Any]:
    """wrk's twin of ``w`` against the server: results.json's workload `wrk` record."""
    threads = int(env["engine"].get("cpus") or 2)
    return measure_wrk(live, wrk_command(plan, model, w, threads), plan.wrk_seconds(w), threads, server,
                       env["engine"].get("cpus"))


def wrk_argv(target: str, connections: int, seconds: int, threads: int) -> list[str]:
    """Keep-alive GETs over ``connections``, one in flight on each (wrk's
    closed loop), for whole ``seconds``, with its latency distribution."""
    path = "/" + "x" * (WRK_PATH_BYTES - 1)
    return ["wrk", f"--threads={threads}", f"--connections={connections}", f"--duration={seconds}s",
            "--timeout=2s", "--latency", f"http://{target}{path}"]


def measure_wrk(live: LiveRun, command: list[str], seconds: int, threads: int, server: Unit,
                engine_cpus: int | None) -> dict[str, Any]:
    """wrk against the server, with the server's and the whole host's CPU
    sampled meanwhile (wrk's own is not read: the limit rule can find the
    host full, or say not judged).  results.json's workload `wrk` record."""
    record: dict[str, Any] = {"command": command, "error": None, "requests_per_s": None}
    cgroup = Cgroup(server)
    samplers = [CpuOnly(cgroup), CpuOnly(HostCpu())] if cgroup.local else []  # type: ignore[arg-type]
    for s in samplers:
        s.start()
    began = time.monotonic()
    try:
        code, text = tools.run_text(live, command, timeout=seconds + 30.0)
    except Exception as exc:  # a tools container that cannot run is this measurement's failure
        record["error"] = f"wrk could not run: {str(getattr(exc, 'explanation', None) or exc)}"
        return record
    finally:
        for s in samplers:
            s.stop()
    ended = time.monotonic()
    record.update(exit_code=code, output=text[-4000:])
    try:
        record.update(results.parse_wrk(text))
    except ValueError as exc:
        record["error"] = f"wrk (exit {code}): {exc}: {text.strip().splitlines()[-1:] or 'no output'}"
        return record
    # the container's start and end are inside [began, ended]: wrk's own run is the middle of it
    span = record.get("duration_s") or seconds
    lo, hi = (began + ended - span) / 2, (began + ended + span) / 2
    record["limit_inputs"] = results.limit_inputs(
        window_cores(samplers[0], lo, hi) if samplers else None, None, "unknown", threads, None, engine_cpus,
        window_cores(samplers[1], lo, hi) if samplers else None)
    return record


def wrk_available() -> str | None:
    """Why --client wrk cannot run here, or None."""
    if "tools" not in compose.load_topology(config.compose_file()).services:
        return f"--client wrk needs compose.yaml's `{tools.SERVICE_NAME}` service (the tools image with wrk)"
    return None
