"""classify's probes: what a server does, observed from outside, into a classify.Observation.

    ep = Endpoint(name, "server:12345", protocol_only(name, "http", 12345), unit)
    seen = observe(bench, ep)                 # seconds, bounded
    classify.infer(seen)

The probes run where the client swarm runs (lab/run/probe.py's Bench: by exec
in one swarm container), speaking the server's protocol; the server's tasks
are read through lab/observe/tasks.py when its container is known
(`ep.unit`), or its process when it runs on this host (`ep.pid`):

    idle         the container's cgroup CPU for half a second, no client
    holds        services/swarm/holds.py: first one lone request, which must
                 be answered in the protocol (else bad input, exit 2); then K
                 connections each holding half a request, stepped and
                 bisected to the bound, a fresh request each time; the
                 tasks read every 50 ms meanwhile
    load         8 clients ping-pong for a second; each thread's CPU time
                 before and after (only where tasks are read: who does the work)

Nothing here reads a model.yaml: an Endpoint carries a name, an address, a
protocol and a port, which is all a client needs.  Load is bounded: at most
33 connections at once, every step a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, cast

from .. import config
from ..engine import Unit
from ..errors import EnvironmentProblem, LabError, UsageError
from ..measure import analysis as a
from ..measure.cgroup import Cgroup
from ..plan.models import Model
from ..run.probe import Bench, Probe, Target
from . import classify, tasks
from .classify import MIN_TICKS, SERVING_SHARE, Held, Observation

LOAD_CLIENTS = 8
WOKEN_SHARE = 0.25  # ... and woke for this share of a fair split of its replies (a helper: under 0.1)
IDLE_S = 0.5
STEPS = "1,2,4,8,16,32"  # K held: past the lab's pools (4) and the zoo's (3 and 4), within any box's tasks
HOLDS_TIMEOUT = 45.0  # seconds: the probe paces itself at about 1 s a step, 3 s for one that waits (twice)
READ_S = 0.03  # a task woken by bytes has read them well within this
LOAD = [f"--clients={LOAD_CLIENTS}", "--pattern=pingpong", "--duration=1.0", "--connect-timeout=5", "--trace=off"]
Say = Callable[[str], None]


@dataclass
class Endpoint:
    """What classify probes: an address a client reaches, how to speak to it,
    and where its tasks can be read (its container, or its host process)."""

    name: str
    address: str  # host:port, as the client resolves it
    model: Model  # its name, protocol and port only: what lab/run/probe.py's Bench.swarm reads
    unit: Unit | None = None
    pid: int | None = None  # a process on this host (lab classify 127.0.0.1:PORT --pid PID)

    @property
    def protocol(self) -> str:
        return self.model.protocol

    def task_source(self) -> tuple[tasks.Source | None, str]:
        if self.pid is not None:
            return tasks.of_pid(self.pid), f"/proc of process {self.pid} and its descendants"
        if self.unit is not None:
            return tasks.of_unit(self.unit)
        return None, ""


def protocol_only(name: str, protocol: str, port: int) -> Model:
    """A Model that says how to talk to a server and nothing of what it does."""
    return Model(name, "", "", {}, None, {}, Path("-"), "server", protocol, port)


def observe(bench: Bench | None, ep: Endpoint, say: Say = lambda _: None) -> Observation:
    """Every probe against ``ep``, into one Observation (``bench`` None: a
    process on this host, probed over loopback)."""
    source, where = ep.task_source()
    o = Observation(ep.name, ep.protocol, table=source is not None, table_from=where)
    if source is None:
        o.notes.append("processes and threads: no container or process to read, so from timing alone")
    elif ep.unit is not None:
        say(f"{ep.name}: idle CPU")
        o.idle_cores = idle(ep.unit)
    say(f"{ep.name}: holding unfinished requests (K = {STEPS})")
    holds(bench, ep, o, source)
    if source is not None and bench is not None:
        say(f"{ep.name}: who does the work ({LOAD_CLIENTS} clients, ping-pong)")
        load(bench, ep, o, source)
    return o


# -- the probes ---------------------------------------------------------------------------

def idle(unit: Unit) -> float | None:
    """Cores the container used with no client, over IDLE_S."""
    import threading
    cgroup = Cgroup(unit)
    try:
        first = cgroup.read()
        threading.Event().wait(IDLE_S)  # the measurement window itself
        return a.cores(first, cgroup.read())
    except (OSError, LabError):
        return None


def holds(bench: Bench | None, ep: Endpoint, o: Observation, source: tasks.Source | None) -> None:
    """The hold probe, with the server's tasks read meanwhile, into ``o``."""
    argv = ["-m", "swarm.holds", f"--target={ep.address}", f"--protocol={ep.protocol}", f"--steps={STEPS}",
            "--idle"]
    with tasks.Sampler(source) as readings:
        code, output = run_holds(bench, argv)
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    final = next((e for e in reversed(events) if e.get("ev") == "holds"), None)
    if final is None:
        raise EnvironmentProblem(f"the hold probe against {ep.address} ended (exit {code}) without its result")
    if final.get("error"):
        raise UsageError(f"{ep.address}: {final['error']}")
    steps = [e for e in events if e.get("ev") == "step"]
    fill(o, final, steps, readings if source is not None else [])


def run_holds(bench: Bench | None, argv: list[str]) -> tuple[int | None, str]:
    """The hold probe where the swarm runs, or here for a process on this host."""
    if bench is not None:
        return bench.run_client("holds", ["python3", *argv], HOLDS_TIMEOUT)
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=HOLDS_TIMEOUT,
                          env={**os.environ, "PYTHONPATH": str(config.SERVICES)})
    return done.returncode, done.stdout


