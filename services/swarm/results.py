"""Merging what the workers measured into results.json (schema iolab.swarm/1).

Each worker sends the parent one WorkerReport (report.py); the parent adds
them up here: histograms by bucket, counters by sum, records, timeline and
actions by concatenation.  SCHEMA.md beside this file describes every field
of the result, and ioschema.schemas holds it as a JSON Schema; ``build`` is
where the fields are made.

The file is written atomically (a temporary file in the same directory,
then rename), so the lab never reads half a result even if the swarm is
killed while writing.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ioschema import END_REASONS, ERROR_KINDS, SWARM_SCHEMA
from ioschema.hist import Histogram

from swarm.report import WorkerReport

SCHEMA = SWARM_SCHEMA
Json = dict[str, Any]


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def _r(t: float | None, digits: int = 6) -> float | None:
    return None if t is None else round(t, digits)


@dataclass
class Merged:
    """The workers' reports, added up."""

    latency: Histogram = field(default_factory=Histogram)
    connect: Histogram = field(default_factory=Histogram)
    handshake: Histogram = field(default_factory=Histogram)
    totals: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    closed_by: dict[str, int] = field(default_factory=dict)
    records: list[Json] = field(default_factory=list)
    timeline: list[Json] = field(default_factory=list)
    actions: list[Json] = field(default_factory=list)
    dropped: int = 0
    tl_capped: bool = False
    end_reasons: set[str] = field(default_factory=set)
    connected_clients: int = 0
    last_first_connect: float | None = None

    @classmethod
    def of(cls, workers: list[WorkerReport], actions: list[Json], warnings: list[str]) -> "Merged":
        m = cls(actions=list(actions))
        for w in workers:
            m.add(w, warnings)
        m.records.sort(key=lambda r: (r["client"], r["connect_start"] or 0.0))
        m.timeline.sort(key=lambda c: (c["client"], c["pairs"][0][0] if c["pairs"] else 0.0))
        m.actions.sort(key=lambda a: (a["t"], a["client"]))
        return m

    def add(self, w: WorkerReport, warnings: list[str]) -> None:
        self.latency.merge(Histogram.from_json(w.latency))
        self.connect.merge(Histogram.from_json(w.connect))
        self.handshake.merge(Histogram.from_json(w.handshake))
        _add(self.totals, w.totals)
        _add(self.errors, w.errors)
        _add(self.closed_by, w.closed_by)
        self.records.extend(w.records)
        self.timeline.extend(w.timeline)
        self.actions.extend(w.actions)
        self.dropped += w.records_dropped
        self.tl_capped = self.tl_capped or w.timeline_capped
        self.end_reasons.add(w.end_reason)
        self.connected_clients += w.clients_connected
        if w.last_first_connect is not None:
            self.last_first_connect = max(self.last_first_connect or 0.0, w.last_first_connect)
        warnings.extend(x for x in w.warnings if x not in warnings)

    def end_reason(self, started: bool) -> str:
        """A run ends for one reason: several workers agree, or the first
        that is not a plain deadline says more (signal, count, all-closed)."""
        for reason in END_REASONS:
            if reason in self.end_reasons:
                return reason
        return "duration" if started else "not-started"


def build(*, config: Json, environment: Json, workers: list[WorkerReport], failures: list[str],
          warnings: list[str], t0: float, wall0: float, ended: float, wall_end: float, cpu: Json,
          limits: Json, actions: list[Json] | None = None) -> Json:
    """The whole results document from the workers' reports."""
    m = Merged.of(workers, actions or [], warnings)
    window = max(0.0, ended - (t0 + config["warmup"]))
    duration = ended - t0
    return {
        "schema": SCHEMA,
        "ok": not failures,
        "failures": failures,
        "warnings": warnings,
        "config": config,
        "environment": environment,
        "limits": limits,
        "started": {"monotonic": _r(t0), "wall": _r(wall0)},
        "ended": {"monotonic": _r(ended), "wall": _r(wall_end)},
        "duration_s": _r(duration, 3),
        "warmup_s": config["warmup"],
        "measure_window_s": _r(window, 3),
        "summary": _summary(config, m, workers, t0, window, duration),
        "cpu": _cpu(cpu, workers, duration, m.totals.get("replies_measured", 0)),
        "workers": [
            {"worker": w.worker, "pid": w.pid, "clients": w.clients, "end_reason": w.end_reason,
             "ended": _r(w.ended), "cpu": w.cpu, "fast_path": w.fast_path}
            for w in workers
        ],
        "histograms": {"latency": m.latency.to_json("us"), "connect": m.connect.to_json("us"),
                       "handshake": m.handshake.to_json("us")},
        "connections": m.records,
        "connections_capped": {"capped": m.dropped > 0, "kept": len(m.records), "dropped": m.dropped,
                               "max": config["records_max"]},
        "timeline": {"capped": m.tl_capped, "per_conn_max": config["timeline_per_conn"],
                     "max": config["timeline_max"], "pairs": sum(len(c["pairs"]) for c in m.timeline),
                     "conns": m.timeline},
        "actions": m.actions,
    }


