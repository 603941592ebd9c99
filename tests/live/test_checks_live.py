"""`lab check --all` through pytest: every model's every declared expectation
is a test of its own, judged against live containers.  The checks run once
per session (one `lab check --all`); each test then reads its verdict.
A verdict must be held: not judged is no pass (unless the host was busy,
which proves nothing either way: see tests/live/judged.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab.plan import models, scenarios
from tests.live.judged import ROOT, check, expect_ok  # the all_checks fixture: tests/live/conftest.py

JUDGED = {key for s in scenarios.all_scenarios().values() if s.default for key in s.judges}
# every declared expectation that `lab check --all` judges (c10k has its own test)
CASES = [(name, key) for name, m in models.all_models().items() if m.kind == "model"  # what --all checks
         for key in m.expect if key in JUDGED]


def test_every_model_and_every_judged_key_is_a_case() -> None:
    """The cooperative models and their claims are in the parametrisation:
    a model or key left out of CASES would never be checked live."""
    names = {m for m, _ in CASES}
    assert {"asyncio", "coroutines", "gevent", "uvloop", "threads", "forking", "uring"} <= names
    for model in ("asyncio", "coroutines", "gevent", "uvloop", "threads", "forking"):
        assert (model, "work_stalls_others") in CASES, model
        assert (model, "sleep_stalls_others") in CASES, model


@pytest.mark.parametrize("model, key", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_declared_behaviour_holds(all_checks: dict, model: str, key: str) -> None:
    found = [v for v in all_checks["checks"] if v["model"] == model and v["expect"] == key]
    assert found, f"no check judged {model}'s {key}"
    for v in found:
        expect_ok(v, True)


def test_check_all_writes_its_run_directory(all_checks: dict) -> None:
    run = Path(os.environ["LAB_RUNS_DIR"]) / all_checks["run"]
    saved = json.loads((run / "checks.json").read_text())
    assert saved["checks"] == all_checks["checks"]
    assert (run / "logs" / "swarm.log").exists()
    assert list((run / "probes").glob("*/served-at-once-main.results.json"))
    meta = json.loads((run / "run.json").read_text())  # its wall-clock span, set up and teardown included
    span = meta["ended"] - meta["started"]
    assert 0.5 * span <= all_checks["duration_s"] <= span + 5, (all_checks["duration_s"], span)
    n = len(all_checks["checks"])
    assert all_checks["held"] + all_checks["failed"] + all_checks["not_judged"] == n
    assert all_checks["exit_code"] == {"held": 0, "failed": 1, "not judged": 3}[all_checks["outcome"]]
    # every check a model does not declare is listed as skipped, with why
    skipped = {(s["model"], s["expect"]) for s in all_checks["skipped"]}
    assert ("blocking", "triggering") in skipped and ("threads", "thread_count") in skipped
    assert not skipped & {(v["model"], v["expect"]) for v in all_checks["checks"]}


def test_a_broken_model_turns_the_right_checks_red(engine, app_image, tmp_path: Path) -> None:
    """`threads` made to serve one client at a time (its service runs the
    blocking server): the checks that depend on that go red, the others not."""
    text = (ROOT / "compose.yaml").read_text().replace(
        "command: [python3, /srv/threads/server.py]", "command: [python3, /srv/blocking/server.py]").replace(
        "./services", f"{ROOT}/services")  # build contexts are relative to the compose file
    broken = tmp_path / "compose.yaml"
    broken.write_text(text)
    doc = check("threads", "--scenario", "served-at-once", "--scenario", "growth", "--scenario", "stalls",
                "--scenario", "cpu-stall", env={"LAB_COMPOSE": str(broken)}, codes=(1,))
    verdicts = {v["expect"]: v for v in doc["checks"]}
    expect_ok(verdicts["peak_served"], False)  # one at a time, not all
    expect_ok(verdicts["threads"], False)  # no thread per client
    expect_ok(verdicts["processes"], True)  # still one process: that claim holds
    expect_ok(verdicts["block_stalls_others"], False)  # a blocked handler now holds everyone
    expect_ok(verdicts["work_stalls_others"], False)  # and so does a WORK: nobody else is served meanwhile
