"""Inferring a server's concurrency model from what was observed, never from model.yaml.

`lab classify` (lab/observe/probes.py) runs a few bounded probes against a server
and records an Observation; infer() turns it into a Classification: a class,
its size where it has one, how sure, and the evidence behind it, line by
line.  The rules, in the order they are applied:

1. Who is served at once.  Six clients connect together; each sends a
   request every 40 ms, ten times, then leaves.  A client is served from its
   first reply until it leaves.  If only P of them are served at once and
   each of the others gets its first reply only after one has left, they
   waited for a free place: P = 1 is ONE AT A TIME; 1 < P < 6 is a POOL of P.
   If a client was answered early, or never, nothing is inferred from it.
   A client the server closed after answering it (Apache event closes idle
   keep-alive connections) was cut short, not waiting: it is left out.
2. What grows with the clients (the container's process table, sampled
   while those six were connected): a process each is a PROCESS PER
   CONNECTION, a thread each a THREAD PER CONNECTION.  Growth by some other
   number is not inferred from.
3. Who does the work (each thread's CPU time, from /proc, while eight
   clients ping-pong for a second): a pool's processes or threads tell a
   PROCESS POOL from a THREAD POOL.  With everyone served at once and
   nothing growing, one thread doing the work is a single-threaded EVENT
   LOOP; a few threads each serving several connections are an EVENT LOOP
   WITH N WORKERS; as many threads as clients cannot be told from a pool
   larger than the clients: uncertain.
4. Stalls (the protocol's own slow requests: BLOCK, SLEEP and WORK for the
   lab's line protocol, redis DEBUG SLEEP, PostgreSQL pg_sleep; HTTP and
   memcached offer none, and the probe is skipped, saying so): CPU-bound
   work (WORK), or a blocking request, that stalls every other client says
   one thread runs everyone; work that stalls nobody says the others have
   threads or processes of their own.  A blocking call may not block a
   cooperative scheduler that patched it (gevent), so only CPU-bound work
   contradicts one thread.  Without the process table (a server at an
   address the lab cannot look into), stalls are what tell an event loop
   from the rest; with it, a stall that contradicts rule 3 makes the answer
   uncertain.
5. Idle CPU (the container's cgroup, no client): about a core means the
   loop busy-polls.  It is said, not classified.

Confidence: "high" when the process table and the timing agree, "medium"
from timing alone where the timing is unambiguous, "low" where a class fits
but another cannot be ruled out, and the class "uncertain" (with the
candidates) when the evidence is ambiguous or contradictory: never a guess.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..plan.models import CLASSES, Model

UNCERTAIN = "uncertain"
POOL = "pool"  # a pool whose kind (processes or threads) could not be seen
CONCURRENT = "concurrent"  # everyone at once, by what means could not be seen
NAMES = {"one-at-a-time": "one client at a time", "process-per-connection": "a process per connection",
         "thread-per-connection": "a thread per connection", "process-pool": "a pool of {n} processes",
         "thread-pool": "a pool of {n} threads", "event-loop": "a single-threaded event loop",
         "event-loop-workers": "an event loop with {n} workers", POOL: "a pool of {n} (processes or threads)",
         CONCURRENT: "every client at once (threads, processes or an event loop)", UNCERTAIN: "uncertain"}
STALL_SHARE, FREE_SHARE = 0.6, 0.3  # stalled: the others waited this share of the slow request; free: at most this
BUSY_CORES = 0.6  # idle CPU at least this: busy polling
SERVING_SHARE = 0.5  # a thread serves if it did this share of a fair split of the work among the clients
MIN_TICKS = 10  # CPU ticks (10 ms) the load must cost before the threads' shares say anything


@dataclass
class Stall:
    """One slow request the protocol offers, sent by one client while the others send."""

    kind: str  # blocking (a handler waits in a blocking call) | cooperative (the lab's SLEEP) | cpu (WORK)
    request: str
    ms: float  # how long it keeps the server busy: declared by the protocol's request, or (cpu) its own reply time
    worst_ms: float | None = None  # the others' worst wait meanwhile
    skipped: str | None = None  # why it was not sent, or not judged

    @property
    def stalled(self) -> bool | None:
        if self.worst_ms is None or self.skipped or self.ms <= 0:
            return None
        if self.worst_ms >= STALL_SHARE * self.ms:
            return True
        return False if self.worst_ms <= FREE_SHARE * self.ms else None


@dataclass
class Observation:
    target: str
    protocol: str
    clients: int = 0  # asked for in the concurrency probe
    connected: int = 0
    answered: int = 0  # got at least one reply
    peak: int = 0  # most clients served at once
    waited: bool | None = None  # those beyond the peak got their first reply only after one left
    closed_by_server: int = 0  # answered, then closed by the server: left out of peak and waited
    table: bool = False  # the process table could be read
    processes: tuple[int, int] | None = None  # (before, most while the clients were connected)
    threads: tuple[int, int] | None = None  # total threads, likewise
    load_clients: int = 0
    ticks: int | None = None  # CPU ticks the server's threads used under load
    serving_threads: int | None = None  # threads that did a share of that work
    serving_processes: int | None = None  # processes those threads belong to
    idle_cores: float | None = None
    stalls: list[Stall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not measured, and why

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Classification:
    cls: str  # one of models.CLASSES, or POOL, CONCURRENT, UNCERTAIN
    n: int | None  # the pool's size, or the workers
    confidence: str  # high | medium | low
    evidence: list[str]
    candidates: list[str] = field(default_factory=list)  # for uncertain: what it could be

    @property
    def summary(self) -> str:
        text = NAMES[self.cls].format(n=self.n if self.n is not None else "N")
        if self.cls == UNCERTAIN and self.candidates:
            text += ": " + " or ".join(NAMES[c].format(n=self.n or "N") for c in self.candidates)
        return text

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}


def infer(o: Observation) -> Classification:
    """The class the observation supports, with the evidence, or uncertain."""
    ev: list[str] = []
    ev.append(f"served at once: {o.peak} of {o.clients - o.closed_by_server} clients"
              + (f" ({o.clients - o.connected} never connected)" if o.connected < o.clients else "")
              + (f" ({o.connected - o.answered} connected but never answered)" if o.answered < o.connected else "")
              + ("; the others got their first reply only after one left" if o.waited
                 else "; a client beyond them was answered before anyone left" if o.waited is False else ""))
    if o.closed_by_server:
        ev.append(f"the server closed {o.closed_by_server} client(s) between requests (left out: cut short, "
                  "not waiting)")
    grew_p = grew_t = None
    if o.processes and o.threads:
        grew_p, grew_t = o.processes[1] - o.processes[0], o.threads[1] - o.threads[0]
        ev.append(f"with {o.connected} clients connected: processes {o.processes[0]} -> {o.processes[1]}, "
                  f"threads {o.threads[0]} -> {o.threads[1]}")
    if o.serving_threads is not None:
        ev.append(f"under load ({o.load_clients} clients, {o.ticks} CPU ticks): {o.serving_threads} thread(s) "
                  f"in {o.serving_processes} process(es) did the work")
    if o.idle_cores is not None:
        ev.append(f"idle CPU: {o.idle_cores:.2f} cores with no client"
                  + (" (it polls: a busy loop)" if o.idle_cores >= BUSY_CORES else ""))
    for s in o.stalls:
        ev.append(f"{s.request}" + (f" ({s.ms:.0f} ms of CPU)" if s.kind == "cpu" and not s.skipped else "") + ": "
                  + (f"skipped: {s.skipped}" if s.skipped else f"the others' worst wait {s.worst_ms:.0f} ms ("
                     + {True: "stalled", False: "not stalled", None: "in between"}[s.stalled] + ")"))
    ev += [f"not measured: {n}" for n in o.notes]
    return _decide(o, ev, grew_p, grew_t)


def _decide(o: Observation, ev: list[str], grew_p: int | None, grew_t: int | None) -> Classification:
    """The rules of the module's docstring, in their order: the first that decides, with its reason."""
    def out(cls: str, n: int | None, confidence: str, why: str, candidates: list[str] | None = None) -> Classification:
        return Classification(cls, n, confidence, [*ev, f"so: {why}"], candidates or [])

    if o.clients < 2 or o.answered < 2:
        return out(UNCERTAIN, None, "low", f"only {o.answered} of {o.clients} clients were answered: nothing "
                                           "to compare")
    if o.answered < o.connected or o.connected < o.clients:
        return out(UNCERTAIN, None, "low", "not every client was answered, so who waited for whom is unknown")
    among = o.clients - o.closed_by_server  # the clients that stayed until they left
    if among < 3:
        return out(UNCERTAIN, None, "low", f"the server closed {o.closed_by_server} of {o.clients} clients: too "
                                           "few left to tell who waited")
    stalls = _Stalls(o.stalls)
    return (_limited(o, among, out) or _growth(o, grew_p, grew_t, out)
            or _who_works(o, grew_p, stalls, out) or _timing(stalls, out))


