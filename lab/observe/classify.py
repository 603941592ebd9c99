"""Inferring a server's concurrency model from what was observed, never from model.yaml.

`lab classify` (lab/observe/probes.py) records an Observation; infer() turns
it into a Classification: a class, its size where it has one, how sure, and
the evidence behind it, line by line.  The observation needs nothing of the
server but that it answers a request: no keep-alive, no slow command.

The probe (services/swarm/holds.py) holds K connections, each with half a
request, and sends one complete request on a fresh connection: answered or
not.  K steps 1, 2, 4, ... and is bisected to the bound: the smallest K that
leaves the fresh request unanswered.  Meanwhile the server's tasks are read
(lab/observe/tasks.py): how many processes and threads while K are held,
and which tasks woke to read the halves.  The rules, in order:

1. The bound.  Unanswered with one held: ONE AT A TIME.  A bound N > 1 is a
   POOL of N, unless the tasks that read the halves were fewer than the
   held connections (then the bound is a cap on connections, not on
   workers: see rule 3).  Answered at every K: no bound within the probe's
   reach.
2. Growth per held connection (the process table): c more processes per
   held connection, the same c at every K, is a PROCESS PER CONNECTION
   (c = 2: a forked child and what it runs); c more threads and no process,
   a THREAD PER CONNECTION.  A pool that grew with K up to its bound
   started its workers lazily.
3. A bound with fixed tasks: the tasks that woke to read the halves at the
   bound are the pool's busy workers.  Each in a process of its own: a
   PROCESS POOL; threads of one process: a THREAD POOL; threads spread over
   P processes: a thread pool of N in P processes (a hybrid, P x N/P, as
   Apache's threaded MPMs are).
4. No bound, fixed tasks: an event loop.  The tasks that read the halves
   are its loops: one is a single-threaded EVENT LOOP, W of them an EVENT
   LOOP WITH W WORKERS.  One reader with more threads at work under load
   (a ping-pong second, each thread's CPU time) is a loop that hands its
   requests to W workers.
5. --idle: a pool whose N idle keep-alive connections (each after one whole
   request) leave room for a fresh request parks idle connections in a
   poller (Apache event, for instance).  Idle CPU of about a core says the
   loop busy-polls.  Both are said, not classified.

Without the process table only the bound is measured: one at a time, a
bound of N (a pool, processes or threads), or no bound within the reach (a
process or thread per connection, or an event loop): the class stays a list
of candidates, at medium confidence.  Confidence is "high" when the table
and the timing agree; an observation that fits no rule is "uncertain", with
the candidates: never a guess.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..plan.models import CLASSES, Model

UNCERTAIN = "uncertain"
POOL = "pool"  # a pool whose kind (processes or threads) could not be seen
CONCURRENT = "concurrent"  # no bound within reach, by what means could not be seen
NAMES = {"one-at-a-time": "one client at a time", "process-per-connection": "a process per connection",
         "thread-per-connection": "a thread per connection", "process-pool": "a pool of {n} processes",
         "thread-pool": "a pool of {n} threads", "event-loop": "a single-threaded event loop",
         "event-loop-workers": "an event loop with {n} workers", POOL: "a pool of {n} (processes or threads)",
         CONCURRENT: "no bound within reach (a process or thread per connection, or an event loop)",
         UNCERTAIN: "uncertain"}
BUSY_CORES = 0.6  # idle CPU at least this: busy polling
SERVING_SHARE = 0.5  # a thread serves if it did this share of a fair split of the load's work
MIN_TICKS = 10  # CPU ticks (10 ms) the load must cost before the threads' shares say anything
SLACK = 1  # tasks that come and go besides the held connections (a timer, a helper)
LAZY = 3  # tasks a runtime may start once, with its first connection, besides one per connection


@dataclass
class Held:
    """One step of the hold probe, with what the process table showed meanwhile."""

    k: int
    mode: str  # unfinished | idle
    held: int  # connections that held their half (or idled) until the fresh request
    answered: bool
    answer_ms: float | None = None
    fresh_refused: bool = False
    again: bool = False  # this K's second try, after a rest
    processes: int | None = None  # the server's, while the K were held (None: no table)
    threads: int | None = None  # every task of every process
    readers: int | None = None  # tasks that woke to read the halves
    reader_processes: int | None = None  # the processes those readers belong to


@dataclass
class Observation:
    target: str
    protocol: str
    table: bool = False  # the process table could be read
    table_from: str = ""  # where it was read, in words
    base: tuple[int, int] | None = None  # (processes, threads) with nothing held
    steps: list[Held] = field(default_factory=list)
    bound: int | None = None  # smallest K left unanswered; None: none within reach
    reach: int = 0  # the largest K tried
    speaks_first: bool = False
    closes_after_reply: bool | None = None
    idle_parked: bool | None = None
    load_threads: int | None = None  # threads that did a share of a ping-pong second's work
    load_processes: int | None = None
    idle_cores: float | None = None
    notes: list[str] = field(default_factory=list)  # what was not measured, and why

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Classification:
    cls: str  # one of models.CLASSES, or POOL, CONCURRENT, UNCERTAIN
    n: int | None  # the pool's size, or the workers
    confidence: str  # high | medium | low
    evidence: list[str]
    candidates: list[str] = field(default_factory=list)  # for uncertain and timing alone: what it could be
    per_connection: int | None = None  # tasks a connection adds (a per-connection class)
    processes: int | None = None  # a thread pool's processes (a hybrid when above 1)
    bound: int | None = None  # the most served at once (None: no bound within reach)
    notes: list[str] = field(default_factory=list)  # said beside the class: idle connections parked, busy polling

    @property
    def summary(self) -> str:
        text = NAMES[self.cls].format(n=self.n if self.n is not None else "N")
        if self.per_connection and self.per_connection > 1:
            text = text.replace("a process per", f"{self.per_connection} processes per").replace(
                "a thread per", f"{self.per_connection} threads per")
        if self.processes and self.processes > 1 and self.n:
            text += f" in {self.processes} processes ({self.processes} x {self.n // self.processes})"
        if self.candidates:
            text += ": " + " or ".join(NAMES[c].format(n=self.n or "N") for c in self.candidates)
        return "; ".join([text, *self.notes])

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}


def infer(o: Observation) -> Classification:
    """The class the observation supports, with the evidence, or uncertain."""
    ev = [*map(_step_line, o.steps)]
    if o.base is not None:
        ev.insert(0, f"with nothing held: {o.base[0]} process(es), {o.base[1]} thread(s)")
    ev.append("bound: " + (f"{o.bound} (the fresh request waited with {o.bound} held, and was answered "
                           f"with {o.bound - 1})" if o.bound else f"none within {o.reach} held connections"))
    if o.load_threads is not None:
        ev.append(f"under load (ping-pong, a second): {o.load_threads} thread(s) in {o.load_processes} "
                  "process(es) did the work")
    if o.idle_cores is not None:
        ev.append(f"idle CPU: {o.idle_cores:.2f} cores with no client")
    ev += [f"not measured: {n}" for n in o.notes]
    found = _decide(o, ev)
    found.bound = o.bound
    found.notes += _remarks(o, found)
    return found


def _step_line(s: Held) -> str:
    what = "idle keep-alive connections" if s.mode == "idle" else "unfinished requests"
    line = f"{s.k} {what} held ({s.held} kept{', tried again after a rest' if s.again else ''}): " + (
        f"a fresh request answered in {s.answer_ms:.{0 if s.answer_ms >= 10 else 1}f} ms" if s.answered else
        "the fresh connection was refused" if s.fresh_refused else "a fresh request waited (not answered)")
    if s.processes is not None:
        line += f"; {s.processes} process(es), {s.threads} thread(s)"
    if s.readers is not None:
        line += f"; {s.readers} task(s) in {s.reader_processes} process(es) woke to read"
    return line


def _remarks(o: Observation, found: Classification) -> list[str]:
    said = []
    if o.idle_parked and found.cls in ("process-pool", "thread-pool", POOL):
        said.append("idle keep-alive connections wait in a poller, holding no worker")
    if o.idle_cores is not None and o.idle_cores >= BUSY_CORES:
        said.append(f"it polls: {o.idle_cores:.1f} cores busy with no client")
    if o.closes_after_reply:
        said.append("it closes each connection after its reply")
    if o.speaks_first:
        said.append("it speaks first (a banner)")
    return said


Out = Callable[..., Classification]


def _decide(o: Observation, ev: list[str]) -> Classification:
    """The rules of the module's docstring, in their order: the first that decides, with its reason."""
    def out(cls: str, n: int | None, confidence: str, why: str, **kw: Any) -> Classification:
        return Classification(cls, n, confidence, [*ev, f"so: {why}"], **kw)

    unfinished = [s for s in o.steps if s.mode == "unfinished"]
    if not unfinished or any(s.held < s.k for s in unfinished if not s.answered):
        return out(UNCERTAIN, None, "low", "the server did not keep every held connection of a step that "
                                           "waited: whether it waited for a worker or for them is unknown"
                   if unfinished else "no step was measured")
    if not o.table:
        return _timing_alone(o, out)
    return _one(o, out) or _per_connection(o, out) or _pool(o, out) or _loop(o, out)


