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
import math
import re
from pathlib import Path
from typing import Any

from ioschema import CHECKS_SCHEMA, COMPARE_SCHEMAS

from ..errors import UsageError

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


def first_non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """The first NaN or infinity in a parsed document (Python's json reads
    NaN, Infinity and 1e999 as floats), with where it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = first_non_finite(item, _join(where, key))
        if found is not None:
            return found
    return None


def violation(doc: Any, schema: dict[str, Any]) -> str | None:
    """The first place ``doc`` leaves ``schema``, in one line (`field: what`), or None."""
    found = first_error(doc, schema, "")
    return None if found is None else f"{found[0] or 'the document'}: {found[1]}"


# The JSON Schema keywords these schemas use, read here: a few milliseconds for a
# compare run, where the general validator (jsonschema, which the tests hold
# these schemas and this reading to) takes a tenth of a second.
KEYWORDS = {"$schema", "title", "type", "minimum", "exclusiveMinimum", "enum", "pattern", "required",
            "properties", "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "if", "then"}
JSON_TYPES = {"string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
              "null": lambda v: v is None, "object": lambda v: isinstance(v, dict),
              "array": lambda v: isinstance(v, list),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
              or (isinstance(v, float) and v.is_integer())}


def first_error(value: Any, schema: dict[str, Any], where: str) -> tuple[str, str] | None:
    """(field, what is wrong) for the first place ``value`` leaves ``schema``."""
    types = schema.get("type")
    if types is not None and not any(JSON_TYPES[t](value) for t in _listed(types)):
        return where, f"{_shown(value)} should be {_types(types)}"
    said = _scalar_error(value, schema)
    if said:
        return where, f"{_shown(value)} {said}"
    if isinstance(value, dict):
        found = _object_error(value, schema, where)
    elif isinstance(value, list):
        found = _array_error(value, schema, where)
    else:
        found = None
    if found is None and "if" in schema and first_error(value, schema["if"], where) is None:
        found = first_error(value, schema.get("then", {}), where)
    return found


def _scalar_error(value: Any, schema: dict[str, Any]) -> str | None:
    if "enum" in schema and not any(value == e and isinstance(value, bool) == isinstance(e, bool)
                                    for e in schema["enum"]):
        return f"should be one of {', '.join(map(json.dumps, schema['enum']))}"
    if JSON_TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return f"should be at least {schema['minimum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"should be above {schema['exclusiveMinimum']}"
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        return f"should match {schema['pattern']}"
    return None


def _object_error(value: dict[str, Any], schema: dict[str, Any], where: str) -> tuple[str, str] | None:
    for key in schema.get("required", ()):
        if key not in value:
            return _join(where, key), "missing"
    properties, rest = schema.get("properties", {}), schema.get("additionalProperties")
    for key, item in value.items():
        sub = properties.get(key, rest)
        found = first_error(item, sub, _join(where, key)) if isinstance(sub, dict) else None
        if found:
            return found
    return None


def _array_error(value: list[Any], schema: dict[str, Any], where: str) -> tuple[str, str] | None:
    if len(value) < schema.get("minItems", 0):
        return where, f"{_shown(value)} should have at least {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return where, f"{_shown(value)} should have at most {schema['maxItems']} items"
    prefix, rest = schema.get("prefixItems", []), schema.get("items")
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else rest
        found = first_error(item, sub, _join(where, i)) if isinstance(sub, dict) else None
        if found:
            return found
    return None


def keywords(schema: Any) -> set[str]:
    """Every keyword a schema uses (the tests hold them to KEYWORDS)."""
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, sub in schema.items():
        if key in ("properties",):
            found |= set().union(*(keywords(v) for v in sub.values()))
        elif key in ("additionalProperties", "items", "if", "then"):
            found |= keywords(sub)
        elif key == "prefixItems":
            found |= set().union(*(keywords(v) for v in sub))
    return found


def _listed(types: Any) -> list[str]:
    return types if isinstance(types, list) else [types]


def _shown(value: Any) -> str:
    shown = json.dumps(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _types(value: Any) -> str:
    names = _listed(value)
    words = {"integer": "a whole number", "number": "a number", "string": "text", "object": "a mapping",
             "array": "a list", "boolean": "true or false", "null": "null"}
    return " or ".join(words.get(n, n) for n in names)


def _join(where: str, key: Any) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
