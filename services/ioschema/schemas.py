"""JSON Schemas (draft 2020-12) of what the servers and the swarm write:
``SWARM_RESULTS``, the swarm's results.json (iolab.swarm/1,
services/swarm/SCHEMA.md), and ``TRACE_EVENT``, one line of the trace every
server and the swarm write on stdout (services/iorun/trace.py;
docs/schemas.md, "Events").

Plain dicts, defined once: the images have no jsonschema module and need
none (nothing here runs there); the tests validate real documents with the
``jsonschema`` package (a dev dependency: tests/unit/test_schemas.py,
tests/local/test_schemas_local.py).  Besides the required keys and their
types, each states the domain of its figures: counts are integers >= 0,
latencies and durations >= 0, names come from this package's constants.

``relaxed(schema, drop)`` is the same schema with fewer keys required: for
a document the lab kept only part of (lab compare keeps the swarm's
summary, not its records), or one written before iolab.swarm/1 gained the
keys in ``SWARM_LATER``.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from . import (ACTION_OUTCOMES, CLOSE_REASONS, END_REASONS, ERROR_KINDS, EVENTS, FAST_PATHS, PATTERNS,
               PROTOCOLS, SWARM_SCHEMA, TRACE_LEVELS)

Schema = dict[str, Any]
DIALECT = "https://json-schema.org/draft/2020-12/schema"

# -- building blocks --------------------------------------------------------------
COUNT: Schema = {"type": "integer", "minimum": 0}
POSITIVE: Schema = {"type": "integer", "minimum": 1}
SECONDS: Schema = {"type": "number", "minimum": 0}  # a duration, or CPU time
STAMP: Schema = {"type": "number"}  # CLOCK_MONOTONIC seconds (a merged run's, shifted onto the lab's clock)
TEXT: Schema = {"type": "string"}
FLAG: Schema = {"type": "boolean"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def enum(values: Iterable[Any]) -> Schema:
    return {"enum": list(values)}


def record(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An object with these keys (more are allowed: a merged run adds some)."""
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


def counts_by(names: Iterable[str], every: bool = False) -> Schema:
    """{name: count}; ``every``: each name present."""
    names = list(names)
    schema: Schema = {"type": "object", "propertyNames": enum(names), "additionalProperties": COUNT}
    if every:
        schema["required"] = names
    return schema


# -- the swarm's results.json ---------------------------------------------------------
LATENCY_SUMMARY = record({"count": COUNT, "min_us": COUNT, "mean_us": SECONDS, "p50_us": COUNT, "p90_us": COUNT,
                          "p99_us": COUNT, "p99_9_us": COUNT, "max_us": COUNT})

HISTOGRAM = record(
    {"unit": {"const": "us"}, "significant_digits": {"const": 3}, "count": COUNT, "sum": COUNT, "min": COUNT,
     "max": COUNT,
     "buckets": {"type": "array", "items": {"type": "array", "prefixItems": [COUNT, POSITIVE], "minItems": 2,
                                            "maxItems": 2}}},
    {"clamped": COUNT})  # absent in results written before clamps were counted

CONFIG = record(
    {"target": TEXT, "protocol": enum(PROTOCOLS), "clients": POSITIVE, "pattern": enum(PATTERNS),
     "message": TEXT, "interval_ms": SECONDS, "pipeline": POSITIVE, "size": nullable(POSITIVE),
     "rate": nullable(SECONDS), "ramp": nullable(SECONDS), "warmup": SECONDS, "duration": SECONDS,
     "count": nullable(POSITIVE), "active": COUNT, "at": {"type": "array", "items": TEXT},
     "plan": nullable(TEXT), "workers": POSITIVE, "connect_timeout": SECONDS, "max_connecting": POSITIVE,
     "timeline_per_conn": COUNT, "timeline_max": COUNT, "records_max": COUNT, "out": nullable(TEXT),
     "trace": enum(TRACE_LEVELS)},
    {"replica": nullable(record({"index": POSITIVE, "of": POSITIVE, "clients": POSITIVE, "active": COUNT})),
     "fast_path": enum(("auto",) + FAST_PATHS), "user": nullable(TEXT), "database": nullable(TEXT),
     "http_host": nullable(TEXT), "slow_clients": COUNT, "pace_ms": nullable(SECONDS), "piece": nullable(POSITIVE)})

