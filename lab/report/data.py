"""Reading a compare run directory: results.json (iolab.compare/2 or /1, see
SCHEMA.md beside this file) and, when present, checks.json (iolab.checks/*),
and the figures derived from them: who was served, what limited each
figure, what each model's checks said.  Nothing here looks outside the run
directory, and nothing depends on the time of reading.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ioschema import COMPARE_SCHEMA, COMPARE_SCHEMAS

from ..errors import UsageError
from . import schema

SCHEMA = COMPARE_SCHEMA
SCHEMAS = COMPARE_SCHEMAS  # /1: no reference, limits from the swarm's own CPU, no wrk
PERCENTILES = (("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"), ("p99.9", "p99_9_us"),
               ("max", "max_us"))

Record = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    kind: str  # timeline | closed | open | c10k | anything a later scenario brings
    about: str
    warmup_s: float
    measure_s: float
    flags: dict[str, Any]
    scenario: Optional[str] = None  # measured as `lab check` measures this scenario (c10k)
    server_flags: tuple[str, ...] = ()  # on a server of its own, with these flags


@dataclass(frozen=True)
class Spread:
    """One figure over the repeats: the values, their min, median and max."""

    values: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def max(self) -> float:
        return max(self.values)


@dataclass(frozen=True)
class Conn:
    """One connection of a timeline: [send, reply] pairs in seconds after
    the swarm's start (reply None: never answered)."""

    client: int
    pairs: tuple[tuple[float, Optional[float]], ...]

    @property
    def answered(self) -> list[tuple[float, float]]:
        return [(s, r) for s, r in self.pairs if r is not None]

    @property
    def span(self) -> tuple[float, float] | None:
        """From its first answered request to its last reply: while it was served."""
        done = self.answered
        return (done[0][0], done[-1][1]) if done else None


class Run:
    def __init__(self, doc: dict[str, Any], checks: dict[str, Any] | None, path: Path | None) -> None:
        self.doc = doc
        self.checks = checks
        self.path = path
        self.workloads = [Workload(w["name"], w["title"], w["kind"], w.get("about", ""),
                                   float(w["warmup_s"]), float(w["measure_s"]), dict(w.get("flags") or {}),
                                   w.get("scenario"), tuple(w.get("server_flags") or ()))
                          for w in doc["workloads"]]
        order = [m for m in doc["params"]["models"] if m in doc["models"]]
        named = order + sorted(m for m in doc["models"] if m not in order)
        # the reference (native: this host's ceiling) first, then the models in run order
        self.references = [m for m in named if self.kind_of(m) == "reference"]
        self.models = self.references + [m for m in named if m not in self.references]
        self.version = doc["schema"]

    # -- plain access ------------------------------------------------------------
    def kind_of(self, model: str) -> str:
        """``model`` (under study) or ``reference`` (the native ceiling: not a model)."""
        return str(self.doc["models"][model].get("kind") or "model")

    @property
    def reference(self) -> str | None:
        """The ceiling row, if the run measured one."""
        return self.references[0] if self.references else None

    @property
    def studied(self) -> list[str]:
        """The models under study: every row but the reference."""
        return [m for m in self.models if m not in self.references]

    def skipped(self, model: str, workload: str) -> str | None:
        """Why ``model`` did not run ``workload`` (``workload/wrk``: wrk's part), or None."""
        return (self.doc["models"][model].get("skipped") or {}).get(workload)

    @property
    def environment(self) -> dict[str, Any]:
        return self.doc.get("environment") or {}

    @property
    def errors(self) -> list[str]:
        return list(self.doc.get("errors") or [])

    def of_kind(self, kind: str) -> list[Workload]:
        return [w for w in self.workloads if w.kind == kind]

    @property
    def sampled(self) -> list[Workload]:
        """The swarm workloads, with the server's CPU over their measured
        window and resource snapshots under load (not the scenarios', whose
        figures are their check's: see their own section)."""
        return [w for w in self.workloads if not w.scenario]

    def repeats(self, model: str) -> list[Record]:
        return list(self.doc["models"][model].get("repeats") or [])

    def records(self, model: str, workload: str) -> Iterator[tuple[Record, Record]]:
        """(repeat, workload record) for every repeat that measured it."""
        for rep in self.repeats(model):
            rec = (rep.get("workloads") or {}).get(workload)
            if rec and rec.get("swarm"):
                yield rep, rec

    def spread(self, model: str, workload: str,
               figure: Callable[[Record, Record], float | None]) -> Spread | None:
        values = tuple(v for rep, rec in self.records(model, workload)
                       if (v := figure(rep, rec)) is not None)
        return Spread(values) if values else None

    def timeline(self, model: str, workload: str) -> tuple[list[Conn], float] | None:
        """The first measured repeat's timeline and the run's length (s)."""
        for _, rec in self.records(model, workload):
            tl = rec["swarm"].get("timeline")
            if not tl:
                continue
            t0 = rec["swarm"]["started"]["monotonic"]
            conns = [Conn(c["client"], tuple((round(s - t0, 6), None if r is None else round(r - t0, 6))
                                             for s, r in c["pairs"]))
                     for c in sorted(tl["conns"], key=lambda c: c["client"])]
            return conns, float(rec["swarm"]["duration_s"])
        return None


