"""results.csv: one row per model × workload × repeat, the figures flat,
with what the tables say beside a figure as columns of their own: whether
the model served every connection, what limited the figure, its share of
the ceiling, and the model's verdict."""

from __future__ import annotations

import csv
import io
from typing import Any

from . import data
from .data import Run

CSV_COLUMNS = [
    "model", "model_kind", "workload", "kind", "repeat", "error", "pattern", "clients", "connected", "served",
    "served_all", "requests_sent", "replies_measured", "replies_per_s", "of_reference", "limited_by",
    "unanswered", "errors", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms", "server_cpu_s", "server_window_s",
    "server_cores", "server_us_per_reply", "swarm_cores", "host_cores", "processes", "threads",
    "memory_source", "pss_kib", "uss_kib", "rss_kib", "idle_pss_kib", "idle_rss_kib",
    "memory_per_conn_kib", "wrk_requests_per_s", "wrk_p50_ms", "wrk_p99_ms", "wrk_errors", "wrk_limited_by",
    "accepted", "accepted_after_end", "open_at_peak", "kept", "never_accepted", "ramp_s", "peak_threads",
    "peak_processes", "pss_per_conn_kib", "uss_per_conn_kib", "cgroup_per_conn_kib", "listen_overflows",
    "check_held", "promise",
]


def csv_bytes(run: Run) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for m in run.models:
        for rep in run.repeats(m):
            for wl in run.workloads:
                rec = (rep.get("workloads") or {}).get(wl.name)
                if rec is None:
                    continue
                w.writerow([_csv(v) for v in csv_row(run, m, wl, rep, rec)])
    return buf.getvalue().encode()


def csv_row(run: Run, model: str, wl: data.Workload, rep: dict[str, Any], rec: dict[str, Any]) -> list[Any]:
    head = [model, run.kind_of(model), wl.name, wl.kind, rep["repeat"], rec.get("error")]
    sw = rec.get("swarm")
    if not sw:
        row = head + [None] * (len(CSV_COLUMNS) - len(head))
        row[-1] = data.promise(run, model).state
        return row
    s, lat = sw["summary"], sw["summary"]["latency"]
    cpu, load, idle = rec.get("server_cpu") or {}, data.under_load(rec) or {}, rep.get("idle") or {}
    pct = [lat[key] / 1000 if lat.get("count") else None for _, key in data.PERCENTILES]
    served, conns = data.served(rep, rec), data.connected(rep, rec)
    inputs = data.limit_inputs(run, rec)
    lim = data.limit(inputs) if not rec.get("check") else None  # c10k: no throughput figure
    share = _share(run, model, wl.name, s.get("replies_per_s")) if wl.kind != "c10k" else None
    return head + [
        s["pattern"], s["clients"], conns, served, None if served is None or conns is None else served >= conns,
        s["requests_sent"], s["replies_measured"], s["replies_per_s"], _round(share, 4),
        lim.by if lim else None, s["unanswered"], sum(s["errors"].values()), *pct, cpu.get("cpu_s"),
        cpu.get("window_s"), cpu.get("cores"), cpu.get("us_per_reply"), sw["cpu"].get("per_s"),
        inputs.get("host_cores"), load.get("processes"), load.get("threads"), load.get("memory_source"),
        load.get("pss_kib"), load.get("uss_kib"), load.get("rss_kib"), idle.get("pss_kib"), idle.get("rss_kib"),
        _round(data.memory_per_conn_kib(rep, rec), 2), *wrk_columns(rec), *check_columns(rep, rec),
        data.promise(run, model).state]


def _share(run: Run, model: str, workload: str, rps: float | None) -> float | None:
    """This repeat's replies/s as a fraction of the reference's median."""
    ref = run.reference
    ceiling = run.spread(ref, workload, data.replies_per_s) if ref and ref != model else None
    return rps / ceiling.median if rps is not None and ceiling and ceiling.median else None


def wrk_columns(rec: dict[str, Any]) -> list[Any]:
    w = rec.get("wrk") or {}
    if w.get("requests_per_s") is None:
        return [None] * 5
    lat = w.get("latency_ms") or {}
    lim = data.limit(w.get("limit_inputs") or {}, "wrk")
    return [w["requests_per_s"], lat.get("p50"), lat.get("p99"),
            sum((w.get("errors") or {}).values()) + int(w.get("non_2xx") or 0),
            ("wrk" if lim.by == "swarm" else lim.by)]


def check_columns(rep: dict[str, Any], rec: dict[str, Any]) -> list[Any]:
    """A scenario workload's own figures (c10k); empty for the others."""
    if not rec.get("check"):
        return [None] * 13
    return [*[data.c10k_counter(k)(rep, rec) for k in ("accepted", "accepted_after_end", "open_at_peak", "kept",
                                                        "waited_unaccepted")],
            data.figure("ramp_s")(rep, rec), data.at_peak("threads")(rep, rec),
            data.at_peak("processes")(rep, rec),
            *[_round(data.per_connection_kib(k)(rep, rec), 2) for k in ("pss", "uss", "cgroup")],
            (data.check_figures(rec).get("listen_queue") or {}).get("ListenOverflows"), rec["check"].get("ok")]


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def _csv(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(round(v, 6))
    return v