def _timing_alone(o: Observation, out: Out) -> Classification:
    if o.bound == 1:
        return out("one-at-a-time", 1, "medium", "one held request kept every other client waiting")
    if o.bound:
        return out(POOL, o.bound, "medium", f"at most {o.bound} served at once; processes or threads (or a "
                                            "cap on connections) cannot be told without the process table",
                   candidates=["process-pool", "thread-pool"])
    return out(CONCURRENT, None, "medium", f"no bound within {o.reach} held connections; how cannot be told "
                                           "without the process table",
               candidates=["process-per-connection", "thread-per-connection", "event-loop", "event-loop-workers"])


def _growth(o: Observation, s: Held) -> tuple[int, int] | None:
    """(processes, threads) the step added over nothing held."""
    if o.base is None or s.processes is None or s.threads is None:
        return None
    return s.processes - o.base[0], s.threads - o.base[1]


def _one(o: Observation, out: Out) -> Classification | None:
    if o.bound != 1:
        return None
    return out("one-at-a-time", 1, "high", "one held request kept every other client waiting")


def per_connection(o: Observation) -> tuple[str, int] | None:
    """('process' or 'thread', c) when every answered step grew by c per held
    connection (c >= 1, within SLACK), at two K at least; else None."""
    grown = [(s.held, g) for s in o.steps if s.mode == "unfinished" and s.answered and s.held
             and (g := _growth(o, s)) is not None]
    if len(grown) < 2:
        return None
    k, (dp, dt) = max(grown)
    for kind, grew, index in (("process", dp, 0), ("thread", dt, 1)):
        c = _slope(grown, index, round(grew / k))
        if c >= 1 and (kind == "thread" or dp):
            if kind == "thread" and abs(dp) > SLACK:
                return None
            return kind, c
    return None


