"""The evidence the lab reads is held to its schemas where it enters lab/
(lab/measure/evidence.py): a swarm's results.json broken, or a broken trace
event, is an internal error, exit 70, in one line naming the source, the
field and the value.  The lab's own reading (lab/validate.py) agrees with
jsonschema's; the fakes the unit tests judge and the swarm results kept in
tests/fixtures hold to the same schemas, so neither can drift from what the
swarm and the servers write."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest

from ioschema import schemas
from lab import cli
from lab.engine import Output
from lab.errors import EXIT_INTERNAL, EvidenceError
from lab.measure import evidence, merge
from lab.measure.events import EventStream
from lab.validate import accepts, first_error, violation

from .swarm_docs import whole_results
from .test_schemas import FIXTURES, SWARM_AS_KEPT, swarm_docs

RECV = {"t": 5.0, "ev": "recv", "model": "epoll", "pid": 7, "tid": 7, "conn": "a:1", "bytes": 3, "data": "ab\n"}


def broken_results() -> dict[str, Any]:
    doc = whole_results()
    doc["connections"][1]["replies"] = -1
    return doc


# -- a broken document or event: exit 70, one line, the field --------------------------

def test_a_broken_results_document_names_its_file_field_and_value() -> None:
    with pytest.raises(EvidenceError) as caught:
        evidence.check_results(broken_results(), "/results/001-epoll-main/results.json")
    assert str(caught.value) == "/results/001-epoll-main/results.json: connections[1].replies: -1 should be at least 0"
    assert caught.value.exit_code == EXIT_INTERNAL


def test_a_broken_replica_is_refused_before_it_is_merged() -> None:
    good, bad = whole_results(), broken_results()
    outputs = [Output(json.dumps(good).encode(), replica="1/2"), Output(json.dumps(bad).encode(), replica="2/2")]
    with pytest.raises(EvidenceError, match=r"^swarm replica 2/2: results.json: connections\[1\].replies: -1 "):
        merge.replicas(outputs, 2)


@pytest.mark.parametrize("n", [1, 2])
def test_merged_replicas_are_whole_evidence_too(n: int) -> None:
    """What Swarm mode judges is the merge, checked again where it enters: it
    must keep every field the swarm's own document has (cpu.parent was lost)."""
    outputs = [Output(json.dumps(whole_results()).encode(), replica=f"{i + 1}/{n}") for i in range(n)]
    merged = merge.replicas(outputs, n)
    evidence.check_results(merged, "merged results.json")
    assert merged["cpu"]["parent"]["user_s"] == round(n * whole_results()["cpu"]["parent"]["user_s"], 3)


def test_a_nan_in_the_results_is_refused() -> None:
    doc = whole_results()
    doc["summary"]["replies_per_s"] = float("nan")
    with pytest.raises(EvidenceError, match=r"results.json: summary.replies_per_s is nan: not a finite number"):
        evidence.check_results(doc, "results.json")


class Logs:
    """A unit whose output is these lines."""

    name = "epoll"

    def __init__(self, *events: dict[str, Any]) -> None:
        self.lines = [json.dumps(e).encode() + b"\n" for e in events]

    def logs(self, **_: Any) -> Iterator[bytes]:
        return iter([b"Traceback: not an event\n", *self.lines])


def test_a_broken_trace_event_stops_the_reading_and_raises_at_the_next_look() -> None:
    events = EventStream(Logs(RECV, {**RECV, "bytes": -3}, RECV))  # type: ignore[arg-type]
    with pytest.raises(EvidenceError, match=r"^epoll's trace, line 3: bytes: -3 should be at least 0$"):
        events.wait_for(lambda e: e["ev"] == "close", timeout=5)
    assert len(events.events) == 1  # the event before it is kept, none after
    with pytest.raises(EvidenceError):
        events.matching(lambda e: True)


@pytest.mark.parametrize("change,said", [
    ({"ev": "nap"}, 'ev: "nap" should be one of'),
    ({"pid": 0}, "pid: 0 should be at least 1"),
    ({"t": float("inf")}, "t: Infinity is not a finite number"),
    ({"bytes": True}, "bytes: true should be a whole number"),
    ({"data": None}, "data: null should be text"),
])
def test_each_broken_event_says_where(change: dict[str, Any], said: str) -> None:
    with pytest.raises(EvidenceError, match="^trace, line 1: " + said.replace("(", r"\(")):
        evidence.check_event({**RECV, **change}, "trace, line 1")


