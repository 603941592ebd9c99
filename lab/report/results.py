"""Writing results.json (iolab.compare/2, SCHEMA.md): the other side of
data.py.  `lab compare` measures; what it keeps of each measurement, and in
which shape, is decided here, beside the schema and the code that reads it.
Nothing here touches a container: it shapes what was already read.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ioschema import COMPARE_SCHEMA

SCHEMA = COMPARE_SCHEMA
# What the report needs of the swarm's results.json (SWARM_SCHEMA)
SWARM_KEPT = ("schema", "ok", "exit_code", "failures", "warnings", "config", "started", "ended",
              "duration_s", "warmup_s", "measure_window_s", "summary", "cpu")
SWARM_ENVIRONMENT_KEPT = ("python", "implementation", "cpu_count", "cpu_affinity")


def new(run_id: str, params: dict[str, Any], environment: dict[str, Any],
        workloads: list[dict[str, Any]]) -> dict[str, Any]:
    """results.json before anything is measured."""
    return {"schema": SCHEMA, "run": {"id": run_id, "started_wall": round(time.time(), 3)},
            "params": params, "environment": environment, "workloads": workloads, "models": {},
            "errors": []}


def trim_swarm(doc: dict[str, Any], keep_timeline: bool) -> dict[str, Any]:
    """The swarm's results, without its per-connection records (and without
    its timeline unless a timeline is drawn from it)."""
    kept = {k: doc.get(k) for k in SWARM_KEPT}
    env = doc.get("environment") or {}
    kept["environment"] = {k: env.get(k) for k in SWARM_ENVIRONMENT_KEPT}
    if keep_timeline:
        kept["timeline"] = doc.get("timeline")
    return kept


def replies_per_client(doc: dict[str, Any]) -> list[int]:
    per: dict[int, int] = {}
    for rec in doc.get("connections") or []:
        per[rec["client"]] = per.get(rec["client"], 0) + int(rec.get("replies") or 0)
    return [per[c] for c in sorted(per)]


def note_repeat(doc: dict[str, Any], model: str, got: dict[str, Any]) -> None:
    """Collect a repeat's Python versions and its problems into the results."""
    containers = doc["environment"]["containers"]
    for start in [got.get("server_start")] + [(w.get("server") or {}).get("start")
                                              for w in got["workloads"].values()]:
        if start and start.get("python"):
            containers["python"][model] = start["python"]
    for wname, w in got["workloads"].items():
        if w.get("swarm"):
            containers["swarm_python"] = w["swarm"]["environment"].get("python")
        if w.get("error"):
            doc["errors"].append(f"{model} repeat {got['repeat']} {wname}: {w['error']}")
        if (w.get("wrk") or {}).get("error"):
            doc["errors"].append(f"{model} repeat {got['repeat']} {wname} (wrk): {w['wrk']['error']}")
    if got.get("error"):
        doc["errors"].append(f"{model} repeat {got['repeat']}: {got['error']}")


def limit_inputs(server_cores: float | None, swarm_cores: float | None, swarm_source: str,
                 swarm_workers: int | None, swarm_cpus: float | None, engine_cpus: int | None,
                 host_cores: float | None) -> dict[str, Any]:
    """What the limit rule (data.limit, SCHEMA.md "Which limit") reads: kept
    with the figures, so `lab report` can apply the rule again."""
    return {"server_cores": server_cores, "swarm_cores": swarm_cores, "swarm_cores_source": swarm_source,
            "swarm_workers": swarm_workers, "swarm_cpus": swarm_cpus, "engine_cpus": engine_cpus,
            "host_cores": host_cores}