def _slope(grown: list[tuple[int, tuple[int, int]]], index: int, c: int) -> int:
    """c when every step grew by c per held connection (within SLACK); else
    the growth between the two largest steps, when every step grew by that
    per connection plus the same few tasks started once, with the first
    connection (Ruby's timeout handler); else -1."""
    if all(abs(g[index] - c * n) <= SLACK for n, g in grown):
        return c
    (k1, g1), (k2, g2) = sorted(grown)[-2:]
    c = round((g2[index] - g1[index]) / (k2 - k1))
    once = [g[index] - c * n for n, g in grown]
    return c if max(once) - min(once) <= SLACK and 0 < min(once) <= LAZY else -1


def _per_connection(o: Observation, out: Out) -> Classification | None:
    found = per_connection(o)
    if found is None:
        return None
    kind, c = found
    cap = f"; at most {o.bound} at once" if o.bound else ""
    what = f"{c} {kind}{'es' if kind == 'process' and c > 1 else 's' if c > 1 else ''}"
    return out(f"{kind}-per-connection", None, "high", f"{what} more for each held connection{cap}"
               + (" (the forked child, and what it runs)" if kind == "process" and c > 1 else ""),
               per_connection=c)


def _at(o: Observation, k: int) -> Held | None:
    return next((s for s in o.steps if s.mode == "unfinished" and s.k == k), None)