def fill(o: Observation, final: dict[str, Any], steps: list[dict[str, Any]], readings: list[tasks.Reading]) -> None:
    """The probe's steps, each with what the tasks showed meanwhile."""
    o.bound, o.reach = final.get("bound"), int(final.get("reach") or 0)
    o.speaks_first, o.closes_after_reply = bool(final.get("speaks_first")), final.get("closes_after_reply")
    o.idle_parked = final.get("idle_parked")
    for s in steps:
        held = Held(int(s["k"]), str(s["mode"]), int(s["held"]), bool(s["answered"]),
                    None if s.get("answer_s") is None else round(1000 * s["answer_s"], 1),
                    bool(s.get("fresh_refused")), bool(s.get("again")))
        if readings:
            read_step(held, s, readings)
        if held.k == 0:
            o.base = (held.processes, held.threads) if held.processes is not None else None  # type: ignore[assignment]
        else:
            o.steps.append(held)
    if readings and o.base is None:
        o.notes.append("the process table: too few readings while the probe ran")
        o.table = False


def read_step(held: Held, s: dict[str, Any], readings: list[tasks.Reading]) -> None:
    """The step's tasks: counted while held; readers: tasks that woke just
    after each of the two parts of the halves went out (a timer or a
    housekeeping thread seldom wakes in both of two windows so short)."""
    during = [r for r in readings if s["t_held"] - tasks.EVERY <= r.t <= (s["t_fresh"] or s["t_end"])]
    if during:
        held.processes, held.threads = during[-1].processes, during[-1].threads
    if not held.k or not s.get("t_sent2"):
        return
    windows = [_window(readings, s[t]) for t in ("t_sent", "t_sent2")]
    if all(w is not None for w in windows):
        first, second = (tasks.woke(*w) for w in windows)  # type: ignore[misc]
        readers = first & second
        held.readers, held.reader_processes = len(readers), len({pid for pid, _ in readers})


def _window(readings: list[tasks.Reading], t: float) -> tuple[tasks.Reading, tasks.Reading] | None:
    """The readings around ``t``: the last before it, and the first READ_S after it."""
    before, after = _at_or_before(readings, t), _at_or_after(readings, t + READ_S)
    return (before, after) if before and after else None


def _at_or_before(readings: list[tasks.Reading], t: float) -> tasks.Reading | None:
    return next((r for r in reversed(readings) if r.t <= t), None)


def _at_or_after(readings: list[tasks.Reading], t: float) -> tasks.Reading | None:
    return next((r for r in readings if r.t >= t), None)


def load(bench: Bench, ep: Endpoint, o: Observation, source: tasks.Source) -> None:
    """Which threads do the work while LOAD_CLIENTS clients ping-pong."""
    try:
        first = source()
        replies = swarm(bench, ep, "load", LOAD, 60).summary.get("replies")
        last = source()
    except (LabError, OSError) as exc:
        o.notes.append(f"which threads worked: {exc}")
        return
    used = {k: t.ticks - first[k].ticks if k in first else t.ticks for k, t in last.items()}
    ticks = sum(used.values())
    if ticks < MIN_TICKS:
        o.notes.append(f"which threads worked: the load cost only {ticks} CPU ticks, too few to tell")
        return
    serving = serving_threads(first, last, used, ticks, replies)
    o.load_threads, o.load_processes = len(serving), len({pid for pid, _ in serving})


def serving_threads(first: dict[tasks.Key, tasks.Task], last: dict[tasks.Key, tasks.Task],
                    used: dict[tasks.Key, int], ticks: int, replies: Any) -> list[tasks.Key]:
    """The threads that did a share of the load's CPU and, where the wake-ups
    can be read, woke for a share of its replies: a worker handed requests, or
    a loop of its own, waits for each; a runtime's helper (Node's garbage
    collector threads) burns CPU but wakes a few dozen times a second."""
    cpu = [k for k, n in used.items() if n >= max(2, SERVING_SHARE * ticks / LOAD_CLIENTS)]
    if not isinstance(replies, int) or replies <= 0:
        return cpu

    def woke(k: tasks.Key) -> int:
        before = first[k].woken if k in first else 0
        return last[k].woken - before if last[k].woken >= 0 and before >= 0 else -1

    wakes = {k: woke(k) for k in cpu}
    if any(w < 0 for w in wakes.values()):
        return cpu  # not readable here: the CPU alone
    return [k for k in cpu if wakes[k] >= WOKEN_SHARE * replies / LOAD_CLIENTS]


def swarm(bench: Bench, ep: Endpoint, name: str, flags: list[str], timeout: float, save: bool = True) -> Probe:
    """The swarm against ``ep`` (Bench.swarm reads only its address and
    model); its results kept in the run directory unless ``save`` is false."""
    return bench.swarm(cast(Target, ep), name, flags, timeout=timeout, save=save)


# -- a target the lab starts --------------------------------------------------------------

def classify_model(bench: Bench, model: Model, protocol: str | None = None,
                   say: Say = lambda _: None) -> tuple[Observation, classify.Classification]:
    """A lab model or real server, started fresh (its own trace off), probed
    and classified, then removed.  Only how to reach it comes from its
    model.yaml: its protocol (or ``protocol``) and port."""
    say(f"{model.name}: starting it")
    target = bench.serve(model, trace="off")
    try:
        # By its address on the run's network, not its name: a busy engine's DNS can take
        # seconds to answer, and a client that cannot resolve never connects.
        ip = target.container.state().ip
        address = f"{ip}:{model.port}" if ip else target.address
        ep = Endpoint(model.name, address, protocol_only(model.name, protocol or model.protocol, model.port),
                      target.container)
        seen = observe(bench, ep, say)
    finally:
        target.close()
        bench.remove(target)
    return seen, classify.infer(seen)
