"""The failing direction: for every model.yaml key that `lab check` judges,
a deliberately wrong declaration turns exactly that check red.

Two `lab check epoll --expect KEY=VALUE ...` runs, each with every default
scenario, split the wrong declarations between them: in each run the
flipped keys must fail and every other check must hold, so each key is
seen red in one run and green in the other, on the same model in the same
session.  (`wouldblock_counter` can only be declared true: epoll, which
does not count EAGAIN, is made to declare it.  c10k is flipped in
test_c10k_live.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab.plan import scenarios
from tests.live.judged import check, expect_ok

MODEL = "epoll"
WRONG: dict[str, Any] = {  # what epoll does not do
    "peak_served": 1, "thread_count": 2, "threads": "per-client", "processes": "per-client",
    "idle_cpu": "busy", "crash_takes": "connection", "raise_takes": "all", "block_stalls_others": False,
    "sleep_stalls_others": True, "work_stalls_others": False, "cpu_parallel": True, "lost_updates": True,
    "wouldblock_counter": True, "triggering": "edge", "fd_limit": 1024, "slow_clients": "held",
}
GROUPS = ({"peak_served", "processes", "idle_cpu", "block_stalls_others", "cpu_parallel", "fd_limit",
           "raise_takes", "wouldblock_counter", "slow_clients"},
          {"thread_count", "threads", "sleep_stalls_others", "lost_updates", "triggering", "crash_takes",
           "work_stalls_others"})


def flags(group: set[str]) -> list[str]:
    """--expect KEY=VALUE for each key (JSON is YAML)."""
    return [a for key in sorted(group) for a in ("--expect", f"{key}={json.dumps(WRONG[key])}")]


@pytest.fixture(scope="session")
def runs(engine, app_image) -> list[dict[str, Any]]:
    return [check(MODEL, *flags(group), codes=(1,)) for group in GROUPS]


def test_every_judged_key_has_a_wrong_declaration() -> None:
    judged = {key for s in scenarios.all_scenarios().values() if s.default for key in s.judges}
    judged -= {"slow_stalls_others"}  # needs a slow: request, which epoll has not: flipped on redis in
    #                                   test_real_servers_checks_live.py
    assert set(WRONG) == judged, "a key `lab check` judges without a wrong declaration here (or one too many)"
    assert set().union(*GROUPS) == set(WRONG) and not GROUPS[0] & GROUPS[1]


@pytest.mark.parametrize("key", sorted(WRONG))
def test_a_wrong_declaration_turns_its_check_red(runs: list[dict[str, Any]], key: str) -> None:
    i = 0 if key in GROUPS[0] else 1
    flipped = [v for v in runs[i]["checks"] if v["expect"] == key]
    assert flipped, f"{key}={WRONG[key]} was not judged"
    for v in flipped:
        expect_ok(v, False)
    for v in (v for v in runs[1 - i]["checks"] if v["expect"] == key):  # as declared, in the other run
        expect_ok(v, True)


@pytest.mark.parametrize("group", [0, 1])
def test_the_other_checks_of_the_same_run_stay_green(runs: list[dict[str, Any]], group: int) -> None:
    doc = runs[group]
    assert doc["expect_overrides"] == {k: WRONG[k] for k in GROUPS[group]}
    others = [v for v in doc["checks"] if v["expect"] not in GROUPS[group]]
    assert len(others) >= 5
    for v in others:
        expect_ok(v, True)
