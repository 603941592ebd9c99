"""The client swarm's replicas, merged into one results document.

Where the orchestrator spreads the swarm over several machines (Swarm mode,
`--swarm-replicas N`), each replica runs its own share of the clients (their
numbers never overlap: services/swarm/swarm.py --replica) and writes its own
results.json.  The lab reads them back (lab/engine: through the replicas'
output) and merges them here into one document of the same schema
(iolab.swarm/1, services/swarm/SCHEMA.md), so every judge and report reads
one swarm whatever ran it:

    histograms   exactly: HdrHistogram buckets add up (services/ioschema/hist.py)
    counts       summed: requests, replies, bytes, errors, connections, CPU
    records      concatenated: connections, timeline pairs, actions, workers
    times        moved onto this machine's clock first: each replica's
                 CLOCK_MONOTONIC is its own machine's, so every monotonic
                 stamp is shifted by that machine's measured offset, and the
                 worst error bound is kept with the result (``clock``)

Each replica's document is held to SWARM_RESULTS before it is merged
(lab/measure/evidence.py): a broken one is an EvidenceError, exit 70.
``replicas`` in the merged document says, per replica, where it ran, its
clients, its exit status and its clock.
"""

from __future__ import annotations

import json
from typing import Any

from ioschema import END_REASONS
from ioschema.hist import Histogram

from ..engine import Clock, Output
from .evidence import check_results

# The monotonic stamps of a results document (SCHEMA.md: t-named fields and
# `monotonic`; actions' `t` is seconds after the start, not a stamp).
CONNECTION_TIMES = ("connect_start", "connect_end", "tcp_connect_end", "first_reply", "last_reply", "close_t")
ACTION_TIMES = ("sent_t", "done_t")


def _shift(t: Any, offset: float) -> Any:
    return t - offset if isinstance(t, (int, float)) and not isinstance(t, bool) else t


