"""The real servers under `lab check`, judged like any model.

One `lab check` of all seven real servers (each declares what it shows:
idle CPU, clients served at once, what grows, threads per process, and
what its own slow request does to the others) must hold every declared
expectation: a test each, reading the one run.  Real servers write none of
the lab's trace, so this also proves the lab's other ways in: readiness
from the socket table and a first reply, who was served when from the
clients' side, closes from the server's socket table.  Then the failing
direction (a wrong declaration turns that check red), `lab up` of a real
server with its swarm speaking HTTP, and `lab compare` with a real server
beside a model, classified in the report.

The real servers' image is made once per session (about 1.5 min the first
time); the check run takes about two minutes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lab.engine import SERVICE
from lab.plan import models, scenarios
from tests.live.judged import check, expect_ok, lab, run_of

DEFAULT_KEYS = {key for s in scenarios.all_scenarios().values() if s.default for key in s.judges}
SERVERS = sorted(n for n, m in models.all_models().items() if m.kind == "server")


@pytest.fixture(scope="module")
def checked(real_checks: dict[str, Any]) -> dict[str, Any]:
    """One `lab check` of every real server (tests/live/conftest.py): its checks.json."""
    return real_checks


@pytest.mark.parametrize("name", SERVERS)
def test_each_real_server_holds_what_it_declares(checked: dict[str, Any], name: str) -> None:
    mine = [v for v in checked["checks"] if v["model"] == name]
    declared = set(models.get(name).expect) & DEFAULT_KEYS  # the others' scenarios run when named
    assert {v["expect"] for v in mine} == declared, f"{name}: judged {sorted(v['expect'] for v in mine)}"
    for v in mine:
        expect_ok(v, True)
    served = next(v for v in mine if v["expect"] == "peak_served")
    assert served["figures"]["evidence"] == "client side", served["figures"]
    skipped = {s["expect"] for s in checked["skipped"] if s["model"] == name}
    assert {"block_stalls_others", "crash_takes", "cpu_parallel"} <= skipped  # the lab's own commands


def test_apache_event_closes_are_its_rule_and_are_counted(checked: dict[str, Any]) -> None:
    """mpm_event closes a busy process's idle keep-alive connections (declared
    closes_idle): served-at-once holds whatever it closed, and says how many."""
    v = next(v for v in checked["checks"] if v["model"] == "apache-event" and v["expect"] == "peak_served")
    assert isinstance(v["figures"]["closed_by_server"], dict), v["figures"]
    if v["figures"]["closed_by_server"]:
        assert "closes_idle" in v["observed"], v["observed"]
    others = [v for v in checked["checks"] if v["model"] in ("apache-prefork", "apache-worker", "nginx")
              and v["expect"] == "peak_served"]
    assert all(v["figures"]["closed_by_server"] == {} for v in others), [v["figures"] for v in others]


@pytest.mark.parametrize("name, wrong", [
    ("redis", {"slow_stalls_others": False}),  # DEBUG SLEEP stalls every client
    ("postgres", {"slow_stalls_others": True}),  # pg_sleep holds its own backend only
    ("apache-prefork", {"peak_served": "all"}),  # 4 children: the fifth client waits
    ("postgres", {"processes": "fixed"}),  # a backend per client
])
def test_a_wrong_declaration_turns_that_check_red(real_image, app_image, name: str, wrong: dict[str, Any]) -> None:
    key, value = next(iter(wrong.items()))
    scenario = {"slow_stalls_others": "slow-stalls", "peak_served": "served-at-once", "processes": "growth"}[key]
    doc = check(name, "--scenario", scenario, "--expect", f"{key}={json.dumps(value)}", codes=(1, 3))
    flipped = [v for v in doc["checks"] if v["expect"] == key]
    assert len(flipped) == 1, doc["checks"]
    expect_ok(flipped[0], False)
    assert doc["exit_code"] == 1


def test_lab_up_runs_a_real_server_with_a_swarm_speaking_its_protocol(engine, real_image, app_image) -> None:
    done = lab("up", "apache-prefork", "--clients", "2", "--duration", "2", "--name", "rs-swarm", timeout=300)
    run = run_of(done)
    try:
        res = engine.runs(run)[run]
        swarm = next(u for u in res.units if u.labels.get(SERVICE) == "swarm")
        assert swarm.wait(60) == 0, swarm.logs(tail=5)
        events = [json.loads(x) for x in swarm.logs(stderr=False).decode().splitlines() if x.startswith("{")]
        start = next(e for e in events if e["ev"] == "start")
        last = next(e for e in events if e["ev"] == "done")
        assert start["protocol"] == "http" and start["target"] == "server:12345", start
        assert last["replies"] > 10 and not last["errors"] and last["ok"], last
    finally:
        assert lab("down", run).returncode == 0


def test_compare_puts_a_real_server_beside_a_model_with_its_class(real_image, app_image) -> None:
    done = lab("compare", "--models", "epoll,redis", "--no-native", "--repeat", "1", "--duration", "0.5",
               "--scenario", "classic,pingpong", timeout=600)
    assert done.returncode in (0, 3), done.stderr[-2000:]
    rundir = max(Path(os.environ["LAB_RUNS_DIR"]).glob("*-compare-*"), key=lambda p: p.stat().st_mtime)
    doc = json.loads((rundir / "results.json").read_text())
    redis = doc["models"]["redis"]
    assert redis["kind"] == "server"
    for name in ("classic", "pingpong"):
        got = redis["repeats"][0]["workloads"][name]
        assert not got.get("error") and got["swarm"]["summary"]["replies"] > 0, got.get("error")
        assert got["swarm"]["config"]["protocol"] == "redis"
    c = redis["classification"]
    assert c["cls"] == "event-loop" and c["agrees"] is True, c
    assert "classification" not in doc["models"]["epoll"]  # a model is classified with --classify only
    assert "Classification" in (rundir / "report.md").read_text()

