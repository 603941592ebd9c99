"""C10K through `lab check`: ten thousand connections against two models
that answer them in opposite ways (epoll holds them all, select fails at
descriptor 1024 and says so), with the figures in the run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_c10k_is_judged_and_its_figures_recorded(engine, app_image) -> None:
    done = subprocess.run([sys.executable, "-m", "lab", "check", "epoll", "select", "--scenario", "c10k",
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
    report = json.loads(done.stdout)
    verdicts = {v["model"]: v for v in report["checks"]}
    epoll, select = verdicts["epoll"]["figures"], verdicts["select"]["figures"]
    assert epoll["accepted"] == epoll["kept_to_the_end"] == 10_000
    assert epoll["latency_us"]["p99_us"] <= 100_000
    assert epoll["memory_per_connection"]["pss"] > 0 and epoll["threads_at_peak"] == 1
    assert select["server_errors"].get("fd_setsize", 0) > 0 and select["kept_to_the_end"] < 10_000
    for figures in (epoll, select):
        assert figures["somaxconn"] and figures["backlog"] == 4096 and figures["nofile"] == 20_000
        assert figures["port_range"] == [1024, 65535]
    saved = Path(os.environ["LAB_RUNS_DIR"]) / report["run"] / "checks.json"
    assert json.loads(saved.read_text())["checks"] == report["checks"]
