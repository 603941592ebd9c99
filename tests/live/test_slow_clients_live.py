"""Slow clients on live containers, read from the session's two check runs.

`lab check --all` and the real servers' `lab check` (tests/live/conftest.py)
each run the slow-clients scenario on every model that declares it: four
clients send their requests in pieces (3 bytes every 100 ms) and three
normal clients beside them send every 50 ms.  Here: the pools (the prefork
and threadpool models: 4 workers), the one-at-a-time server, a thread and a
process per connection, two loops, and the real servers: Apache prefork
(held: a child per connection while it reads), Apache event and worker
(held too: mpm_event reads request heads in its worker threads), nginx (not
held).  Every declared claim must hold; then the recorded evidence is
judged again with each declaration flipped, and must turn red, without a
second run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab import checks, config
from lab.checks.registry import JUDGES
from lab.plan import models, scenarios
from lab.run.probe import Probe
from tests.live.judged import expect_ok

MODELS = ("blocking", "prefork", "threadpool", "threads", "forking", "epoll", "asyncio",
          "apache-prefork", "apache-event", "apache-worker", "nginx")
FLIP = {"held": "not-held", "not-held": "held"}




@pytest.fixture(scope="session")
def slow_run(all_checks: dict[str, Any], real_checks: dict[str, Any]) -> dict[str, Any]:
    """Both check runs' verdicts, and the run each model's probes were recorded in."""
    runs = {v["model"]: doc["run"] for doc in (all_checks, real_checks) for v in doc["checks"]}
    return {"checks": all_checks["checks"] + real_checks["checks"], "runs": runs}


def verdict_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found = [v for v in doc["checks"] if v["model"] == name and v["expect"] == "slow_clients"]
    assert len(found) == 1, f"{name}: {len(found)} slow_clients verdicts in {doc['checks']}"
    return found[0]


@pytest.mark.parametrize("name", MODELS)
def test_each_declared_slow_clients_claim_holds(slow_run: dict[str, Any], name: str) -> None:
    v = verdict_of(slow_run, name)
    expect_ok(v, True)
    share = v["figures"]["on_time_share"]
    assert (share <= 0.1) if models.get(name).expect["slow_clients"] == "held" else (share >= 0.9), v


def test_apache_prefork_and_the_pools_are_held_nginx_is_not(slow_run: dict[str, Any]) -> None:
    held = {name for name in MODELS if verdict_of(slow_run, name)["figures"]["on_time_share"] <= 0.1}
    assert {"apache-prefork", "prefork", "threadpool", "blocking"} <= held
    assert not {"nginx", "epoll", "threads", "forking", "asyncio"} & held


@pytest.mark.parametrize("name", MODELS)
def test_a_flipped_declaration_is_red_on_the_same_evidence(slow_run: dict[str, Any], name: str) -> None:
    """The recorded swarm results, judged with the declaration flipped."""
    path = config.runs_dir() / slow_run["runs"][name] / "probes" / name / "slow-clients-main.results.json"
    results = json.loads(path.read_text())
    real = models.get(name)
    wrong = {**real.expect, "slow_clients": FLIP[real.expect["slow_clients"]]}
    flipped = real.with_expect(wrong)
    began = results["started"]["monotonic"]
    probe = Probe("main", results, 0, began, results["ended"]["monotonic"], "")
    ctx = checks.Context(flipped, scenarios.get("slow-clients"), None, checks.tolerances(flipped))  # type: ignore[arg-type]
    ctx.probes["main"] = probe
    (v,) = JUDGES["slow_clients"](ctx)
    assert v.ok is False, f"{name}: flipped to {wrong['slow_clients']}, judged {v.ok}: {v.observed}"
