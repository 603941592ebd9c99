"""The tracing sidecar: strace counting a server's system calls, from beside it.

    with tracing(live, target.container, "tracer.epoll") as traced:   # attached before the block runs
        probe = bench.swarm(target, ...)
    traced.counts                                       # lab/measure/strace.py's SyscallCounts

The sidecar is compose.yaml's `tools` service (the tools image has strace),
in the same box as every lab container (user 10001, read-only root, limits,
the run's labels, so `lab down` and the sweep after a SIGKILL remove it
like anything else of the run), with three changes: it holds one
capability, SYS_PTRACE, and none other (cap_drop ALL stays); it joins no
network (network_mode none: it talks to nobody); and it shares the server's
PID namespace (pid: container:<server>), so it sees the server's processes
and nothing else of the host.  It runs no init of its own, so every other
process it sees but itself and the server's init (pid 1) is the server's:
`strace -c -f -p` each of them (-f: the threads and children they start).

strace is stopped with SIGINT after the workload, detaches and prints its
summary table, which is read from the sidecar's output.  A traced server
is slowed by every system call it makes (each stops it twice for strace):
a traced run's throughput is never a throughput figure.  A host that
refuses ptrace (strace: "Operation not permitted") is TraceRefused: the
claims are then not judged, never red or green.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator

from ..engine import EngineError, EngineTimeout, Unit
from ..errors import EnvironmentProblem, LabError
from ..measure.strace import REFUSED, SyscallCounts, parse_summary
from .live import LiveRun

KEY = "tracer"  # its name in the run, its logs and its labels
CAPABILITY = "SYS_PTRACE"
# Every process of the PID namespace but the server's init (1) and this shell
# (which becomes strace), then strace on them all.
SCRIPT = ('p=""; for d in /proc/[0-9]*; do n=${d#/proc/}; '
          '[ "$n" = 1 ] || [ "$n" = $$ ] || p="$p -p $n"; done; '
          'echo "tracing:$p"; exec strace -c -f $p')
ATTACH_S = 15.0  # bound on strace attaching to every process
POLL_S = 0.05  # between looks at its output while it attaches (no event to wait on: its log is the event)
STOP_S = 15.0  # bound on strace printing its summary after SIGINT


class TraceRefused(LabError):
    """This host does not let strace attach (ptrace refused): not judged, with why."""


@dataclass
class Traced:
    counts: SyscallCounts | None = None
    output: str = ""
    began: float = 0.0  # monotonic, once strace had attached
    ended: float = 0.0
    pids: list[str] = field(default_factory=list)


def sidecar_changes(server: Unit) -> dict[str, object]:
    """The UnitSpec fields that make the tools service the tracing sidecar."""
    return {"cap_drop": ("ALL",), "cap_add": (CAPABILITY,), "network_mode": "none",
            "pid_mode": f"container:{server.id}", "init": False, "healthcheck": None, "aliases": ()}


@contextlib.contextmanager
def tracing(live: LiveRun, server: Unit, name: str = KEY) -> Iterator[Traced]:
    """strace attached to every process of ``server`` while the block runs
    (``name``: its log's in the run directory)."""
    traced = Traced()
    unit = live.start("tools", command=["sh", "-c", SCRIPT], key=KEY, role=KEY, **sidecar_changes(server))
    try:
        traced.pids = _attached(unit)
        traced.began = time.monotonic()
        yield traced
        traced.ended = time.monotonic()
        traced.output = _stop(unit)
        if REFUSED in traced.output:
            raise TraceRefused(f"ptrace refused on this host: {_line(traced.output, REFUSED)}")
        try:
            traced.counts = parse_summary(traced.output)
        except ValueError as exc:
            raise EnvironmentProblem(f"strace printed no summary ({exc}): {traced.output.strip()[-200:]}") \
                from None
    finally:
        live.discard(unit, name)


def _attached(unit: Unit) -> list[str]:
    """The pids strace was given, once it has attached to each (or said why not)."""
    deadline = time.monotonic() + ATTACH_S
    while True:
        text = _output(unit)
        if REFUSED in text:
            raise TraceRefused(f"ptrace refused on this host: {_line(text, REFUSED)}")
        head = next((line for line in text.splitlines() if line.startswith("tracing:")), None)
        pids = head.split("-p")[1:] if head else []
        if pids and text.count(" attached") >= len(pids):
            return [p.strip() for p in pids]
        if head is not None and not pids:
            raise EnvironmentProblem("the tracing sidecar saw no process of the server to trace")
        if not unit.alive() or time.monotonic() > deadline:
            raise EnvironmentProblem(f"strace did not attach within {ATTACH_S:g}s: {text.strip()[-200:]}")
        time.sleep(POLL_S)


def _stop(unit: Unit) -> str:
    """SIGINT to strace, the sidecar's main process (it detaches and prints
    its summary), then its output.  Through the engine, not an exec: an
    exec'd process in a PID namespace that is not the sidecar's own would
    outlive strace and hold the exec's stream open."""
    try:
        unit.signal("SIGINT")
        unit.wait(STOP_S)
    except EngineTimeout:
        raise EnvironmentProblem(f"strace did not stop within {STOP_S:g}s of SIGINT") from None
    except EngineError as exc:
        raise EnvironmentProblem(f"cannot stop strace: {exc}") from None
    return _output(unit)


def _output(unit: Unit) -> str:
    return unit.logs(stdout=True, stderr=True).decode(errors="replace")


def _line(text: str, needle: str) -> str:
    return next((line.strip() for line in text.splitlines() if needle in line), needle)