def _summary(config: Json, m: Merged, workers: list[WorkerReport], t0: float, window: float,
             duration: float) -> Json:
    """The figures a report shows (SCHEMA.md `summary`)."""
    totals, clients, pattern = m.totals, config["clients"], config["pattern"]
    measured = totals.get("replies_measured", 0)
    protocol = config.get("protocol", "line")
    per_s = round(measured / window, 1) if window > 0 else 0.0
    return {
        "protocol": protocol, "pattern": pattern, "clients": clients, "active": config["active"],
        "hold": clients - config["active"], "workers": len(workers),
        "end_reason": m.end_reason(bool(workers)),
        "connections": _connections(m, clients, t0, started=bool(workers)),
        "requests_sent": totals.get("sent", 0),
        "replies": totals.get("replies", 0),
        "replies_measured": measured,
        "replies_per_s": per_s,
        "unanswered": totals.get("unanswered", 0),
        "unexpected_replies": totals.get("unexpected", 0),
        # the line protocol's fast path never reads a reply's text
        "error_replies": None if protocol == "line" else totals.get("error_replies", 0),
        "bytes_sent": totals.get("bytes_sent", 0),
        "bytes_received": totals.get("bytes_received", 0),
        "errors": m.errors,
        "latency": m.latency.summary("us"),
        "connect": m.connect.summary("us"),
        "handshake": m.handshake.summary("us"),
        "rate": None if pattern != "rate" else {
            "intended_per_s": config["rate"],
            "achieved_per_s": round(totals.get("sent_measured", 0) / window, 1) if window > 0 else 0.0,
            "replies_per_s": per_s},
        "storm": None if pattern != "storm" else {
            "connections_per_s": round(totals.get("connected", 0) / duration, 1) if duration > 0 else 0.0},
    }


def _connections(m: Merged, clients: int, t0: float, started: bool) -> Json:
    totals = m.totals
    return {
        "attempted": totals.get("attempted", 0),
        "connected": totals.get("connected", 0),
        "tcp_connected": totals.get("tcp_connected", 0),
        "failed": totals.get("failed", 0),
        "never_started": totals.get("never_started", 0) if started else clients,
        "clients_connected": m.connected_clients,
        # from the start of the run until every client had connected once
        # (null when some never did)
        "connect_all_s": _r(m.last_first_connect - t0, 3)
        if m.last_first_connect is not None and m.connected_clients == clients else None,
        "closed_by": m.closed_by,
    }


def _cpu(cpu: Json, workers: list[WorkerReport], duration: float, replies_measured: int) -> Json:
    # per_s: cores the workers kept busy while the run lasted (1.0 = one
    # whole core), the figure that says whether the swarm was the limit
    return dict(cpu, total_s=round(cpu["user_s"] + cpu["sys_s"], 3),
                per_s=round(cpu["workers_s"] / duration, 3) if duration > 0 else 0.0,
                us_per_reply=round(cpu["measured_s"] * 1e6 / replies_measured, 2) if replies_measured else None,
                fast_path="/".join(sorted({w.fast_path for w in workers})) or None)


def write_atomic(directory: str, doc: Json, name: str = "results.json") -> str:
    """Write ``doc`` as ``directory/name`` through a temporary file and a rename."""
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the lab reads it as another user
        path = os.path.join(directory, name)
        os.replace(tmp, path)
        return path
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def human_line(doc: Json) -> str:
    """One line for a person watching stderr."""
    s = doc["summary"]
    conns = s["connections"]
    lat = s["latency"]
    errs = ", ".join(f"{k} {n}" for k, n in s["errors"].items() if n) or "no errors"
    line = (
        f"swarm: {'' if s['protocol'] == 'line' else s['protocol'] + ' '}{s['pattern']} x{s['clients']} "
        f"({s['workers']} workers) "
        f"{conns['connected']}/{conns['attempted']} connected, {s['replies']} replies, "
        f"{s['replies_per_s']:,.0f}/s over {doc['measure_window_s']} s"
    )
    if lat["count"]:
        line += (f", latency p50 {lat['p50_us'] / 1000:.3f} ms p99 {lat['p99_us'] / 1000:.3f} ms "
                 f"max {lat['max_us'] / 1000:.3f} ms")
    if s["rate"]:
        line += f", rate {s['rate']['achieved_per_s']:,.0f}/{s['rate']['intended_per_s']:,.0f} per s"
    line += f", {errs}, cpu {doc['cpu']['workers_s']:.2f} s ({doc['cpu']['per_s']:.2f} cores)"
    line += f", ended by {s['end_reason']}"
    if doc["failures"]:
        line += "; FAILED: " + "; ".join(doc["failures"])
    return line
