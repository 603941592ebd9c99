"""What a results.json of `lab compare` (iolab.compare/1 and /2, SCHEMA.md)
and a checks.json (iolab.checks/*) may hold, as JSON Schema (draft 2020-12),
and reading them strictly: `lab report` renders only a document whose every
figure is in its domain.

    doc = read(path, COMPARE)     # the document, or a UsageError naming the field

A figure outside its domain (NaN, infinity, a negative count or time, a
string where a number belongs, a key the report reads that is missing) is
bad input, not a bug of the lab: one line, `file: field: what is wrong`, exit 2.
Only what the report reads is constrained; any other field may be added
without a new schema version (SCHEMA.md).  The swarm's own results are
checked only in the figures the report shows.

These dicts are pure data: they belong with the record types both sides
share (services/ioschema) and can move there as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ioschema import CHECKS_SCHEMA, COMPARE_SCHEMAS

from ..errors import UsageError
from ..validate import (KEYWORDS, JSON_TYPES, first_error, first_non_finite,  # noqa: F401 (read here)
                        keywords, violation)

# -- the domains of single figures -------------------------------------------------

TEXT = {"type": "string"}
TEXT_OR_NULL = {"type": ["string", "null"]}
TEXTS = {"type": "array", "items": TEXT}
FLAG = {"type": ["boolean", "null"]}
COUNT = {"type": "integer", "minimum": 0}  # connections, replies, processes, bytes, descriptors
COUNT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
AMOUNT = {"type": ["number", "null"], "minimum": 0}  # seconds, cores, rates, latencies, KiB: never below 0
MEASURED = {"type": "number", "minimum": 0}  # the same, where the report needs the figure itself
SIGNED = {"type": ["number", "null"]}  # a difference (memory grown, a window's start before the swarm's)
TABLE = {"type": ["object", "null"]}
SCALAR = {"type": ["string", "number", "boolean", "null"]}  # the report shows a non-text value as text


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), null: bool = False) -> dict[str, Any]:
    """An object with these properties' domains (others allowed: adding a field is no new version)."""
    return {"type": ["object", "null"] if null else "object", "properties": properties, "required": list(required)}


def each(value: dict[str, Any]) -> dict[str, Any]:
    """An object whose every value has one domain (per model, per workload, per kind)."""
    return {"type": "object", "additionalProperties": value}


PERCENTILE_KEYS = ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us")
LATENCY = {  # the swarm's histogram summary: each percentile a figure once anything was measured
    **obj({"count": COUNT, **{k: AMOUNT for k in (*PERCENTILE_KEYS, "mean_us", "min_us")}}, ("count",)),
    "if": {"properties": {"count": {"exclusiveMinimum": 0}}},
    "then": {"required": list(PERCENTILE_KEYS), "properties": {k: MEASURED for k in PERCENTILE_KEYS}},
}

# -- the records ---------------------------------------------------------------------

LIMIT_INPUTS = obj({"server_cores": AMOUNT, "swarm_cores": AMOUNT, "swarm_cores_source": TEXT_OR_NULL,
                    "swarm_workers": COUNT_OR_NULL, "swarm_cpus": AMOUNT, "engine_cpus": COUNT_OR_NULL,
                    "host_cores": AMOUNT}, null=True)

PAIRS = {"type": "array", "items": {"type": "array", "prefixItems": [{"type": "number", "minimum": 0}, AMOUNT],
                                    "minItems": 2, "maxItems": 2}}
SWARM = {
    **obj({
        "summary": obj({"replies_per_s": AMOUNT, "replies": COUNT_OR_NULL, "replies_measured": COUNT_OR_NULL,
                        "requests_sent": COUNT_OR_NULL, "unanswered": COUNT_OR_NULL, "workers": COUNT_OR_NULL,
                        "clients": COUNT_OR_NULL, "pattern": TEXT_OR_NULL, "latency": LATENCY,
                        "errors": {"type": "object", "additionalProperties": COUNT},
                        "connections": obj({"connected": COUNT_OR_NULL, "connect_all_s": AMOUNT})},
                       ("replies_per_s", "replies_measured", "requests_sent", "unanswered", "clients", "pattern",
                        "errors", "latency", "connections")),
        "cpu": obj({"per_s": AMOUNT}),
        "started": obj({"monotonic": AMOUNT}, ("monotonic",)),
        "duration_s": AMOUNT,
        "timeline": obj({"conns": {"type": "array", "items": obj({"client": COUNT, "pairs": PAIRS},
                                                                 ("client", "pairs"))}}, ("conns",), null=True),
        "environment": TABLE,
    }, ("summary", "cpu"), null=True),
    # a timeline is drawn from the swarm's start and length
    "if": {"properties": {"timeline": {"type": "object"}}, "required": ["timeline"]},
    "then": {"required": ["started", "duration_s"],
             "properties": {"duration_s": MEASURED, "started": obj({"monotonic": MEASURED})}},
}

