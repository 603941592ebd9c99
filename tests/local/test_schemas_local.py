"""Real outputs held to services/ioschema/schemas.py: the results.json and
every stdout event of swarms run as processes against local models (as the
other local tests run them), and every event of those models, from start to
stop, by jsonschema and by the lab's own reading where the evidence enters
lab/ (lab/measure/evidence.py: it must take every real output).  The
schemas' own tests (broken documents refused, the lab's kept
results) are in tests/unit/test_schemas.py."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest

from ioschema import schemas
from lab.measure import evidence

from .model_process import ModelProcess
from .test_swarm_local import Swarm, run, target  # noqa: F401  (run: the fixture)

SWARM = jsonschema.Draft202012Validator(schemas.SWARM_RESULTS)
EVENT = jsonschema.Draft202012Validator(schemas.TRACE_EVENT)


def problems(validator: jsonschema.Draft202012Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def valid_events(events: list[dict[str, Any]], who: str) -> None:
    events = [e for e in events if e.get("ev") != "<stdout closed>"]  # model_process's own marker
    assert events, f"{who} wrote no events"
    bad = [(e, problems(EVENT, e)) for e in events if not EVENT.is_valid(e)]
    assert not bad, f"{who}: {len(bad)} of {len(events)} events break the schema, first: {bad[:3]}"
    for i, e in enumerate(events, 1):
        evidence.check_event(e, f"{who}, event {i}")  # an EvidenceError says where


# Each run's events are few enough to check one by one (a run at --trace msg
# is short, or counted).
RUNS: dict[str, list[Any]] = {
    "interval-msg-action": ["--clients", 3, "--pattern", "interval", "--interval", 20, "--duration", 0.5,
                            "--trace", "msg", "--at", "0.2:1:STATS", "--at", "0.3:2:SLEEP 50"],
    "pingpong": ["--clients", 3, "--pattern", "pingpong", "--pipeline", 2, "--count", 200, "--duration", 5,
                 "--warmup", 0.05, "--trace", "msg"],
    "rate": ["--clients", 4, "--pattern", "rate", "--rate", 400, "--duration", 0.5, "--trace", "conn"],
    "storm-count": ["--clients", 2, "--pattern", "storm", "--count", 5, "--duration", 5, "--trace", "conn",
                    "--results-stdout"],
    "hold-active": ["--clients", 4, "--active", 2, "--pattern", "pingpong", "--count", 20, "--duration", 5,
                    "--trace", "off", "--workers", 2],
    "http": ["--clients", 2, "--protocol", "http", "--pattern", "pingpong", "--count", 100, "--duration", 5,
             "--trace", "msg"],
}


@pytest.mark.parametrize("model", ["threads", "epoll", "forking", "prefork"])
def test_real_results_and_every_event_are_valid(run: Callable[..., Swarm], model: str) -> None:
    server = ModelProcess(model, "--backlog", "256", trace="msg")
    try:
        for name, flags in RUNS.items():
            if model != "threads" and name not in ("pingpong", "storm-count"):
                continue  # every run against one model; the others see the connection churn
            swarm = run("--target", target(server), *flags)
            code, doc = swarm.finish(20)
            assert code == 0 and doc is not None, (name, swarm.stderr[-800:])
            assert not problems(SWARM, doc), (name, problems(SWARM, doc)[:5])
            evidence.check_results(doc, f"{model}/{name}: results.json")
            valid_events(swarm.events, f"swarm {name}")
    finally:
        server.stop(signal.SIGTERM)
    valid_events(server.events, model)
    assert {"start", "accept", "recv", "send", "close", "stop"} <= {e["ev"] for e in server.events}


def test_a_failed_run_is_valid_too(run: Callable[..., Swarm], tmp_path: Path) -> None:
    """Nobody listens: every connection fails, the run says so, exit 1."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connects are refused
        swarm = run("--target", f"127.0.0.1:{port}", "--clients", 2, "--connect-timeout", 0.3, "--duration", 5,
                    "--trace", "conn", "--at", "0.1:1:STATS")
        code, doc = swarm.finish(20)
    assert code == 1 and doc is not None and not doc["ok"]
    assert doc["summary"]["connections"]["failed"] == 2
    assert not problems(SWARM, doc), problems(SWARM, doc)[:5]
    evidence.check_results(doc, "refused: results.json")
    valid_events(swarm.events, "swarm refused")