def _pool(o: Observation, out: Out) -> Classification | None:
    """Rule 3: a bound N > 1 with fixed tasks (or tasks that stopped growing at N)."""
    if not o.bound:
        return None
    n, full = o.bound, _at(o, o.bound)
    if full is None or full.readers is None or full.reader_processes is None:
        return out(POOL, n, "medium", f"at most {n} served at once; which tasks read them could not be seen",
                   candidates=["process-pool", "thread-pool"])
    if full.readers + SLACK < full.held:
        return None  # fewer readers than held connections: a cap on connections, not on workers (rule 4)
    if full.reader_processes >= n:
        return out("process-pool", n, "high", f"at most {n} served at once, each held request read by a "
                                              "process of its own")
    return out("thread-pool", n, "high", f"at most {n} served at once, read by {n} threads in "
                                         f"{full.reader_processes} process(es)", processes=full.reader_processes)


def _loop(o: Observation, out: Out) -> Classification:
    """Rule 4: no bound (or a cap on connections), fixed tasks: an event loop."""
    # The loops: the most readers seen at two steps at least (a timer that happened
    # to fire in one step's windows is not a loop; held connections spread over
    # every loop only once there are enough of them).
    seen = sorted((s for s in o.steps if s.mode == "unfinished" and s.answered and s.readers is not None
                   and s.k >= 2), key=lambda s: s.readers or 0, reverse=True)
    top = seen[1] if len(seen) > 1 else (seen[0] if seen else None)
    grown = [g for s in o.steps if s.mode == "unfinished" and (g := _growth(o, s)) is not None]
    if any(abs(dp) > SLACK or abs(dt) > SLACK for dp, dt in grown):
        return out(UNCERTAIN, None, "low", "tasks grew with the held connections, but not by a whole number "
                                           "each", candidates=["process-per-connection", "thread-per-connection"])
    cap = f"; it takes at most {o.bound - 1} connections at once" if o.bound else ""
    if top is None:
        return out("event-loop" if o.base and o.base[1] == 1 else UNCERTAIN, None, "medium",
                   "nothing grew with the held connections; which tasks read them could not be seen" + cap,
                   candidates=[] if o.base and o.base[1] == 1 else ["event-loop", "event-loop-workers"])
    readers = max(1, top.readers or 0)
    if readers > 1:
        return out("event-loop-workers", readers, "high", f"{readers} tasks read the {top.held} held "
                                                          f"connections, each several{cap}")
    if o.load_threads and o.load_threads > 1:
        return _one_reader(o, out, cap)
    return out("event-loop", None, "high", f"one thread reads all {top.held} held connections, and nothing "
                                           f"grows with them{cap}")


def _one_reader(o: Observation, out: Out, cap: str) -> Classification:
    """Held connections stayed on one thread, yet several work under load."""
    # Loops that share one listener may leave every held connection to the one
    # that wins the accepts; if as many threads as work under load read at some
    # step, the workers are loops.  Otherwise one reader hands requests to the rest.
    most = max((s.readers or 0 for s in o.steps if s.mode == "unfinished" and s.answered), default=0)
    if most >= (o.load_threads or 0):
        return out("event-loop-workers", o.load_threads, "high",
                   f"held connections mostly stayed on one thread, but {most} read at some step and "
                   f"{o.load_threads} work under load{cap}")
    return out("event-loop-workers", (o.load_threads or 1) - 1, "high",
               f"one thread reads every connection and {(o.load_threads or 1) - 1} more work under load{cap}")


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