SNAPSHOT = obj({"processes": COUNT_OR_NULL, "threads": COUNT_OR_NULL, "pss_kib": COUNT_OR_NULL,
                "uss_kib": COUNT_OR_NULL, "rss_kib": COUNT_OR_NULL, "memory_source": TEXT_OR_NULL, "late": FLAG,
                "at_s": SIGNED, "took_s": AMOUNT}, null=True)

SERVER_CPU = obj({"cores": AMOUNT, "cpu_s": AMOUNT, "window_s": AMOUNT, "us_per_reply": AMOUNT, "from_s": SIGNED,
                  "to_s": SIGNED, "resolution_s": AMOUNT, "excluded_s": AMOUNT, "source": TEXT_OR_NULL}, null=True)

WRK = obj({"requests_per_s": AMOUNT, "requests": COUNT_OR_NULL, "duration_s": AMOUNT,
           "latency_ms": obj({k: AMOUNT for k in ("mean", "p50", "p75", "p90", "p99", "max")}, null=True),
           "errors": {"type": ["object", "null"], "additionalProperties": COUNT}, "non_2xx": COUNT_OR_NULL,
           "threads": COUNT_OR_NULL, "connections": COUNT_OR_NULL, "error": TEXT_OR_NULL,
           "exit_code": {"type": ["integer", "null"]}, "command": {"type": ["array", "null"], "items": TEXT},
           "limit_inputs": LIMIT_INPUTS}, null=True)

C10K_FIGURES = obj({
    **{k: COUNT_OR_NULL for k in ("asked", "accepted", "connected", "kept_to_the_end", "active", "active_answered",
                                  "open_at_peak", "threads_at_peak", "processes_at_peak", "backlog", "somaxconn",
                                  "nofile", "pids_limit")},
    "ramp_s": AMOUNT, "cpu_cores": AMOUNT, "latency_us": {**LATENCY, "type": ["object", "null"]},
    "memory_per_connection": {"type": ["object", "null"], "additionalProperties": SIGNED},  # peak minus idle
    "server_errors": {"type": ["object", "null"], "additionalProperties": COUNT},
    "listen_queue": {"type": ["object", "null"], "additionalProperties": COUNT},  # counters' growth
    "port_range": {"type": ["array", "null"], "items": COUNT},
})

CHECK = obj({"expected": TEXT_OR_NULL, "observed": TEXT_OR_NULL, "ok": FLAG, "all_accepted": FLAG,
             "peak_at_s": SIGNED, "peak_threads": COUNT_OR_NULL, "peak_processes": COUNT_OR_NULL,
             "figures": C10K_FIGURES}, null=True)

# The syscalls workload's record (lab/report/results.py cost_record): calls per reply by
# name, switches per reply, CPU per reply, and each verdict.
COST = obj({"calls_per_reply": each(AMOUNT), "calls_per_reply_idle": each(AMOUNT),
            "switches_per_reply": each(AMOUNT), "cpu_us_per_reply": AMOUNT, "cpu_us_per_reply_idle": AMOUNT,
            "missing": TEXTS,
            "verdicts": {"type": "array", "items": obj({"expect": TEXT, "expected": TEXT_OR_NULL,
                                                         "observed": TEXT_OR_NULL, "ok": FLAG}, ("expect", "ok"))}},
           null=True)

COUNTERS = obj({k: COUNT_OR_NULL for k in ("asked", "connected", "accepted", "accepted_after_end", "open_at_peak",
                                           "kept", "waited_unaccepted")}, null=True)

RECORD = obj({"error": TEXT_OR_NULL, "swarm": SWARM, "replies_per_client": {"type": ["array", "null"], "items": COUNT},
              "server_cpu": SERVER_CPU, "limit_inputs": LIMIT_INPUTS, "load": SNAPSHOT, "wrk": WRK,
              "counters": COUNTERS, "check": CHECK, "cost": COST, "swarm_command": {"type": ["array", "null"], "items": TEXT},
              "server": obj({"command": {"type": ["array", "null"], "items": TEXT}, "ready_after_s": AMOUNT,
                             "start": TABLE}, null=True)})