Out = Callable[..., Classification]


class _Stalls:
    """What the protocol's slow requests showed: each kind's stalled-or-not, where judged."""

    def __init__(self, stalls: list[Stall]) -> None:
        self.blocking = [s.stalled for s in stalls if s.kind == "blocking" and s.stalled is not None]
        self.cpu = [s.stalled for s in stalls if s.kind == "cpu" and s.stalled is not None]
        both = self.blocking + self.cpu
        self.all = any(both) and all(self.blocking) and all(self.cpu)  # every slow request stalled everyone
        self.cpu_free = bool(self.cpu) and not any(self.cpu)  # CPU-bound work stalled nobody: not one thread
        self.none = bool(both) and not any(both)


def _limited(o: Observation, among: int, out: Out) -> Classification | None:
    """Rule 1: fewer served at once than stayed: one at a time, or a pool."""
    if o.peak >= among:
        return None
    if not o.waited:
        return out(UNCERTAIN, o.peak, "low", f"{o.peak} at once, but a client beyond them was answered "
                                             "before anyone left: not a limit on who is served",
                   ["one-at-a-time", POOL])
    if o.peak == 1:
        return out("one-at-a-time", 1, "high" if o.table else "medium",
                   "each client waited for the one before to leave")
    if o.serving_threads is None:
        return out(POOL, o.peak, "medium", f"at most {o.peak} served, the others waited for a place; "
                                           "whether processes or threads could not be seen")
    if o.serving_processes is not None and o.serving_processes >= o.peak:
        return out("process-pool", o.peak, "high", f"a place each in {o.peak} processes, one thread each at work")
    return out("thread-pool", o.peak, "high", f"{o.peak} places, {o.serving_threads} threads at work in "
                                              f"{o.serving_processes} process(es)")