ENVIRONMENT = record(
    {"python": TEXT, "implementation": TEXT, "platform": TEXT, "hostname": TEXT, "cpu_count": nullable(POSITIVE),
     "cpu_affinity": nullable(POSITIVE),
     "ip_local_port_range": nullable({"type": "array", "items": COUNT, "minItems": 2, "maxItems": 2}),
     "pid": POSITIVE, "nofile": record({"soft": COUNT, "hard": nullable(COUNT)})})

LIMITS = record({"nofile_soft_before": COUNT, "nofile_hard": nullable(COUNT), "nofile_soft": COUNT,
                 "nofile_needed_per_worker": COUNT, "raise_error": nullable(TEXT)})

CONNECTIONS_SUMMARY = record(
    {"attempted": COUNT, "connected": COUNT, "tcp_connected": COUNT, "failed": COUNT, "never_started": COUNT,
     "clients_connected": COUNT, "connect_all_s": nullable(SECONDS), "closed_by": counts_by(CLOSE_REASONS)})

SUMMARY = record(
    {"protocol": enum(PROTOCOLS), "pattern": enum(PATTERNS), "clients": COUNT, "active": COUNT, "hold": COUNT,
     "workers": COUNT, "end_reason": enum(END_REASONS + ("not-started",)), "connections": CONNECTIONS_SUMMARY,
     "requests_sent": COUNT, "replies": COUNT, "replies_measured": COUNT, "replies_per_s": SECONDS,
     "unanswered": COUNT, "unexpected_replies": COUNT, "error_replies": nullable(COUNT), "bytes_sent": COUNT,
     "bytes_received": COUNT, "errors": counts_by(ERROR_KINDS, every=True), "latency": LATENCY_SUMMARY,
     "connect": LATENCY_SUMMARY, "handshake": LATENCY_SUMMARY,
     "rate": nullable(record({"intended_per_s": SECONDS, "achieved_per_s": SECONDS, "replies_per_s": SECONDS})),
     "storm": nullable(record({"connections_per_s": SECONDS}))})

CPU = record(
    {"user_s": SECONDS, "sys_s": SECONDS, "total_s": SECONDS, "workers_s": SECONDS, "measured_s": SECONDS,
     "us_per_reply": nullable(SECONDS), "per_s": SECONDS,
     "parent": record({"user_s": SECONDS, "sys_s": SECONDS})},
    {"fast_path": nullable({"type": "string", "pattern": "^({0})(/({0}))?$".format("|".join(FAST_PATHS))})})

WORKER = record(
    {"worker": COUNT, "pid": POSITIVE, "clients": COUNT, "end_reason": enum(END_REASONS), "ended": STAMP,
     "cpu": record({"user_s": SECONDS, "sys_s": SECONDS, "measured_s": SECONDS})},
    {"fast_path": enum(FAST_PATHS)})

CONNECTION = record(
    {"client": POSITIVE, "role": enum(PATTERNS), "conn": nullable(TEXT), "attempts": COUNT,
     "connect_start": STAMP, "connect_end": nullable(STAMP), "first_reply": nullable(STAMP),
     "last_reply": nullable(STAMP), "close_t": nullable(STAMP), "close": enum(CLOSE_REASONS), "sent": COUNT,
     "replies": COUNT, "unanswered": COUNT, "bytes_sent": COUNT, "bytes_received": COUNT,
     "errors": counts_by(ERROR_KINDS), "latency_mean_us": nullable(SECONDS), "latency_max_us": nullable(COUNT)},
    {"tcp_connect_end": nullable(STAMP), "handshake_us": nullable(COUNT), "error_replies": nullable(COUNT)})

TIMELINE = record(
    {"capped": FLAG, "per_conn_max": COUNT, "max": COUNT, "pairs": COUNT,
     "conns": {"type": "array", "items": record({
         "client": POSITIVE, "conn": nullable(TEXT),
         "pairs": {"type": "array", "items": {"type": "array", "prefixItems": [STAMP, nullable(STAMP)],
                                              "minItems": 2, "maxItems": 2}}})}})

