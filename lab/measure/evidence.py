"""The evidence the lab's own parts write, held to its schemas where it
enters lab/: the swarm's results.json (``SWARM_RESULTS``) and each trace
event (``TRACE_EVENT``), both in services/ioschema/schemas.py.

    results = check_results(json.loads(raw), "/results/003-threads-main/results.json")
    check_event(event, "threads's trace, line 17")

A document or event outside its schema is broken evidence of the lab's own
making, not the user's fault: an EvidenceError (exit 70) in one line, the
source, the field and the value.  Nothing is judged from it.

Events are many (a trace at --trace msg has one per recv and send), so
TRACE_EVENT is read once into one flat schema per event name (its common
fields and what its if/then rules add for that name), compiled into a
predicate (lab/validate.py accepts): a few microseconds an event, the whole
schema, not a subset.  The tests hold this reading to jsonschema's.
"""

from __future__ import annotations

from typing import Any, Callable

from ioschema.schemas import SWARM_RESULTS, TRACE_EVENT

from ..errors import EvidenceError
from ..validate import Schema, accepts, first_non_finite, violation

Event = dict[str, Any]
RESULTS = accepts(SWARM_RESULTS)  # compiled once: a c10k probe's results hold 10,000 connections


def check_results(doc: Any, source: str, schema: Schema = SWARM_RESULTS) -> dict[str, Any]:
    """``doc`` if it holds to the swarm's results schema; else an EvidenceError."""
    if (RESULTS if schema is SWARM_RESULTS else accepts(schema))(doc):
        return doc
    bad = first_non_finite(doc)
    problem = f"{bad[0]} is {bad[1]}: not a finite number" if bad else violation(doc, schema)
    if problem:
        raise EvidenceError(f"{source}: {problem}")
    return doc


def flat_events(schema: Schema = TRACE_EVENT) -> dict[str | None, Schema]:
    """{ev: the fields an event of that name carries}, from the schema's
    if/then rules (each: "ev is one of these, and not truncated"); under
    None, what a truncated stub carries."""
    base = {"type": "object", "required": list(schema["required"]), "properties": dict(schema["properties"])}
    flat: dict[str | None, Schema] = {None: base}
    for ev in schema["properties"]["ev"]["enum"]:
        one = {"type": "object", "required": list(base["required"]), "properties": dict(base["properties"])}
        for rule in schema["allOf"]:
            assert rule["if"]["not"] == {"required": ["truncated"]}, "a rule of another shape: read it here"
            if ev in rule["if"]["properties"]["ev"]["enum"]:
                one["required"] += rule["then"]["required"]
                one["properties"].update(rule["then"]["properties"])
        flat[ev] = one
    return flat


FLAT = flat_events()
ACCEPTS: dict[str | None, Callable[[Any], bool]] = {ev: accepts(s) for ev, s in FLAT.items()}


def check_event(event: Event, source: str) -> None:
    """Nothing if ``event`` holds to TRACE_EVENT; else an EvidenceError."""
    ev = None if "truncated" in event else event.get("ev")
    ok = ACCEPTS.get(ev)
    if ok is not None and ok(event):
        return
    problem = violation(event, FLAT[ev] if ev in FLAT else TRACE_EVENT)
    raise EvidenceError(f"{source}: {problem or 'not a trace event'}")