def _growth(o: Observation, grew_p: int | None, grew_t: int | None, out: Out) -> Classification | None:
    """Rule 2: everyone at once: what grows with them."""
    if grew_p is None or grew_t is None:
        return None
    if grew_p == o.connected:
        return out("process-per-connection", None, "high", f"a new process for each of the {o.connected} clients")
    if grew_p == 0 and grew_t == o.connected:
        return out("thread-per-connection", None, "high", f"a new thread for each of the {o.connected} clients")
    if grew_p or grew_t:
        return out(UNCERTAIN, None, "low", f"processes grew by {grew_p} and threads by {grew_t} for "
                                           f"{o.connected} clients: neither one each nor none",
                   ["process-per-connection", "thread-per-connection"])
    return None


def _who_works(o: Observation, grew_p: int | None, stalls: _Stalls, out: Out) -> Classification | None:
    """Rule 3: nothing grew: who does the work."""
    if o.serving_threads is None or grew_p != 0:
        return None
    if o.serving_threads == 1:
        if stalls.cpu_free:
            return out(UNCERTAIN, None, "low", "one thread did the work, yet CPU-bound work stalled "
                                               "nobody", ["event-loop", CONCURRENT])
        if stalls.blocking and not any(stalls.blocking) and not stalls.cpu:
            return out("event-loop", None, "medium", "one thread serves every client, though a blocking "
                                                     "request stalled nobody (made a cooperative wait?)")
        return out("event-loop", None, "high", "one thread serves every client"
                   + (", and a slow request stalls them all" if stalls.all else "")
                   + ("; its blocking calls wait cooperatively (they stalled nobody)"
                      if stalls.blocking and not any(stalls.blocking) else ""))
    if o.serving_threads < o.load_clients:
        if stalls.all:
            return out(UNCERTAIN, o.serving_threads, "low", f"{o.serving_threads} threads did the work, yet "
                                                            "one slow request stalled everyone",
                       ["event-loop", "event-loop-workers"])
        return out("event-loop-workers", o.serving_threads, "high",
                   f"{o.serving_threads} threads serve {o.load_clients} connections: each thread several")
    return out(UNCERTAIN, o.serving_threads, "low", f"{o.serving_threads} threads for {o.load_clients} "
                                                    "clients: a pool larger than the clients looks the same",
               ["thread-pool", "event-loop-workers"])