ACTION = record(
    {"t": SECONDS, "client": POSITIVE, "send": TEXT, "conn": nullable(TEXT), "sent_t": nullable(STAMP),
     "done_t": nullable(STAMP), "outcome": enum(ACTION_OUTCOMES), "reply": nullable(TEXT),
     "latency_ms": nullable(SECONDS)})

SWARM_RESULTS: Schema = {
    "$schema": DIALECT,
    "$id": "https://iolab.invalid/schemas/iolab.swarm-1.json",
    "title": SWARM_SCHEMA,
    **record({
        "schema": {"const": SWARM_SCHEMA},
        "ok": FLAG,
        "exit_code": enum((0, 1)),
        "failures": {"type": "array", "items": TEXT},
        "warnings": {"type": "array", "items": TEXT},
        "config": CONFIG,
        "environment": ENVIRONMENT,
        "limits": LIMITS,
        "started": record({"monotonic": STAMP, "wall": SECONDS}),
        "ended": record({"monotonic": STAMP, "wall": SECONDS}),
        "duration_s": SECONDS,
        "warmup_s": SECONDS,
        "measure_window_s": SECONDS,
        "summary": SUMMARY,
        "cpu": CPU,
        "workers": {"type": "array", "items": WORKER},
        "histograms": record({"latency": HISTOGRAM, "connect": HISTOGRAM, "handshake": HISTOGRAM}),
        "connections": {"type": "array", "items": CONNECTION},
        "connections_capped": record({"capped": FLAG, "kept": COUNT, "dropped": COUNT, "max": COUNT}),
        "timeline": TIMELINE,
        "actions": {"type": "array", "items": ACTION},
    }),
}


# -- a trace event ----------------------------------------------------------------------
def _when(ev: str | tuple[str, ...], required: dict[str, Schema]) -> Schema:
    """Event ``ev`` (whole: a line cut to a stub says ``truncated``) carries these fields."""
    names = [ev] if isinstance(ev, str) else list(ev)
    return {"if": {"properties": {"ev": enum(names)}, "not": {"required": ["truncated"]}},
            "then": {"required": list(required), "properties": required}}


TRACE_EVENT: Schema = {
    "$schema": DIALECT,
    "$id": "https://iolab.invalid/schemas/iolab.trace-event.json",
    "title": "a trace event: one JSON line on a server's or the swarm's stdout",
    **record({"t": SECONDS, "ev": enum(EVENTS), "model": TEXT, "pid": POSITIVE, "tid": COUNT},
             {"conn": TEXT, "truncated": POSITIVE}),
    "allOf": [
        _when("start", {"wall": SECONDS}),
        _when(("accept", "connect", "ready"), {"conn": TEXT}),
        _when(("recv", "send"), {"conn": TEXT, "bytes": COUNT, "data": TEXT}),
        _when("reply", {"conn": TEXT, "bytes": COUNT, "data": TEXT, "latency_us": nullable(COUNT)}),
        _when("close", {"conn": TEXT, "reason": TEXT}),
        _when("error", {"kind": TEXT}),
        _when("action", {"client": POSITIVE, "send": TEXT, "outcome": enum(("sent",) + ACTION_OUTCOMES)}),
        _when("done", {"ok": FLAG, "end_reason": enum(END_REASONS + ("not-started",))}),
        _when("results", {"part": POSITIVE, "of": POSITIVE, "gz64": TEXT}),
        _when("connect", {"connect_us": COUNT}),
        _when("ready", {"handshake_us": COUNT}),
    ],
}


# Keys iolab.swarm/1 gained after its first results were written (the
# protocols, the CPU per reply): older results, kept by the lab, lack them.
SWARM_LATER: dict[str, tuple[str, ...]] = {
    "config": ("protocol",),
    "cpu": ("measured_s", "us_per_reply"),
    "summary": ("protocol", "error_replies", "handshake"),
    "summary/connections": ("tcp_connected",),
    "summary/errors": ("refused-by-server",),
}


def relaxed(schema: Schema, drop: dict[str, Iterable[str]]) -> Schema:
    """``schema`` without these keys required: ``drop`` maps a path of
    property names ("" the top, "summary/connections") to the keys."""
    out = copy.deepcopy(schema)
    for path, keys in drop.items():
        sub = out
        for name in filter(None, path.split("/")):
            sub = sub["properties"][name]
        gone = set(keys)
        sub["required"] = [k for k in sub["required"] if k not in gone]
    return out
