"""Writing results.json (iolab.compare/1, SCHEMA.md): the other side of
data.py.  `lab compare` measures; what it keeps of each measurement, and in
which shape, is decided here, beside the schema and the code that reads it.
Nothing here touches a container: it shapes what was already read.
"""

from __future__ import annotations

import time
from typing import Any

SCHEMA = "iolab.compare/1"
# What the report needs of the swarm's results.json (iolab.swarm/1)
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
    if got.get("error"):
        doc["errors"].append(f"{model} repeat {got['repeat']}: {got['error']}")


def scenario_record(probe: Any, reading: dict[str, Any], verdict: Any, server: dict[str, Any],
                    server_cpu: dict[str, Any]) -> dict[str, Any]:
    """A scenario workload's record (c10k): the swarm's results as for any
    workload, the server it ran on and its CPU, and the check's verdict with
    every figure its judge computed (lab/checks/judges.py), from ``probe``
    (lab.probe.Probe) and ``reading`` (what the check read around it)."""
    t0 = (probe.results.get("started") or {}).get("monotonic")
    peak = reading.get("peak_sample")
    return {
        "error": None, "swarm_command": probe.command, "swarm_exit_code": probe.exit_code,
        "swarm": trim_swarm(probe.results, keep_timeline=False),
        "replies_per_client": None,  # 10,000 numbers; the check's active_answered says who was served
        "server_cpu": server_cpu, "server": server,
        "check": {
            "expected": verdict.expected, "observed": verdict.observed, "ok": verdict.ok,
            "all_accepted": reading.get("all_accepted"),
            "peak_at_s": round(reading["peak_t"] - t0, 3) if "peak_t" in reading and t0 else None,
            "peak_threads": peak.total_threads if peak else None,
            "peak_processes": peak.processes if peak else None,
            "figures": verdict.figures,
        },
    }