def load(run_dir: Path) -> Run:
    """A run directory's results (and checks, if any), each held to its
    schema (schema.py), or a UsageError naming the file and the field."""
    path = Path(run_dir)
    results = path / "results.json"
    if not results.is_file():
        raise UsageError(f"{results}: no such file; is {path} a `lab compare` run directory?")
    doc = schema.parse(results)
    if not isinstance(doc, dict) or doc.get("schema") not in SCHEMAS:  # another document: say which first
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(f"{results}: schema is {found!r}, this lab renders {' and '.join(map(repr, SCHEMAS))}")
    schema.check(doc, results, schema.COMPARE)
    checks = schema.read(path / "checks.json", schema.CHECKS) if (path / "checks.json").exists() else None
    return Run(doc, checks, path)


# -- derived figures (each takes a repeat and a workload record) ------------------

def snapshot_workload(run: Run) -> Workload | None:
    """The workload whose process-and-memory snapshots the summary shows:
    the open loop's (the same connections as the closed loops, at a load
    that never keeps the lab's own sampler off the CPU), else the first
    closed loop's."""
    for kind in ("open", "closed"):
        found = run.of_kind(kind)
        if found:
            return found[0]
    return run.sampled[0] if run.sampled else None


def replies_per_s(rep: Record, rec: Record) -> float | None:
    return rec["swarm"]["summary"].get("replies_per_s")


def latency_ms(key: str) -> Callable[[Record, Record], float | None]:
    def figure(rep: Record, rec: Record) -> float | None:
        lat = rec["swarm"]["summary"]["latency"]
        return lat[key] / 1000 if lat.get("count") else None
    return figure


def unanswered(rep: Record, rec: Record) -> float | None:
    return rec["swarm"]["summary"].get("unanswered")


def sent(rep: Record, rec: Record) -> float | None:
    return rec["swarm"]["summary"].get("requests_sent")


def served(rep: Record, rec: Record) -> float | None:
    """Connections that got at least one reply."""
    per = rec.get("replies_per_client")
    return sum(1 for n in per if n > 0) if per is not None else None


def connected(rep: Record, rec: Record) -> float | None:
    return rec["swarm"]["summary"]["connections"].get("connected")


def server_cores(rep: Record, rec: Record) -> float | None:
    return (rec.get("server_cpu") or {}).get("cores")


def us_per_reply(rep: Record, rec: Record) -> float | None:
    return (rec.get("server_cpu") or {}).get("us_per_reply")


def swarm_cores(rep: Record, rec: Record) -> float | None:
    return rec["swarm"]["cpu"].get("per_s")


def under_load(rec: Record) -> Record | None:
    """The workload's resource snapshot, unless it was taken too late (the
    clients had gone: see SCHEMA.md, `load.late`)."""
    snap = rec.get("load")
    return None if not snap or snap.get("late") else snap


def load_figure(key: str) -> Callable[[Record, Record], float | None]:
    def figure(rep: Record, rec: Record) -> float | None:
        return (under_load(rec) or {}).get(key)
    return figure


def memory_kib(rec_load: Record | None) -> tuple[float | None, str | None]:
    """The best memory figure of a snapshot: PSS, else RSS; and which it is."""
    if not rec_load:
        return None, None
    if rec_load.get("pss_kib") is not None:
        return float(rec_load["pss_kib"]), "pss"
    if rec_load.get("rss_kib") is not None:
        return float(rec_load["rss_kib"]), "rss"
    return None, None