def _timing(stalls: _Stalls, out: Out) -> Classification:
    """Rule 4: from timing alone."""
    if stalls.all:
        return out("event-loop", None, "medium", "a slow request stalls every other client: one thread "
                                                 "runs them all (from timing alone)")
    if stalls.cpu_free or stalls.none:
        return out(CONCURRENT, None, "low", "a slow request stalls nobody: threads, processes, or an "
                                            "event loop with workers (the process table would tell)")
    return out(CONCURRENT, None, "low", "everyone was served at once; without the process table or a slow "
                                        "request, how cannot be told")


def declared(model: Model) -> tuple[str | None, int | None]:
    """What a target's model.yaml says it is, in classify's words: its
    `class:`, else derived from its declarations (None where they do not
    say).  What classify is checked against; never an input to infer()."""
    expect, spec = model.expect, model.spec
    cls = spec.get("class")
    if cls is None:
        if expect.get("peak_served") == 1:
            cls = "one-at-a-time"
        elif expect.get("processes") == "per-client":
            cls = "process-per-connection"
        elif expect.get("threads") == "per-client":
            cls = "thread-per-connection"
        elif expect.get("peak_served") == "workers":
            cls = "process-pool" if expect.get("thread_count") == 1 else "thread-pool"
        elif expect.get("peak_served") == "all" and expect.get("thread_count") == 1:
            cls = "event-loop"
    if cls not in CLASSES:
        return None, None
    return cls, model.workers if cls in ("process-pool", "thread-pool") else None


def judged_against(found: Classification, declared_as: tuple[str | None, int | None]) -> dict[str, Any]:
    """An inference with the declaration beside it (classify.json's and
    results.json's record): the classification, `declared`, `agrees`."""
    cls, n = declared_as
    return {**found.as_dict(),
            "declared": None if cls is None else {"class": cls, "n": n, "summary": NAMES[cls].format(n=n or "N")},
            "agrees": agrees(found, cls, n)}


def agrees(found: Classification, cls: str | None, n: int | None) -> bool | None:
    """Does an inference match a declaration (None: nothing declared)?  A
    pool's size must match too; an event loop's workers are what this run
    saw at work, so only the class is compared."""
    if cls is None:
        return None
    return found.cls == cls and (n is None or found.n == n)