def on_our_clock(doc: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """``doc`` with every monotonic stamp moved onto this machine's clock."""
    off = clock.offset_s
    if not off:
        return doc
    for key in ("started", "ended"):
        if isinstance(doc.get(key), dict):
            doc[key]["monotonic"] = _shift(doc[key].get("monotonic"), off)
    for w in doc.get("workers", []):
        w["ended"] = _shift(w.get("ended"), off)
    for c in doc.get("connections", []):
        for key in CONNECTION_TIMES:
            if key in c:
                c[key] = _shift(c[key], off)
    for conn in (doc.get("timeline") or {}).get("conns", []):
        conn["pairs"] = [[_shift(a, off), _shift(b, off)] for a, b in conn.get("pairs", [])]
    for a in doc.get("actions", []):
        for key in ACTION_TIMES:
            if key in a:
                a[key] = _shift(a[key], off)
    return doc


def _sum(docs: list[dict[str, Any]], *path: str) -> Any:
    total: Any = 0
    for d in docs:
        value: Any = d
        for key in path:
            value = (value or {}).get(key)
        if isinstance(value, (int, float)):
            total += value
    return total


def _add(into: dict[str, int], more: dict[str, int] | None) -> dict[str, int]:
    for key, n in (more or {}).items():
        into[key] = into.get(key, 0) + n
    return into


def _histogram(docs: list[dict[str, Any]], name: str) -> Any:
    hist = Histogram()
    for d in docs:
        data = (d.get("histograms") or {}).get(name)
        if data:
            hist.merge(Histogram.from_json(data))
    return hist


def replicas(outputs: list[Output], expected: int = 1) -> dict[str, Any]:
    """One results document from the replicas' documents (see the module's
    docstring); a replica that sent nothing is a failure of the merged run."""
    docs = [on_our_clock(check_results(json.loads(o.data), f"swarm replica {o.replica or i + 1}: results.json"),
                         o.clock) for i, o in enumerate(outputs)]
    if not docs:
        raise ValueError("no replica sent results")
    first = docs[0]
    t0 = min(d["started"]["monotonic"] for d in docs)
    t_end = max(d["ended"]["monotonic"] for d in docs)
    window = max(0.0, t_end - (t0 + float(first.get("warmup_s") or 0.0)))
    duration = t_end - t0
    failures = [f"replica {o.replica or i + 1}: {f}" for i, (o, d) in enumerate(zip(outputs, docs))
                for f in d.get("failures", [])]
    if len(docs) < expected:
        failures.append(f"only {len(docs)} of {expected} swarm replicas sent results")
    hists = {name: _histogram(docs, name) for name in ("latency", "connect", "handshake")}
    summary = _summary(docs, hists, t0, window, duration)
    timeline = [c for d in docs for c in (d.get("timeline") or {}).get("conns", [])]
    timeline.sort(key=lambda c: (c["client"], c["pairs"][0][0] if c["pairs"] else 0.0))
    records = sorted((c for d in docs for c in d.get("connections", [])),
                     key=lambda r: (r["client"], r.get("connect_start") or 0.0))
    return {
        **first,
        "ok": not failures, "failures": failures,
        "warnings": list(dict.fromkeys(w for d in docs for w in d.get("warnings", []))),
        "exit_code": max(int(d.get("exit_code") or 0) for d in docs) if len(docs) >= expected else 1,
        "config": {**first.get("config", {}), "clients": summary["clients"], "active": summary["active"],
                   "replica": None},
        "started": {"monotonic": round(t0, 6), "wall": min(d["started"]["wall"] for d in docs)},
        "ended": {"monotonic": round(t_end, 6), "wall": max(d["ended"]["wall"] for d in docs)},
        "duration_s": round(duration, 3), "measure_window_s": round(window, 3),
        "summary": summary, "cpu": _cpu(docs, summary["replies_measured"]),
        "workers": [{**w, "replica": o.replica or str(i + 1)} for i, (o, d) in enumerate(zip(outputs, docs))
                    for w in d.get("workers", [])],
        "histograms": {name: h.to_json("us") for name, h in hists.items()},
        "connections": records,
        "connections_capped": {"capped": any((d.get("connections_capped") or {}).get("capped") for d in docs),
                               "kept": len(records), "dropped": _sum(docs, "connections_capped", "dropped"),
                               "max": _sum(docs, "connections_capped", "max")},
        "timeline": {**(first.get("timeline") or {}), "conns": timeline,
                     "capped": any((d.get("timeline") or {}).get("capped") for d in docs),
                     "pairs": sum(len(c.get("pairs", [])) for c in timeline)},
        "actions": sorted((a for d in docs for a in d.get("actions", [])),
                          key=lambda a: (a.get("t", 0), a.get("client", 0))),
        "replicas": _replicas(outputs, docs),
        "clock": _clock(outputs),
    }


def _summary(docs: list[dict[str, Any]], hists: dict[str, Any], t0: float, window: float,
             duration: float) -> dict[str, Any]:
    """The replicas' summaries as one: counts summed, latencies from the merged histograms."""
    summaries = [d.get("summary") or {} for d in docs]
    measured = _sum(docs, "summary", "replies_measured")
    conns = _connections(docs, summaries, t0)
    reasons = {s.get("end_reason") for s in summaries}
    summary: dict[str, Any] = {
        **(summaries[0]),
        "clients": _sum(docs, "summary", "clients"), "active": _sum(docs, "summary", "active"),
        "hold": _sum(docs, "summary", "hold"), "workers": _sum(docs, "summary", "workers"),
        "end_reason": next((r for r in END_REASONS if r in reasons), summaries[0].get("end_reason")),
        "connections": conns,
        "replies_per_s": round(measured / window, 1) if window > 0 else 0.0,
        "errors": {},
        "latency": hists["latency"].summary("us"), "connect": hists["connect"].summary("us"),
        "handshake": hists["handshake"].summary("us"),
    }
    for key in ("requests_sent", "replies", "replies_measured", "unanswered", "unexpected_replies",
                "bytes_sent", "bytes_received"):
        summary[key] = _sum(docs, "summary", key)
    if summaries[0].get("error_replies") is not None:
        summary["error_replies"] = _sum(docs, "summary", "error_replies")
    for s in summaries:
        _add(summary["errors"], s.get("errors"))
    if summaries[0].get("rate"):
        summary["rate"] = {"intended_per_s": summaries[0]["rate"]["intended_per_s"],
                           "achieved_per_s": round(_sum(docs, "summary", "rate", "achieved_per_s"), 1),
                           "replies_per_s": summary["replies_per_s"]}
    if summaries[0].get("storm"):
        summary["storm"] = {"connections_per_s": round(conns["connected"] / duration, 1) if duration > 0 else 0.0}
    return summary


def _connections(docs: list[dict[str, Any]], summaries: list[dict[str, Any]], t0: float) -> dict[str, Any]:
    """The connection counts summed; every client connected by the last replica's moment."""
    conns: dict[str, Any] = {k: _sum(docs, "summary", "connections", k) for k in
                             ("attempted", "connected", "tcp_connected", "failed", "never_started",
                              "clients_connected")}
    ends = [s.get("connections", {}).get("connect_all_s") for s in summaries]
    conns["connect_all_s"] = round(max(e + d["started"]["monotonic"] - t0 for e, d in zip(ends, docs)), 3) \
        if all(e is not None for e in ends) and conns["clients_connected"] == _sum(docs, "summary", "clients") \
        else None
    conns["closed_by"] = {}
    for s in summaries:
        _add(conns["closed_by"], s.get("connections", {}).get("closed_by"))
    return conns


def _cpu(docs: list[dict[str, Any]], measured: int) -> dict[str, Any]:
    cpu: dict[str, Any] = {k: round(_sum(docs, "cpu", k), 3)
                           for k in ("user_s", "sys_s", "workers_s", "measured_s", "total_s", "per_s")}
    cpu["us_per_reply"] = round(cpu["measured_s"] * 1e6 / measured, 2) if measured else None
    cpu["parent"] = {k: round(sum(d["cpu"]["parent"][k] for d in docs), 3) for k in ("user_s", "sys_s")}
    return cpu


def _replicas(outputs: list[Output], docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where each replica ran, its clients, its exit and its clock."""
    return [{"replica": o.replica or str(i + 1), "node": o.node, "clock": o.clock.as_dict(),
             "clients": (d.get("summary") or {}).get("clients"), "exit_code": d.get("exit_code"),
             "ok": d.get("ok"), "hostname": (d.get("environment") or {}).get("hostname")}
            for i, (o, d) in enumerate(zip(outputs, docs))]


def _clock(outputs: list[Output]) -> dict[str, Any]:
    """How the replicas' times were put on this machine's clock, and the worst error bound."""
    bounds = [o.clock.bound_s for o in outputs]
    worst = None if any(b is None for b in bounds) else max(b for b in bounds if b is not None)
    return {"aligned_to": "the lab's machine", "bound_s": worst, "how": sorted({o.clock.how for o in outputs})}