def memory_per_conn_kib(rep: Record, rec: Record) -> float | None:
    """(memory under load - memory idle) / connections, in KiB (PSS where
    known, RSS otherwise; the same kind on both sides)."""
    load_, idle = under_load(rec) or {}, rep.get("idle") or {}
    for key in ("pss_kib", "rss_kib"):
        if load_.get(key) is not None and idle.get(key) is not None:
            conns = connected(rep, rec)
            return (load_[key] - idle[key]) / conns if conns else None
    return None


def uss_per_conn_kib(rep: Record, rec: Record) -> float | None:
    load_, idle = under_load(rec) or {}, rep.get("idle") or {}
    if load_.get("uss_kib") is None or idle.get("uss_kib") is None:
        return None
    conns = connected(rep, rec)
    return (load_["uss_kib"] - idle["uss_kib"]) / conns if conns else None


def memory_source(run: Run) -> str:
    """Which memory figure the run could read: "PSS/USS", "RSS", or a mix."""
    kinds = set()
    for model in run.models:
        for rep in run.repeats(model):
            for rec in (rep.get("workloads") or {}).values():
                src = (under_load(rec) or {}).get("memory_source")
                if src:
                    kinds.add("PSS/USS (smaps_rollup)" if src == "smaps_rollup" else "RSS (status)")
    return " and ".join(sorted(kinds)) or "not measured"


def peak_served(conns: list[Conn]) -> int:
    """The most connections served at once: the deepest overlap of served
    spans (a span that ends as another begins does not overlap it)."""
    edges: list[tuple[float, int]] = []
    for c in conns:
        if c.span:
            edges += [(c.span[0], 1), (c.span[1], -1)]
    now = peak = 0
    for _, step in sorted(edges):
        now += step
        peak = max(peak, now)
    return peak


def overlapping_pairs(conns: list[Conn]) -> int:
    """Pairs of connections whose served spans overlap in time."""
    spans = [c.span for c in conns if c.span]
    return sum(1 for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1])


# -- c10k: the figures of its check (lab/checks/judges.py `c10k`) -------------------

def check_figures(rec: Record) -> Record:
    return (rec.get("check") or {}).get("figures") or {}


def figure(key: str) -> Callable[[Record, Record], float | None]:
    """A number among the check's figures (accepted, kept_to_the_end, ramp_s, cpu_cores, ...)."""
    def get(rep: Record, rec: Record) -> float | None:
        value = check_figures(rec).get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return get


def check_latency_ms(key: str) -> Callable[[Record, Record], float | None]:
    """The active set's latency, after the warm-up (the ramp): during the hold."""
    def get(rep: Record, rec: Record) -> float | None:
        lat = check_figures(rec).get("latency_us") or {}
        return lat[key] / 1000 if lat.get("count") and lat.get(key) is not None else None
    return get


def per_connection_kib(kind: str) -> Callable[[Record, Record], float | None]:
    """Memory per connection open at the peak, over the idle server, in
    KiB: ``pss``, ``uss`` or ``rss`` of the model's processes, or ``cgroup``
    (everything charged to the container, kernel socket buffers included)."""
    def get(rep: Record, rec: Record) -> float | None:
        value = (check_figures(rec).get("memory_per_connection") or {}).get(kind)
        return value / 1024 if value is not None else None
    return get


def at_peak(key: str) -> Callable[[Record, Record], float | None]:
    """``threads`` or ``processes`` of the model at the peak (`docker top -eLf`)."""
    def get(rep: Record, rec: Record) -> float | None:
        return (rec.get("check") or {}).get(f"peak_{key}")
    return get


C10K_COUNTERS = ("connected", "accepted", "accepted_after_end", "open_at_peak", "kept", "waited_unaccepted")


def c10k_counter(key: str) -> Callable[[Record, Record], float | None]:
    """One of the connection counters (SCHEMA.md, `counters`).  A /1 record
    has the check's figures only: its `accepted` counted the server's log to
    its end (after the clients left too), so it stands in for accepted +
    accepted_after_end, and the split is not known."""
    def get(rep: Record, rec: Record) -> float | None:
        counters = rec.get("counters")
        if counters is not None:
            return counters.get(key)
        f = check_figures(rec)
        old = {"connected": f.get("connected"), "accepted": f.get("accepted"),
               "open_at_peak": f.get("open_at_peak"), "kept": f.get("kept_to_the_end")}
        return old.get(key)
    return get


