"""The JSON Schemas of services/ioschema/schemas.py: valid schemas, the
lab's kept swarm results in tests/fixtures valid against them, and broken
documents refused, each for its own reason.  Real outputs of a swarm and of
servers run as processes are held to them in tests/local/test_schemas_local.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest

from ioschema import schemas
from lab.report.results import SWARM_ENVIRONMENT_KEPT, SWARM_KEPT

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SWARM = jsonschema.Draft202012Validator(schemas.SWARM_RESULTS, format_checker=None)
EVENT = jsonschema.Draft202012Validator(schemas.TRACE_EVENT)
# What lab compare keeps of each swarm run (lab/report/results.py trim_swarm),
# written before the protocols came (the fixtures are older).
SWARM_AS_KEPT = jsonschema.Draft202012Validator(schemas.relaxed(schemas.SWARM_RESULTS, {
    **schemas.SWARM_LATER,
    "": [k for k in schemas.SWARM_RESULTS["required"] if k not in SWARM_KEPT],
    "environment": [k for k in schemas.ENVIRONMENT["required"] if k not in SWARM_ENVIRONMENT_KEPT]}))


def swarm_docs(doc: Any) -> Iterator[dict[str, Any]]:
    """Every swarm results document inside a compare results.json."""
    if isinstance(doc, dict):
        if doc.get("schema") == schemas.SWARM_SCHEMA:
            yield doc
            return
        for value in doc.values():
            yield from swarm_docs(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from swarm_docs(value)


def problems(validator: jsonschema.Draft202012Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("schema", [schemas.SWARM_RESULTS, schemas.TRACE_EVENT], ids=["swarm", "event"])
def test_the_schemas_are_schemas(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("fixture", ["compare-run", "compare-run-v1"])
def test_the_swarm_results_the_lab_kept_are_valid(fixture: str) -> None:
    doc = json.loads((FIXTURES / fixture / "results.json").read_text())
    kept = list(swarm_docs(doc))
    assert len(kept) >= 10, "the fixture holds a swarm run per model, workload and repeat"
    for one in kept:
        assert not problems(SWARM_AS_KEPT, one), problems(SWARM_AS_KEPT, one)[:5]


# -- a whole results.json, made by the swarm's own code ----------------------------------

@pytest.fixture(scope="module")
def results_doc() -> dict[str, Any]:
    """results.json of one worker (on the test bench) that connected, sent,
    was answered and ran a scripted action, built as the parent builds it."""
    from .swarm_docs import whole_results
    return whole_results()


def test_a_whole_results_document_is_valid(results_doc: dict[str, Any]) -> None:
    assert not problems(SWARM, results_doc), problems(SWARM, results_doc)
    assert results_doc["actions"][0]["outcome"] == "reply" and results_doc["summary"]["replies"] == 3


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    for name in parents:
        doc = doc[int(name)] if isinstance(doc, list) else doc[name]
    if value is KeyError:
        del doc[last]
    elif isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


@pytest.mark.parametrize("path,value,where", [
    ("schema", "iolab.swarm/2", "schema"),
    ("summary/replies", -1, "summary/replies"),  # a count below 0
    ("summary/replies", 2.5, "summary/replies"),  # a count that is not whole
    ("summary/latency/p99_us", -3, "summary/latency/p99_us"),  # a latency below 0
    ("summary/end_reason", "tired", "summary/end_reason"),  # not one of END_REASONS
    ("summary/errors/weird", 1, "summary/errors"),  # not an error kind
    ("summary/errors/reset", KeyError, "summary/errors"),  # every kind is always there
    ("connections/0/close", "bored", "connections/0/close"),  # not a close reason
    ("connections/0/latency_mean_us", -0.5, "connections/0/latency_mean_us"),
    ("connections/0/client", 0, "connections/0/client"),  # clients are numbered from 1
    ("histograms/latency/buckets", [[5, 1, 2]], "histograms/latency/buckets/0"),
    ("histograms/latency/clamped", -1, "histograms/latency/clamped"),
    ("timeline/conns/0/pairs", [["now", None]], "timeline/conns/0/pairs/0/0"),
    ("actions/0/outcome", "maybe", "actions/0/outcome"),
    ("cpu/us_per_reply", -2, "cpu/us_per_reply"),
    ("config/protocol", "smtp", "config/protocol"),
    ("workers/0/fast_path", "rust", "workers/0/fast_path"),
    ("duration_s", -0.1, "duration_s"),
    ("summary", KeyError, ""),  # a required key missing
    ("exit_code", 2, "exit_code"),
])
def test_a_broken_results_document_is_refused_where_it_is_broken(results_doc: dict[str, Any], path: str,
                                                                 value: Any, where: str) -> None:
    broken = copy.deepcopy(results_doc)
    _set(broken, path, value)
    found = problems(SWARM, broken)
    assert found, f"{path} = {value!r} passed"
    assert any(p.split(": ", 1)[0] == where for p in found), found


# -- trace events, as iorun.Trace writes them ----------------------------------------------

def test_events_as_the_trace_writes_them_are_valid(tmp_path: Path) -> None:
    import os
    from iorun import Trace
    path = tmp_path / "trace.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        trace = Trace("threads", "msg", fd=fd)
        trace.event("start", wall=1.7e9, port=12345, backlog=128)
        trace.conn("accept", "10.0.0.2:40000")
        trace.msg("recv", "10.0.0.2:40000", b"hello\n")
        trace.msg("reply", "10.0.0.2:40000", b"ok", client=1, latency_us=12)
        trace.event("error", "10.0.0.2:40000", kind="handler", detail="boom")
        trace.conn("close", "10.0.0.2:40000", reason="eof", requests=1)
        trace.event("results", part=1, of=1, gz64="x" * 5000)  # too long for one line: a stub
        trace.event("stop", reason="signal")
    finally:
        os.close(fd)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert events[6].get("truncated") and "gz64" not in events[6]
    for e in events:
        assert not problems(EVENT, e), (e, problems(EVENT, e))


GOOD_RECV = {"t": 5.0, "ev": "recv", "model": "epoll", "pid": 7, "tid": 7, "conn": "a:1", "bytes": 3, "data": "ab\n"}


@pytest.mark.parametrize("change,where", [
    ({"t": -1.0}, "t"),
    ({"ev": "nap"}, "ev"),
    ({"pid": 0}, "pid"),
    ({"bytes": -3}, "bytes"),
    ({"pid": KeyError}, ""),
    ({"data": KeyError}, ""),  # a whole recv carries its data
    ({"ev": "close"}, ""),  # a close says why
    ({"ev": "done", "ok": "yes", "end_reason": "duration"}, "ok"),
    ({"ev": "results", "part": 0, "of": 1, "gz64": ""}, "part"),
    ({"ev": "reply", "latency_us": -4}, "latency_us"),
])
def test_a_broken_event_is_refused(change: dict[str, Any], where: str) -> None:
    event = dict(GOOD_RECV)
    for key, value in change.items():
        if value is KeyError:
            del event[key]
        else:
            event[key] = value
    assert not problems(EVENT, GOOD_RECV)
    found = problems(EVENT, event)
    assert any(p.split(": ", 1)[0] == where for p in found), found