def test_the_cli_exits_70_on_broken_evidence(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    """Through main(): a verb that reads a swarm's results gets a broken replica."""
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    from lab.verbs import models

    def reads_a_broken_swarm(_args: Any) -> int:
        merge.replicas([Output(json.dumps(broken_results()).encode(), replica="1/1")], 1)
        return 0

    monkeypatch.setattr(models, "run", reads_a_broken_swarm)
    assert cli.main(["models"]) == EXIT_INTERNAL
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "internal error: EvidenceError: swarm replica 1/1: results.json: connections[1].replies: -1 " in err


# -- the lab's reading is jsonschema's ------------------------------------------------------

EVENTS = [RECV, {**RECV, "bytes": -1}, {**RECV, "ev": "reply", "latency_us": None}, {**RECV, "ev": "reply"},
          {**RECV, "ev": "reply", "latency_us": -2}, {"t": 1.0, "ev": "results", "model": "swarm", "pid": 3, "tid": 3,
                                                      "truncated": 9000},
          {"t": 1.0, "ev": "results", "model": "swarm", "pid": 3, "tid": 3}, {**RECV, "ev": "start"},
          {**RECV, "ev": "start", "wall": 1.7e9}, {**RECV, "ev": "connect", "connect_us": 5},
          {**RECV, "ev": "connect"}, {**RECV, "ev": "done", "ok": True, "end_reason": "not-started"},
          {**RECV, "ev": "done", "ok": 1, "end_reason": "duration"}, {**RECV, "truncated": 0}, {**RECV, "tid": -1}]


@pytest.mark.parametrize("event", EVENTS, ids=range(len(EVENTS)))
def test_an_event_is_refused_exactly_when_jsonschema_refuses_it(event: dict[str, Any]) -> None:
    theirs = jsonschema.Draft202012Validator(schemas.TRACE_EVENT).is_valid(event)
    ours = evidence.ACCEPTS[None if "truncated" in event else event["ev"]](event)
    assert ours == theirs == (first_error(event, schemas.TRACE_EVENT, "") is None)


@pytest.mark.parametrize("path,value", [("summary/errors/weird", 1), ("schema", "iolab.swarm/2"),
                                        ("connections/0/close", "bored"), ("timeline/conns/0/pairs", [[1.0]]),
                                        ("cpu/fast_path", "rust"), ("config/replica", None), ("exit_code", True)])
def test_a_results_document_is_refused_exactly_when_jsonschema_refuses_it(path: str, value: Any) -> None:
    doc = whole_results()
    *parents, last = path.split("/")
    place: Any = doc
    for name in parents:
        place = place[int(name)] if isinstance(place, list) else place[name]
    place[last] = value
    theirs = jsonschema.Draft202012Validator(schemas.SWARM_RESULTS).is_valid(doc)
    assert (first_error(doc, schemas.SWARM_RESULTS, "") is None) == accepts(schemas.SWARM_RESULTS)(doc) == theirs


def test_a_hundred_thousand_events_are_checked_in_well_under_a_second() -> None:
    """The whole schema per event (not a subset): 3 to 4 us of CPU each on a
    2-core VM, about what json.loads of its line costs."""
    many = [dict(RECV, t=float(i)) for i in range(100_000)]
    began = time.process_time()  # CPU time: a shared host's load does not count
    for e in many:
        evidence.check_event(e, "trace")
    assert time.process_time() - began < 1.0  # 0.3 to 0.45 s measured


# -- the fakes and the fixtures hold to the same schemas ------------------------------------

def structural(schema: Any, keep: bool = False) -> Any:
    """``schema`` with no key required (but in an if or not, where it decides
    which rule applies): a fake may leave out what its judge does not read,
    never put in what the swarm or a server would not write."""
    if isinstance(schema, list):
        return [structural(s, keep) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: structural(v, keep or k in ("if", "not")) for k, v in schema.items() if keep or k != "required"}


def test_the_judges_fakes_are_evidence_the_swarm_and_servers_could_write() -> None:
    """Read as the lab reads (200k events and 180 documents: jsonschema takes
    a minute, and agrees with the lab's reading, above)."""
    from . import test_judges
    shape = structural(schemas.SWARM_RESULTS)
    results = accepts(shape)
    events = {ev: accepts(structural(schema)) for ev, schema in evidence.FLAT.items()}
    seen = 0
    for judge, case, build, _ in test_judges.CASES:
        ctx = build()
        for name, probe in ctx.probes.items():
            assert results(probe.results), f"{judge}/{case}/{name}: {violation(probe.results, shape)}"
            seen += 1
        for event in getattr(ctx.target.events, "events", []):
            assert events[None if "truncated" in event else event.get("ev")](event), f"{judge}/{case}: {event}"
    assert seen > 50


def test_the_whole_fake_is_whole() -> None:
    evidence.check_results(whole_results(), "swarm_docs.py")


@pytest.mark.parametrize("fixture", ["compare-run", "compare-run-v1"])
def test_the_swarm_results_kept_in_the_fixtures_pass_the_labs_own_reading(fixture: str) -> None:
    doc = json.loads((FIXTURES / fixture / "results.json").read_text())
    kept = list(swarm_docs(doc))
    assert len(kept) >= 10
    for one in kept:
        evidence.check_results(copy.deepcopy(one), f"{fixture}/results.json", SWARM_AS_KEPT.schema)


@pytest.mark.parametrize("schema", [schemas.SWARM_RESULTS, schemas.TRACE_EVENT], ids=["results", "event"])
def test_the_lab_reads_every_keyword_the_evidence_schemas_use(schema: dict[str, Any]) -> None:
    from lab.validate import KEYWORDS, keywords
    assert keywords(schema) <= KEYWORDS, keywords(schema) - KEYWORDS
