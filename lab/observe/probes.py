"""classify's probes: what a server does, observed from outside, into a classify.Observation.

    ep = Endpoint(name, "server:12345", protocol_only(name, "http", 12345), unit)
    seen = observe(bench, ep)                 # a few seconds, bounded
    classify.infer(seen)

Every probe is the client swarm (lab/run/probe.py's Bench: by exec in one swarm
container) speaking the server's protocol, and, when the server's container
is known (`ep.unit`), readings of that container through lab/engine's Unit:

    exchange     one request: answered in this protocol, or bad input (exit 2)
    idle         the container's cgroup CPU for half a second, no client
    at once      6 clients, a request every 40 ms, 10 each, then they leave;
                 the process table sampled meanwhile (threads, processes)
    load         8 clients ping-pong for a second; each thread's CPU time
                 (/proc/<pid>/task/<tid>/stat) before, during and after
    stalls       the protocol's own slow requests (see SLOW_OFFERS), sent by
                 one client while two others send every 50 ms

Nothing here reads a model.yaml: an Endpoint carries a name, an address,
a protocol and a port, which is all the swarm needs.  Load is bounded: at
most 8 connections, and every swarm run has its own duration.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, cast

from ..engine import EngineError, Unit
from ..errors import LabError, UsageError
from ..measure import analysis as a, reach
from ..measure.cgroup import Cgroup
from ..measure.procs import Sample, top
from ..plan.models import Model
from ..run.probe import Bench, Probe, Target
from . import classify
from .classify import MIN_TICKS, SERVING_SHARE, Observation, Stall

CLIENTS, LOAD_CLIENTS = 6, 8
IDLE_S = 0.5
AT_ONCE = [f"--clients={CLIENTS}", "--pattern=interval", "--interval=40", "--count=10", "--duration=15",
           "--connect-timeout=5", "--trace=off"]
LOAD = [f"--clients={LOAD_CLIENTS}", "--pattern=pingpong", "--duration=1.0", "--connect-timeout=5", "--trace=off"]
# What each protocol itself offers to make a server wait, never a target's declaration:
# (kind, request, ms).  HTTP and memcached have no such request.
SLOW_OFFERS: dict[str, list[tuple[str, str, float]]] = {
    "line": [("blocking", "BLOCK 500", 500), ("cooperative", "SLEEP 500", 500),
             ("cpu", "WORK 2000000", 0)],  # CPU-bound: judged against its own reply time (0.2-1 s here)
    "redis": [("blocking", "DEBUG SLEEP 0.5", 500)],  # redis's own command (a server may refuse it)
    "postgres": [("blocking", "SELECT pg_sleep(0.5)", 500)],
}
ERROR_TEXTS = {"line": ("ERR",), "redis": ("(error)",), "postgres": ("ERROR", "FATAL"),
               "http": ("HTTP 4", "HTTP 5"), "memcached": ("ERROR", "CLIENT_ERROR", "SERVER_ERROR")}
CPU_MS_MIN = 150  # a shorter WORK cannot tell a stall from the 50 ms between requests
SAMPLE_EVERY = 0.1  # seconds between process-table samples
TICKS_EVERY = 0.2  # seconds between readings of the threads' CPU time
Say = Callable[[str], None]


@dataclass
class Endpoint:
    """What classify probes: an address the swarm reaches, how to speak to
    it, and the container that runs it, if the lab can see one."""

    name: str
    address: str  # host:port, as the swarm resolves it
    model: Model  # its name, protocol and port only: what lab/run/probe.py's Bench.swarm reads
    unit: Unit | None = None

    @property
    def protocol(self) -> str:
        return self.model.protocol

    @property
    def procs_dir(self) -> str | None:
        return Cgroup(self.unit).procs_dir if self.unit is not None else None


def protocol_only(name: str, protocol: str, port: int) -> Model:
    """A Model that says how to talk to a server and nothing of what it does."""
    return Model(name, "", "", {}, None, {}, Path("-"), "server", protocol, port)


def observe(bench: Bench, ep: Endpoint, say: Say = lambda _: None) -> Observation:
    """Every probe against ``ep``, into one Observation."""
    o = Observation(ep.name, ep.protocol, clients=CLIENTS, load_clients=LOAD_CLIENTS, table=ep.unit is not None)
    exchange(bench, ep)
    if ep.unit is None:
        o.notes.append("idle CPU, processes and threads: no container to read, so from timing alone")
    else:
        say(f"{ep.name}: idle CPU")
        o.idle_cores = idle(ep.unit)
    say(f"{ep.name}: who is served at once ({CLIENTS} clients)")
    at_once(bench, ep, o)
    if ep.unit is not None:
        say(f"{ep.name}: who does the work ({LOAD_CLIENTS} clients, ping-pong)")
        load(bench, ep, o)
    say(f"{ep.name}: stalls")
    stalls(bench, ep, o)
    return o


# -- the probes ---------------------------------------------------------------------------

def exchange(bench: Bench, ep: Endpoint) -> None:
    """One request in the protocol: a reply, or one line saying what went
    wrong (UsageError: an unreachable target or the wrong protocol).  The
    line protocol must echo: anything else answers a line with a line."""
    message = "iolab classify {i}"
    flags = [f for f in reach.EXCHANGE if not f.startswith(("--trace=", "--connect-timeout="))] + [
        "--trace=msg", "--connect-timeout=5"]  # a busy engine's DNS can take seconds to answer
    if ep.protocol == "line":
        flags.append(f"--message={message}")
    try:
        probe = swarm(bench, ep, "exchange", flags, 30, save=False)
    except LabError as exc:
        raise UsageError(f"{ep.address} could not be probed: {exc}") from None
    why = reach.answered(probe.results, error_replies_ok=True)
    if why:
        raise UsageError(f"{ep.address} did not answer one {ep.protocol} request: {why} (is it listening, and "
                         f"is --protocol {ep.protocol} what it speaks?)")
    got = next(iter(a.reply_texts(probe.output).get(1, [])), None)
    if ep.protocol == "line" and got is not None and got.rstrip("\r\n") != message.format(i=1):
        raise UsageError(f"{ep.address} does not speak the line protocol: it answered {got[:60]!r} to "
                         f"{message.format(i=1)!r} (choose its --protocol)")


def idle(unit: Unit) -> float | None:
    """Cores the container used with no client, over IDLE_S."""
    cgroup = Cgroup(unit)
    try:
        first = cgroup.read()
        threading.Event().wait(IDLE_S)  # the measurement window itself
        return a.cores(first, cgroup.read())
    except (OSError, LabError):
        return None


def at_once(bench: Bench, ep: Endpoint, o: Observation) -> None:
    """Who is served at once (client side), and what grows meanwhile."""
    with sampling(ep.unit) as samples:
        probe = swarm(bench, ep, "at-once", AT_ONCE, 60)
    results = probe.results
    spans = a.client_spans(results, probe.ended)
    o.connected = len(a.conns_of(results))
    o.answered = len(spans)
    # A client the server closed after serving it was cut short, it did not leave: it
    # neither counts at once nor makes room (Apache event closes idle keep-alives).
    closed = a.closed_by_server(results)
    cut = {conn for conn, client in a.conns_of(results).items() if client in closed and conn in spans}
    o.closed_by_server = len(cut)
    spans = {conn: span for conn, span in spans.items() if conn not in cut}
    o.peak = a.peak_overlap(spans.values())
    if spans and o.peak < len(spans):
        order = sorted(spans.values())
        first_leave = min(end for _, end in order[:o.peak])
        o.waited = all(start >= first_leave for start, _ in order[o.peak:])
    if ep.unit is not None and len(samples) >= 2:
        base = samples[0]
        o.processes = (base.processes, max(s.processes for s in samples))
        o.threads = (base.total_threads, max(s.total_threads for s in samples))
    elif ep.unit is not None:
        o.notes.append("processes and threads: fewer than two samples of the process table")


def load(bench: Bench, ep: Endpoint, o: Observation) -> None:
    """Which threads do the work while LOAD_CLIENTS clients ping-pong."""
    assert ep.unit is not None
    unit, procs_dir = ep.unit, ep.procs_dir
    readings: list[dict[tuple[int, int], int]] = []
    stop = threading.Event()

    def read() -> None:
        try:
            readings.append(task_ticks(unit, procs_dir))
        except (EngineError, OSError):
            pass

    def run() -> None:
        while not stop.wait(TICKS_EVERY):
            read()

    read()
    thread = threading.Thread(target=run, daemon=True, name="ticks")
    thread.start()
    try:
        swarm(bench, ep, "load", LOAD, 60)
    finally:
        stop.set()
        thread.join(5)
    read()
    if len(readings) < 2:
        o.notes.append("which threads worked: the threads' CPU time could not be read")
        return
    used = work_per_thread(readings)
    o.ticks = sum(used.values())
    if o.ticks < MIN_TICKS:
        o.notes.append(f"which threads worked: the load cost only {o.ticks} CPU ticks, too few to tell")
        return
    serving = [k for k, n in used.items() if n >= max(2, SERVING_SHARE * o.ticks / LOAD_CLIENTS)]
    o.serving_threads, o.serving_processes = len(serving), len({pid for pid, _ in serving})


def stalls(bench: Bench, ep: Endpoint, o: Observation) -> None:
    """The protocol's own slow requests, one client's, while two others send."""
    offers = SLOW_OFFERS.get(ep.protocol, [])
    if not offers:
        o.stalls.append(Stall("blocking", "a slow request", 0, skipped=f"the {ep.protocol} protocol offers none "
                                                                       "(a server's own is a declaration)"))
        return
    if o.peak <= 1:
        o.stalls += [Stall(k, r, ms, skipped="one client at a time: nobody else is served meanwhile anyway")
                     for k, r, ms in offers]
        return
    plan = [f"--at={0.4 + i:g}:1:{request}" for i, (_, request, _) in enumerate(offers)]
    flags = ["--clients=3", "--workers=1", "--pattern=interval", "--interval=50",
             f"--duration={0.4 + len(offers) + 0.8:g}", "--connect-timeout=5", "--trace=off", *plan]
    results = swarm(bench, ep, "stalls", flags, 60).results
    for kind, request, ms in offers:
        act = a.action(results, request)
        stall = Stall(kind, request, ms)
        if act is None or act.get("outcome") != "reply":
            stall.skipped = f"no reply ({(act or {}).get('outcome', 'not sent')})"
        elif str(act.get("reply", "")).startswith(ERROR_TEXTS.get(ep.protocol, ())):
            stall.skipped = f"the server refused it: {str(act.get('reply'))[:80]}"
        else:
            if kind == "cpu":  # it lasts what the CPU makes of it
                stall.ms = (a.own_seconds(act) or 0.0) * 1000
                if stall.ms < CPU_MS_MIN:
                    stall.skipped = f"it took only {stall.ms:.0f} ms: too short to tell a stall from the gap " \
                                    "between requests"
                    o.stalls.append(stall)
                    continue
            stall.worst_ms = a.others_worst_ms(results, act["client"], act["sent_t"], stall.ms / 1000)
            if stall.worst_ms is None:
                stall.skipped = "no other client sent a request meanwhile"
        o.stalls.append(stall)


def swarm(bench: Bench, ep: Endpoint, name: str, flags: list[str], timeout: float, save: bool = True) -> Probe:
    """The swarm against ``ep`` (Bench.swarm reads only its address and
    model); its results kept in the run directory unless ``save`` is false."""
    return bench.swarm(cast(Target, ep), name, flags, timeout=timeout, save=save)


# -- reading the container -------------------------------------------------------------------

class sampling:
    """The process table every SAMPLE_EVERY in the background (nothing without a unit)."""

    def __init__(self, unit: Unit | None) -> None:
        self.unit, self._stop = unit, threading.Event()
        self.taken: list[Sample] = []
        self._thread: threading.Thread | None = None

    def __enter__(self) -> list[Sample]:
        if self.unit is not None:
            self._take()
            self._thread = threading.Thread(target=self._run, daemon=True, name="classify-sampler")
            self._thread.start()
        return self.taken

    def _take(self) -> bool:
        try:
            self.taken.append(top(self.unit))  # type: ignore[arg-type]
            return True
        except (EngineError, KeyError, ValueError):
            return False

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY) and self._take():
            pass

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._take()


def parse_task_stats(text: str) -> dict[tuple[int, int], tuple[str, int, int]]:
    """`/proc/<pid>/task/<tid>/stat:<its line>` lines into {(pid, tid): (name,
    parent pid, CPU ticks: utime + stime)}."""
    found: dict[tuple[int, int], tuple[str, int, int]] = {}
    for line in text.splitlines():
        path, sep, stat = line.partition(":")
        parts = path.split("/")
        if not sep or len(parts) != 6 or not parts[2].isdigit() or not parts[4].isdigit() or ")" not in stat:
            continue
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        try:
            found[(int(parts[2]), int(parts[4]))] = (name, int(fields[1]), int(fields[11]) + int(fields[12]))
        except (IndexError, ValueError):
            continue
    return found


def own_tasks(stats: dict[tuple[int, int], tuple[str, int, int]]) -> dict[tuple[int, int], int]:
    """The server's own threads and their ticks: descendants of the
    container's init (docker-init), never the init itself nor what an exec
    started (its parent is outside the container: 0 in its pid namespace).
    Without an init, the processes whose parent is outside, and theirs."""
    parent = {pid: ppid for (pid, _), (_, ppid, _) in stats.items()}
    init = {pid for (pid, _), (name, _, _) in stats.items() if name == "docker-init"}
    roots = init or {pid for pid, ppid in parent.items() if ppid not in parent and (ppid != 0 or pid == 1)}

    def mine(pid: int) -> bool:
        seen: set[int] = set()
        while pid not in seen:
            if pid in roots:
                return pid not in init or bool(seen)  # under the init, or a root itself without one
            seen.add(pid)
            if pid not in parent:
                return False
            pid = parent[pid]
        return False

    return {k: ticks for k, (_, _, ticks) in stats.items() if mine(k[0])}


def task_ticks(unit: Unit, procs_dir: str | None) -> dict[tuple[int, int], int]:
    """Each of the server's threads and its CPU ticks so far: from this
    machine's /proc when the engine is local, else by one exec of grep."""
    lines: list[str] = []
    if procs_dir:
        try:
            with open(os.path.join(procs_dir, "cgroup.procs")) as f:
                pids = f.read().split()
            for pid in pids:
                try:
                    for tid in os.listdir(f"/proc/{pid}/task"):
                        with open(f"/proc/{pid}/task/{tid}/stat") as f:
                            lines.append(f"/proc/{pid}/task/{tid}/stat:{f.read().strip()}")
                except FileNotFoundError:
                    continue  # it ended meanwhile
            return own_tasks(parse_task_stats("\n".join(lines)))
        except OSError:
            pass
    done = unit.exec(["sh", "-c", "exec grep -s -H '' /proc/[0-9]*/task/[0-9]*/stat"], stderr=False)
    return own_tasks(parse_task_stats(done.output.decode(errors="replace")))


