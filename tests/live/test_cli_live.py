"""The command line against live containers: a graceful stop that honours
compose.yaml's stop_grace_period, a run.json that says how a kept run ended,
paths that survive rich's markup, and a hung swarm stopped at its bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.errors import EnvironmentProblem
from lab.plan import models
from lab.run.live import LiveRun
from lab.run.probe import Bench

ROOT = Path(__file__).resolve().parents[2]


def lab(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_down_stops_gracefully_and_records_the_end(engine, app_image, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs [with] brackets"  # rich must print it as it is
    up = lab("up", "threads", "--no-swarm", LAB_RUNS_DIR=str(runs_dir))
    assert up.returncode == 0, up.stderr
    run = up.stdout.split("(run ", 1)[1].split(",", 1)[0]
    folder = runs_dir / run
    assert f"kept in {folder}/logs" in up.stdout.replace("\n", "")
    assert json.loads((folder / "run.json").read_text())["status"] == "kept"
    down = lab("down", run, LAB_RUNS_DIR=str(runs_dir))
    assert down.returncode == 0, down.stderr
    events = [json.loads(line) for line in (folder / "logs" / "threads.log").read_text().splitlines()
              if line.startswith("{")]
    stops = [e for e in events if e["ev"] == "stop"]
    # SIGTERM first (the server logs its stop), SIGKILL only after the grace period
    assert [e["reason"] for e in stops] == ["SIGTERM"], events[-3:]
    assert json.loads((folder / "run.json").read_text())["status"] == "removed"


def test_a_hung_swarm_is_stopped_at_its_bound(engine, app_image) -> None:
    with LiveRun(engine, "test", "hung-swarm", say=lambda _: None) as live:
        bench = Bench(live)
        target = bench.serve(models.get("epoll"), trace="off")
        began = time.monotonic()
        with pytest.raises(EnvironmentProblem, match="still running after its 2s bound"):
            bench.swarm(target, "hang", ["--clients=1", "--pattern=hold", "--duration=120", "--trace=off"],
                        timeout=2)
        took = time.monotonic() - began
        assert took < 20, f"the hung swarm took {took:.1f}s to be stopped"
        target.close()
