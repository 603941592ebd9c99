"""Merging what the workers measured into results.json (schema iolab.swarm/1).

Each worker sends the parent one WorkerReport (report.py); the parent adds
them up here: histograms by bucket, counters by sum, records,
timeline and actions by concatenation.  SCHEMA.md beside this file
describes every field of the result; ``build`` is where they are made, so
the two are kept side by side.

The file is written atomically (a temporary file in the same directory,
then rename), so the lab never reads half a result even if the swarm is
killed while writing.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from ioschema import END_REASONS, ERROR_KINDS, SWARM_SCHEMA
from ioschema.hist import Histogram

from swarm.report import WorkerReport

SCHEMA = SWARM_SCHEMA


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def _r(t: float | None, digits: int = 6) -> float | None:
    return None if t is None else round(t, digits)


def build(*, config: dict[str, Any], environment: dict[str, Any], workers: list[WorkerReport],
          failures: list[str], warnings: list[str], t0: float, wall0: float, ended: float,
          wall_end: float, cpu: dict[str, Any], limits: dict[str, Any],
          actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole results document from the workers' reports."""
    latency = Histogram()
    connect = Histogram()
    handshake = Histogram()
    totals: dict[str, int] = {}
    errors = dict.fromkeys(ERROR_KINDS, 0)
    closed_by: dict[str, int] = {}
    records: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    merged_actions: list[dict[str, Any]] = list(actions or [])
    dropped = 0
    tl_capped = False
    end_reasons: dict[str, int] = {}
    connected_clients = 0
    last_first_connect: float | None = None
    for w in workers:
        latency.merge(Histogram.from_json(w.latency))
        connect.merge(Histogram.from_json(w.connect))
        handshake.merge(Histogram.from_json(w.handshake))
        _add(totals, w.totals)
        _add(errors, w.errors)
        _add(closed_by, w.closed_by)
        records.extend(w.records)
        timeline.extend(w.timeline)
        merged_actions.extend(w.actions)
        dropped += w.records_dropped
        tl_capped = tl_capped or w.timeline_capped
        end_reasons[w.end_reason] = end_reasons.get(w.end_reason, 0) + 1
        connected_clients += w.clients_connected
        if w.last_first_connect is not None:
            last_first_connect = max(last_first_connect or 0.0, w.last_first_connect)
        warnings.extend(x for x in w.warnings if x not in warnings)
    records.sort(key=lambda r: (r["client"], r["connect_start"] or 0.0))
    timeline.sort(key=lambda c: (c["client"], c["pairs"][0][0] if c["pairs"] else 0.0))
    merged_actions.sort(key=lambda a: (a["t"], a["client"]))

    clients = config["clients"]
    warm_end = t0 + config["warmup"]
    window = max(0.0, ended - warm_end)
    duration = ended - t0
    # a run ends for one reason; several workers agree, or the first that is
    # not a plain deadline says more (signal, count, all-closed)
    end_reason = "duration" if workers else "not-started"
    for reason in END_REASONS:
        if reason in end_reasons:
            end_reason = reason
            break
    pattern = config["pattern"]
    active = config["active"]
    replies_measured = totals.get("replies_measured", 0)
    protocol = config.get("protocol", "line")
    summary: dict[str, Any] = {
        "protocol": protocol,
        "pattern": pattern,
        "clients": clients,
        "active": active,
        "hold": clients - active,
        "workers": len(workers),
        "end_reason": end_reason,
        "connections": {
            "attempted": totals.get("attempted", 0),
            "connected": totals.get("connected", 0),
            "tcp_connected": totals.get("tcp_connected", 0),
            "failed": totals.get("failed", 0),
            "never_started": totals.get("never_started", 0) if workers else clients,
            "clients_connected": connected_clients,
            # from the start of the run until every client had connected
            # once (null when some never did)
            "connect_all_s": _r(last_first_connect - t0, 3)
            if last_first_connect is not None and connected_clients == clients else None,
            "closed_by": closed_by,
        },
        "requests_sent": totals.get("sent", 0),
        "replies": totals.get("replies", 0),
        "replies_measured": replies_measured,
        "replies_per_s": round(replies_measured / window, 1) if window > 0 else 0.0,
        "unanswered": totals.get("unanswered", 0),
        "unexpected_replies": totals.get("unexpected", 0),
        # the line protocol's fast path never reads a reply's text
        "error_replies": None if protocol == "line" else totals.get("error_replies", 0),
        "bytes_sent": totals.get("bytes_sent", 0),
        "bytes_received": totals.get("bytes_received", 0),
        "errors": errors,
        "latency": latency.summary("us"),
        "connect": connect.summary("us"),
        "handshake": handshake.summary("us"),
        "rate": None,
        "storm": None,
    }
    if pattern == "rate":
        summary["rate"] = {
            "intended_per_s": config["rate"],
            "achieved_per_s": round(totals.get("sent_measured", 0) / window, 1) if window > 0 else 0.0,
            "replies_per_s": summary["replies_per_s"],
        }
    if pattern == "storm":
        summary["storm"] = {
            "connections_per_s": round(totals.get("connected", 0) / duration, 1) if duration > 0 else 0.0,
        }
    # per_s: cores the workers kept busy while the run lasted (1.0 = one
    # whole core), the figure that says whether the swarm was the limit
    cpu = dict(cpu, total_s=round(cpu["user_s"] + cpu["sys_s"], 3),
               per_s=round(cpu["workers_s"] / duration, 3) if duration > 0 else 0.0,
               us_per_reply=round(cpu["measured_s"] * 1e6 / replies_measured, 2)
               if replies_measured else None,
               fast_path="/".join(sorted({w.fast_path for w in workers})) or None)
    n_pairs = sum(len(c["pairs"]) for c in timeline)
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
        "summary": summary,
        "cpu": cpu,
        "workers": [
            {"worker": w.worker, "pid": w.pid, "clients": w.clients,
             "end_reason": w.end_reason, "ended": _r(w.ended), "cpu": w.cpu,
             "fast_path": w.fast_path}
            for w in workers
        ],
        "histograms": {"latency": latency.to_json("us"), "connect": connect.to_json("us"),
                       "handshake": handshake.to_json("us")},
        "connections": records,
        "connections_capped": {"capped": dropped > 0, "kept": len(records), "dropped": dropped,
                               "max": config["records_max"]},
        "timeline": {"capped": tl_capped, "per_conn_max": config["timeline_per_conn"],
                     "max": config["timeline_max"], "pairs": n_pairs, "conns": timeline},
        "actions": merged_actions,
    }


def write_atomic(directory: str, doc: dict[str, Any], name: str = "results.json") -> str:
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


def human_line(doc: dict[str, Any]) -> str:
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