def scenario_record(probe: Any, reading: dict[str, Any], verdict: Any, server: dict[str, Any],
                    server_cpu: dict[str, Any], counters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A scenario workload's record (c10k): the swarm's results as for any
    workload, the server it ran on and its CPU, the check's verdict with
    every figure its judge computed (lab/checks/judges.py), from ``probe``
    (lab.run.probe.Probe) and ``reading`` (what the check read around it), and
    the connection counters of SCHEMA.md (``counters``, c10k_counters)."""
    t0 = (probe.results.get("started") or {}).get("monotonic")
    peak = reading.get("peak_sample")
    return {
        "error": None, "swarm_command": probe.command, "swarm_exit_code": probe.exit_code,
        "swarm": trim_swarm(probe.results, keep_timeline=False),
        "replies_per_client": None,  # 10,000 numbers; the check's active_answered says who was served
        "server_cpu": server_cpu, "server": server, "counters": counters,
        "check": {
            "expected": verdict.expected, "observed": verdict.observed, "ok": verdict.ok,
            "all_accepted": reading.get("all_accepted"),
            "peak_at_s": round(reading["peak_t"] - t0, 3) if "peak_t" in reading and t0 else None,
            "peak_threads": peak.total_threads if peak else None,
            "peak_processes": peak.processes if peak else None,
            "figures": verdict.figures,
        },
    }


COST_FIGURES = ("calls_per_reply", "calls_per_reply_idle", "switches_per_reply", "cpu_us_per_reply",
                "cpu_us_per_reply_idle")  # what the syscalls judge computed (lab/checks/cost.py)


def cost_record(verdicts: list[Any], server: dict[str, Any]) -> dict[str, Any]:
    """The syscalls workload's record: the cost figures its judge computed
    (the same in each verdict's figures, merged) and each verdict.  No swarm
    figures: two of its runs were traced, and a traced run is no throughput."""
    figures: dict[str, Any] = {}
    for v in verdicts:
        figures.update({k: v.figures[k] for k in COST_FIGURES if k in v.figures})
    missing = sorted({str(v.figures[k]) for v in verdicts for k in v.figures if k.endswith("_missing")})
    return {"error": None, "server": server,
            "cost": {**figures, "missing": missing,
                     "verdicts": [{"expect": v.expect, "expected": v.expected, "observed": v.observed, "ok": v.ok}
                                  for v in verdicts]}}


def c10k_counters(events: list[dict[str, Any]], results: dict[str, Any], peak_t: float | None,
                  kept: int | None) -> dict[str, Any]:
    """Who got how far, each counted once, on one clock (SCHEMA.md, `counters`):
    the swarm's handshakes, the server's accepts while the clients were there
    and after they left, what the server held at the peak, and what the
    swarm kept open to the end."""
    s = results.get("summary") or {}
    ended = (results.get("ended") or {}).get("monotonic")
    accepts = [e["t"] for e in events if e.get("ev") == "accept" and "t" in e]
    closes = [e["t"] for e in events if e.get("ev") == "close" and "t" in e]
    during = sum(1 for t in accepts if ended is None or t <= ended)
    at_peak = None
    if peak_t is not None:
        at_peak = max(sum(1 for t in accepts if t <= peak_t) - sum(1 for t in closes if t <= peak_t), 0)
    connected = (s.get("connections") or {}).get("connected")
    return {"asked": s.get("clients"), "connected": connected, "accepted": during,
            "accepted_after_end": len(accepts) - during, "open_at_peak": at_peak, "kept": kept,
            "waited_unaccepted": max(connected - during, 0) if connected is not None else None}


# -- wrk -------------------------------------------------------------------------

WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
WRK_PERCENTILES = ("50", "75", "90", "99")


def wrk_ms(text: str) -> float | None:
    """A wrk duration (``635.91us``, ``1.20ms``, ``2.00s``) in milliseconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    return float(m.group(1)) * WRK_UNITS[m.group(2)] if m else None


def parse_wrk(text: str) -> dict[str, Any]:
    """wrk's report (run with --latency) as figures: requests/s, requests,
    seconds, the latency distribution in ms, socket errors and non-2xx
    answers.  A figure wrk did not print is None; no requests/s at all
    raises ValueError (wrk did not run)."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if not rps:
        raise ValueError("no Requests/sec line in wrk's output")
    total = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+),", text, re.M)
    latency = {f"p{p}": wrk_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    stats = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if stats:
        latency.update(mean=wrk_ms(stats.group(1)), max=wrk_ms(stats.group(3)))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    threads = re.search(r"(\d+) threads and (\d+) connections", text)
    return {
        "requests_per_s": float(rps.group(1)),
        "requests": int(total.group(1)) if total else None,
        "duration_s": (wrk_ms(total.group(2)) or 0) / 1000 if total else None,
        "latency_ms": {k: latency.get(k) for k in ("mean", *[f"p{p}" for p in WRK_PERCENTILES], "max")},
        "errors": dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups())))
        if errors else {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "threads": int(threads.group(1)) if threads else None,
        "connections": int(threads.group(2)) if threads else None,
    }