def c10k_partial(run: Run, model: str, workload: str) -> bool:
    """Did the server hold fewer connections at the peak than were asked (in
    any repeat)?  Then its memory per connection is of the few it held.  A
    /1 record, without open_at_peak, is judged by its accepted count."""
    for rep, rec in run.records(model, workload):
        held = c10k_counter("open_at_peak")(rep, rec)
        if held is None:
            held = c10k_counter("accepted")(rep, rec)
        asked = check_figures(rec).get("asked") or (rec.get("counters") or {}).get("asked")
        if held is not None and asked and held < asked:
            return True
    return False


def busy_partial(run: Run, model: str, workload: str) -> bool:
    """Were some of the busy (active) clients never answered, in any repeat?"""
    return any((figure("active_answered")(rep, rec) or 0) < (figure("active")(rep, rec) or 0)
               for rep, rec in run.records(model, workload))


def listen_queue(rep: Record, rec: Record) -> dict[str, int]:
    """The listen queue's overflow counters that grew by the peak."""
    return {k: v for k, v in (check_figures(rec).get("listen_queue") or {}).items() if v}


# -- who was served: a figure of some connections is not the model's ----------------

@dataclass(frozen=True)
class Served:
    """Connections served (at least one reply) of those connected, the
    lowest over the repeats: a model is "partial" in a workload if any
    repeat left a connection unserved."""

    served: int
    connected: int

    @property
    def partial(self) -> bool:
        return self.served < self.connected

    @property
    def mark(self) -> str:
        return PARTIAL if self.partial else ""

    def __str__(self) -> str:
        return f"{self.served} of {self.connected}"


PARTIAL = "†"  # beside a figure of a model that served only some of its connections
LIMITED = "‡"  # beside a throughput figure the server did not limit (the swarm or the host did)


def served_of(run: Run, model: str, workload: str) -> Served | None:
    """The fewest connections served in any repeat, of those connected then
    (None: not measured, or the scenario's own counters say it: c10k)."""
    worst = None
    for rep, rec in run.records(model, workload):
        s, c = served(rep, rec), connected(rep, rec)
        if s is None or c is None:
            continue
        if worst is None or (c - s) > (worst.connected - worst.served):
            worst = Served(int(s), int(c))
    return worst


def partial(run: Run, model: str, workload: str) -> bool:
    got = served_of(run, model, workload)
    return bool(got and got.partial)


# -- what limited a throughput figure (SCHEMA.md, "Which limit") ---------------------

NEAR = 0.85  # a share of the available cores that counts as "all of them" on a shared, noisy host


@dataclass(frozen=True)
class Limit:
    by: str | None  # swarm | host | server | None: the inputs were not there
    why: str

    @property
    def mark(self) -> str:
        return LIMITED if self.by not in ("server", None) else ""


def limit_inputs(run: Run, rec: Record) -> Record:
    """The rule's inputs: recorded by compare (/2), else what a /1 record
    has (the swarm's own CPU over its whole run, its worker count)."""
    got = dict(rec.get("limit_inputs") or {})
    if not got:
        sw = rec.get("swarm") or {}
        got = {"server_cores": (rec.get("server_cpu") or {}).get("cores"),
               "swarm_cores": (sw.get("cpu") or {}).get("per_s"), "swarm_cores_source": "self-reported",
               "swarm_workers": (sw.get("summary") or {}).get("workers"), "swarm_cpus": None,
               "engine_cpus": (run.environment.get("engine") or {}).get("cpus"), "host_cores": None}
    return got


def limit(inputs: Record, generator: str = "swarm") -> Limit:
    """The rule: the load generator if its processes used nearly all the
    cores they could (one per worker, within its container's CPU limit and
    the engine's CPUs); else the host if server and generator together (or
    everything on the machine) used nearly all the engine's CPUs; else the
    server.  ``generator`` names it in the sentence (swarm, wrk)."""
    gen, workers = inputs.get("swarm_cores"), inputs.get("swarm_workers")
    cpus, server, host = inputs.get("engine_cpus"), inputs.get("server_cores"), inputs.get("host_cores")
    missing = f"not judged: the {generator}'s CPU, its workers or the engine's CPUs were not recorded"
    if not cpus:
        return Limit(None, missing)
    if gen is not None and workers:
        room = min(float(workers), float(inputs.get("swarm_cpus") or cpus), float(cpus))
        if gen >= NEAR * room:
            return Limit("swarm", f"the {generator} used {gen:.2f} of the {room:g} cores its {workers} "
                                  f"worker(s) can use: it, not the server, set the pace")
    pair = None if gen is None else gen + (server or 0.0)
    busy = max(pair or 0.0, host or 0.0)
    if busy >= NEAR * cpus:  # the machine was full, whatever the generator's own share (even unread)
        whose = "everything on the machine" if host is not None and host >= (pair or 0.0) \
            else f"server {server or 0:.2f} + {generator} {gen:.2f}"
        return Limit("host", f"{whose} used {busy:.2f} of the engine's {cpus} cores: the machine was full")
    if gen is None or not workers:
        return Limit(None, missing)
    if server is None:
        return Limit(None, "not judged: the server's CPU was not read")
    return Limit("server", f"server {server:.2f} + {generator} {gen:.2f} cores, of {cpus}: room to spare")