def work_per_thread(readings: list[dict[tuple[int, int], int]]) -> dict[tuple[int, int], int]:
    """CPU ticks each thread used from the first reading to its last: a
    thread born meanwhile from zero (a backend forked for a client), one
    that ended between readings up to when it was last seen."""
    first, last = readings[0], {}
    for r in readings:
        last.update(r)
    return {k: n - first.get(k, 0) for k, n in last.items()}



def classify_model(bench: Bench, model: Model, protocol: str | None = None,
                   say: Say = lambda _: None) -> tuple[Observation, classify.Classification]:
    """A lab model or real server, started fresh (its own trace off), probed
    and classified, then removed.  Only how to reach it comes from its
    model.yaml: its protocol (or ``protocol``) and port.  An uncertain
    result is observed once more, on a fresh server: a busy host can make a
    server close what it would keep (Apache event's idle connections), and
    then too few clients are left to tell who waited."""
    seen, found = _classify_once(bench, model, protocol, say)
    if found.cls == classify.UNCERTAIN:
        say(f"{model.name}: uncertain ({'; '.join(seen.notes) or 'no note'}); once more on a fresh server")
        first = seen.notes
        seen, found = _classify_once(bench, model, protocol, say)
        seen.notes.insert(0, "a first observation was uncertain" + (f" ({'; '.join(first)})" if first else ""))
    return seen, found


def _classify_once(bench: Bench, model: Model, protocol: str | None,
                   say: Say) -> tuple[Observation, classify.Classification]:
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
