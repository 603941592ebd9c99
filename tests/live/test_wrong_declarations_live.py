"""The failing direction: for every model.yaml key that `lab check` judges,
a deliberately wrong declaration turns exactly that check red.

One `lab check epoll --expect KEY=VALUE ...` run, with every default
scenario and every key declared wrongly: each flipped check must fail,
while the session's `lab check --all` (tests/live/conftest.py), with
epoll's own declarations, holds the same keys: each key seen red and green
on the same model in the same session.  (`wouldblock_counter` can only be
declared true: epoll, which does not count EAGAIN, is made to declare it.
c10k is flipped in test_c10k_live.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab.plan import models, scenarios
from tests.live.judged import check, expect_ok

MODEL = "epoll"
WRONG: dict[str, Any] = {  # what epoll does not do
    "peak_served": 1, "thread_count": 2, "threads": "per-client", "processes": "per-client",
    "idle_cpu": "busy", "crash_takes": "connection", "raise_takes": "all", "block_stalls_others": False,
    "sleep_stalls_others": True, "work_stalls_others": False, "cpu_parallel": True, "lost_updates": True,
    "wouldblock_counter": True, "triggering": "edge", "fd_limit": 1024, "slow_clients": "held",
}
def flags(group: set[str]) -> list[str]:
    """--expect KEY=VALUE for each key (JSON is YAML)."""
    return [a for key in sorted(group) for a in ("--expect", f"{key}={json.dumps(WRONG[key])}")]


@pytest.fixture(scope="session")
def wrong(engine, app_image) -> dict[str, Any]:
    return check(MODEL, *flags(set(WRONG)), codes=(1,))


def test_every_judged_key_has_a_wrong_declaration() -> None:
    judged = {key for s in scenarios.all_scenarios().values() if s.default for key in s.judges}
    judged -= {"slow_stalls_others"}  # needs a slow: request, which epoll has not: flipped on redis in
    #                                   test_real_servers_checks_live.py
    assert set(WRONG) == judged, "a key `lab check` judges without a wrong declaration here (or one too many)"


@pytest.mark.parametrize("key", sorted(WRONG))
def test_a_wrong_declaration_turns_its_check_red(wrong: dict[str, Any], all_checks: dict[str, Any],
                                                 key: str) -> None:
    assert wrong["expect_overrides"] == WRONG
    flipped = [v for v in wrong["checks"] if v["expect"] == key]
    assert flipped, f"{key}={WRONG[key]} was not judged"
    for v in flipped:
        expect_ok(v, False)
    if key in models.get(MODEL).expect:  # (epoll declares no counter: nothing to hold as declared)
        declared = [v for v in all_checks["checks"] if v["model"] == MODEL and v["expect"] == key]
        assert declared, f"{key}: epoll's own declaration was not judged by lab check --all"
        for v in declared:
            expect_ok(v, True)