REPEAT = obj({"repeat": {"type": "integer", "minimum": 1}, "error": TEXT_OR_NULL, "ready_after_s": AMOUNT,
              "server_start": TABLE, "idle": SNAPSHOT, "workloads": each(RECORD)}, ("repeat",))

MODEL = obj({"kind": {"enum": ["model", "server", "reference", None]}, "summary": TEXT_OR_NULL, "expect": TABLE,
             "server_command": {"type": ["array", "null"], "items": TEXT},
             "skipped": {"type": ["object", "null"], "additionalProperties": TEXT},
             "repeats": {"type": ["array", "null"], "items": REPEAT}, "classification": TABLE})

WORKLOAD = obj({"name": TEXT, "title": TEXT, "kind": TEXT, "about": TEXT, "warmup_s": MEASURED, "measure_s": MEASURED,
                "flags": TABLE, "scenario": TEXT_OR_NULL, "server_flags": {"type": ["array", "null"], "items": TEXT}},
               ("name", "title", "kind", "warmup_s", "measure_s"))

COMPARE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "results.json of lab compare (lab/report/SCHEMA.md)",
    **obj({
        "schema": {"enum": list(COMPARE_SCHEMAS)},
        "run": obj({"id": TEXT, "started_wall": AMOUNT, "ended_wall": AMOUNT, "measured_s": AMOUNT}, ("id",)),
        "params": obj({"models": TEXTS, "scenarios": TEXTS, "repeat": {"type": "integer", "minimum": 1},
                       "duration": AMOUNT, "clients": TEXTS, "checks": FLAG, "reference": TEXT_OR_NULL,
                       "argv": TEXTS, "server_trace": TEXT_OR_NULL, "swarm_base_command": TEXTS,
                       "server_commands": {"type": "object", "additionalProperties": TEXTS}}, ("models",)),
        "environment": obj({"host": obj({"cpus": COUNT_OR_NULL}, null=True),
                            "engine": obj({"cpus": COUNT_OR_NULL, "memory_bytes": COUNT_OR_NULL}, null=True),
                            "containers": obj({"python": {"type": ["object", "null"], "additionalProperties": SCALAR},
                                               "swarm_python": SCALAR}, null=True)}, null=True),
        "workloads": {"type": "array", "items": WORKLOAD},
        "models": each(MODEL),
        "errors": {"type": ["array", "null"], "items": TEXT},
    }, ("schema", "run", "params", "workloads", "models")),
}

VERDICT = obj({"model": TEXT, "check": TEXT, "expect": TEXT_OR_NULL, "claim": TEXT_OR_NULL,
               "expected": SCALAR, "observed": SCALAR,
               "ok": FLAG, "figures": TABLE, "judged": FLAG, "outcome": TEXT_OR_NULL},
              ("model", "check", "ok"))

CHECKS = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "checks.json of lab check and lab compare --checks (any version of CHECKS_SCHEMA)",
    **obj({"schema": {"type": "string", "pattern": "^" + re.escape(CHECKS_SCHEMA.split("/")[0] + "/")},
           "checks": {"type": "array", "items": VERDICT},
           "passed": FLAG, "outcome": TEXT_OR_NULL, "held": COUNT_OR_NULL, "failed": COUNT_OR_NULL,
           "not_judged": COUNT_OR_NULL, "skipped": {"type": ["array", "null"], "items": TABLE}},
          ("schema", "checks")),
}


# -- reading ---------------------------------------------------------------------------

def read(path: Path, schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON document held to ``schema``, or a UsageError naming the file
    and the first field outside its domain."""
    return check(parse(path), path, schema)


def parse(path: Path) -> Any:
    """A JSON file, parsed (NaN and Infinity too: check() says where they are)."""
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        raise UsageError(f"{path}: not JSON ({str(exc).splitlines()[0]})") from None


def check(doc: Any, path: Path, schema: dict[str, Any]) -> Any:
    """``doc`` if every figure is finite and it holds to ``schema``; else a
    UsageError: `path: field: what is wrong`."""
    bad = first_non_finite(doc)
    if bad is not None:
        where, value = bad
        raise UsageError(f"{path}: {where or 'the document'} is {value}: a figure must be a finite number "
                         "(JSON has no NaN or Infinity)")
    problem = violation(doc, schema)
    if problem:
        raise UsageError(f"{path}: {problem}")
    return doc
