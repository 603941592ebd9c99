"""What else `lab compare` reads around a measurement: the whole host's CPU
(was the machine full?), and wrk, a second load generator beside the swarm.

    host = CpuOnly(HostCpu())            # /proc/stat, read like a cgroup
    host.start(); ...; host.stop()
    window_cores(host, start, end)       # busy cores over a window, every process counted
    run_wrk(live, wrk_command(...), ...) # wrk in a tools container (lab/run/tools.py): its figures
"""

from __future__ import annotations

import os
import time
from typing import Any

from .. import config
from ..engine import Unit
from ..measure.cgroup import Cgroup, Cpu
from ..measure.sampler import Sampler
from ..plan import compose
from ..report import results
from ..run.live import LiveRun

HZ = os.sysconf("SC_CLK_TCK")  # /proc/stat's unit (USER_HZ)
WRK_PATH_BYTES = 64  # the request path's length: the HTTP twin of the swarm's 64-byte lines


class HostCpu:
    """The engine's machine's busy CPU time from /proc/stat (the engine is
    local: this is that machine), read like a cgroup so a Sampler
    can follow it: everything that ran, the other work on the host too."""

    procs_dir = None  # no processes to snapshot: a Sampler reads CPU only

    def read(self) -> Cpu:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]  # user .. steal (guest is in user)
        t = time.monotonic()
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return Cpu(t, (sum(fields) - idle) / HZ, None, "host")


class CpuOnly(Sampler):
    """A sampler of CPU alone (the swarm's, the host's): no process snapshots."""

    SNAPSHOT_PERIOD = 3600.0


def window_cores(sampler: Sampler | None, start: float, end: float) -> float | None:
    """Cores busy between two moments, interpolated between the sampler's readings."""
    if sampler is None or end <= start:
        return None
    a, b = sampler.at(start), sampler.at(end)
    return None if a is None or b is None else round((b - a) / (end - start), 4)


def wrk_command(target: str, connections: int, seconds: int, threads: int) -> list[str]:
    """Keep-alive GETs over ``connections``, one in flight on each (wrk's
    closed loop), for whole ``seconds``, with its latency distribution."""
    path = "/" + "x" * (WRK_PATH_BYTES - 1)
    return ["wrk", f"--threads={threads}", f"--connections={connections}", f"--duration={seconds}s",
            "--timeout=2s", "--latency", f"http://{target}{path}"]


def run_tool(live: LiveRun, argv: list[str], timeout: float) -> tuple[int | None, str]:
    """One bounded command in a tools container on the run's network
    (lab/run/tools.py): (exit status, what it printed)."""
    from ..run import tools

    done = tools.run(live, argv, timeout=timeout)
    return done.code, done.text + done.stderr.decode(errors="replace")


def run_wrk(live: LiveRun, command: list[str], seconds: int, threads: int, server: Unit,
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
        code, text = run_tool(live, command, timeout=seconds + 30.0)
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
    try:
        from ..run import tools
    except ImportError:
        return "--client wrk needs the tools container (lab/run/tools.py), which this lab does not have yet"
    if "tools" not in compose.load_topology(config.compose_file()).services:
        return f"--client wrk needs compose.yaml's `{tools.SERVICE_NAME}` service (the tools image with wrk)"
    return None
