"""Reading a compare run directory: results.json (iolab.compare/1, see
SCHEMA.md beside this file) and, when present, checks.json (iolab.checks/1),
and the figures derived from them.  Nothing here looks outside the run
directory, and nothing depends on the time of reading.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..errors import UsageError

SCHEMA = "iolab.compare/1"
CHECKS_SCHEMA = "iolab.checks/1"
PERCENTILES = (("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"), ("p99.9", "p99_9_us"),
               ("max", "max_us"))

Record = dict[str, Any]


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
        self.models = order + sorted(m for m in doc["models"] if m not in order)

    # -- plain access ------------------------------------------------------------
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
    """A run directory's results (and checks, if any), or a UsageError saying what is wrong."""
    path = Path(run_dir)
    results = path / "results.json"
    try:
        doc = json.loads(results.read_text())
    except OSError as exc:
        raise UsageError(f"{results}: cannot read it ({exc.strerror}); is {path} a `lab compare` run "
                         "directory?") from None
    except ValueError as exc:
        raise UsageError(f"{results}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(f"{results}: schema is {found!r}, this lab renders {SCHEMA!r}")
    checks = None
    if (path / "checks.json").exists():
        try:
            checks = json.loads((path / "checks.json").read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path / 'checks.json'}: unreadable ({exc})") from None
        if not isinstance(checks, dict) or checks.get("schema") != CHECKS_SCHEMA:
            raise UsageError(f"{path / 'checks.json'}: schema is not {CHECKS_SCHEMA!r}")
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


def listen_queue(rep: Record, rec: Record) -> dict[str, int]:
    """The listen queue's overflow counters that grew by the peak."""
    return {k: v for k, v in (check_figures(rec).get("listen_queue") or {}).items() if v}