def limit_of(run: Run, model: str, workload: str) -> Limit | None:
    """The limit over the repeats: the generator or the host if any repeat
    was limited so (the median would hide it), else the server."""
    found = [limit(limit_inputs(run, rec)) for _, rec in run.records(model, workload)]
    for by in ("swarm", "host", None, "server"):
        hit = next((x for x in found if x.by == by), None)
        if hit:
            return hit
    return None


def fraction_of_reference(run: Run, model: str, workload: str,
                          figure: Callable[[Record, Record], float | None]) -> float | None:
    """The model's median as a fraction of the reference's, measured in this
    run; None where either served only some of its connections (†): a share
    of a figure that is not the whole model's would be a share of nothing."""
    ref = run.reference
    if ref is None or model == ref or partial(run, model, workload) or partial(run, ref, workload):
        return None
    mine, ceiling = run.spread(model, workload, figure), run.spread(ref, workload, figure)
    return mine.median / ceiling.median if mine and ceiling and ceiling.median else None


# -- did it do what its model.yaml promises ------------------------------------------

@dataclass(frozen=True)
class Promise:
    state: str  # held | failed | not judged | not checked
    text: str
    failed: tuple[str, ...] = ()
    unjudged: tuple[str, ...] = ()


def verdicts(run: Run, model: str) -> list[tuple[str, bool | None]]:
    """(check, ok) for ``model``: checks.json's, and the c10k check of every repeat."""
    found = [(str(c.get("check")), c.get("ok")) for c in (run.checks or {}).get("checks", [])
             if c.get("model") == model]
    for w in run.of_kind("c10k"):
        for _, rec in run.records(model, w.name):
            if rec.get("check"):
                found.append((w.name, rec["check"].get("ok")))
    return found


def promise(run: Run, model: str) -> Promise:
    found = verdicts(run, model)
    if not found:
        return Promise("not checked", "not checked" + ("" if run.checks else " (run with --checks)"))
    failed = tuple(dict.fromkeys(c for c, ok in found if ok is False))
    unjudged = tuple(dict.fromkeys(c for c, ok in found if ok is None))
    held = sum(1 for _, ok in found if ok is True)
    rest = "" if run.checks else "; the other checks not run"  # only the C10K check ran with compare
    if failed:
        text = f"FAILED {', '.join(failed)}" + (f"; not judged: {', '.join(unjudged)}" if unjudged else "")
        return Promise("failed", text + rest, failed, unjudged)
    what = "checks" if run.checks else ", ".join(dict.fromkeys(c for c, _ in found))
    if unjudged:
        return Promise("not judged", f"not judged: {', '.join(unjudged)}; held {held} of {len(found)}" + rest,
                       (), unjudged)
    return Promise("held", f"{what} held ({held} of {len(found)})" + rest)


# -- wrk, beside the swarm -----------------------------------------------------------

def wrk_records(run: Run, model: str, workload: str) -> list[Record]:
    return [rec["wrk"] for _, rec in run.records(model, workload)
            if rec.get("wrk") and rec["wrk"].get("requests_per_s") is not None]


def wrk_spread(run: Run, model: str, workload: str, get: Callable[[Record], float | None]) -> Spread | None:
    values = tuple(v for r in wrk_records(run, model, workload) if (v := get(r)) is not None)
    return Spread(values) if values else None


def wrk_limit(run: Run, model: str, workload: str) -> Limit | None:
    found = [limit(r.get("limit_inputs") or {}, "wrk") for r in wrk_records(run, model, workload)]
    for by in ("swarm", "host", None, "server"):
        hit = next((x for x in found if x.by == by), None)
        if hit:
            return Limit("wrk" if hit.by == "swarm" else hit.by, hit.why) if hit.by else hit
    return None

