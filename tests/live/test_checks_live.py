"""`lab check --all` through pytest: every model's every declared expectation
is a test of its own, judged against live containers.  The checks run once
per session (one `lab check --all`); each test then reads its verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import models, scenarios

ROOT = Path(__file__).resolve().parents[2]
JUDGED = {key for s in scenarios.all_scenarios().values() if s.default for key in s.judges}
# every declared expectation that `lab check --all` judges (c10k has its own test)
CASES = [(name, key) for name, m in models.all_models().items() for key in m.expect if key in JUDGED]


def lab(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def all_checks(engine, app_image) -> dict:
    done = lab("check", "--all", "--json")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("model, key", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_declared_behaviour_holds(all_checks: dict, model: str, key: str) -> None:
    found = [v for v in all_checks["checks"] if v["model"] == model and v["expect"] == key]
    assert found, f"no check judged {model}'s {key}"
    for v in found:
        assert v["ok"], (f"{model} {v['check']}: expected {v['expected']}, observed {v['observed']}; "
                         f"figures {json.dumps(v['figures'])[:800]}")


def test_check_all_writes_its_run_directory(all_checks: dict) -> None:
    run = Path(os.environ["LAB_RUNS_DIR"]) / all_checks["run"]
    saved = json.loads((run / "checks.json").read_text())
    assert saved["checks"] == all_checks["checks"]
    assert (run / "logs" / "swarm.log").exists()
    assert list((run / "probes").glob("*/served-at-once-main.results.json"))
    assert all_checks["duration_s"] > 0


def test_a_broken_model_turns_the_right_checks_red(engine, app_image, tmp_path: Path) -> None:
    """`threads` made to serve one client at a time (its service runs the
    blocking server): the checks that depend on that go red, the others not."""
    text = (ROOT / "compose.yaml").read_text().replace(
        "command: [python3, /srv/threads/server.py]", "command: [python3, /srv/blocking/server.py]")
    broken = tmp_path / "compose.yaml"
    broken.write_text(text)
    done = lab("check", "threads", "--scenario", "served-at-once", "--scenario", "growth",
               "--scenario", "stalls", "--json", env={"LAB_COMPOSE": str(broken)})
    assert done.returncode == 1, done.stderr[-1000:]
    verdicts = {v["expect"]: v["ok"] for v in json.loads(done.stdout)["checks"]}
    assert verdicts["peak_served"] is False  # one at a time, not all
    assert verdicts["threads"] is False  # no thread per client
    assert verdicts["block_stalls_others"] is False  # a blocked handler now holds everyone
    assert verdicts["processes"] is True  # still one process: that claim holds
