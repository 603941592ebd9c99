"""Every model, in its container, brought up the way a user does (`lab up
MODEL`), healthy, and answering both protocols from real tools: `nc` for the
line protocol and `curl` for HTTP, from the host through a published port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import models

ROOT = Path(__file__).resolve().parents[2]


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


@pytest.mark.parametrize("model", sorted(models.all_models()))
def test_model_comes_up_healthy_and_speaks_both_protocols(app_image, engine, model: str) -> None:
    done = lab("up", model, "--no-swarm", "--publish")
    assert done.returncode == 0, done.stderr
    run = done.stdout.split("(run ", 1)[1].split(",", 1)[0]
    try:
        address = done.stdout.split("published on ", 1)[1].split()[0]
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1"
        nc = subprocess.run(["nc", "-q", "1", host, port], input=b"hello from nc\nSTATS\n",
                            capture_output=True, timeout=30)
        lines = nc.stdout.splitlines()
        assert lines[0] == b"hello from nc", nc
        assert json.loads(lines[1])["model"] == model
        curl = subprocess.run(["curl", "-s", "--max-time", "10", f"http://{address}/sleep/20",
                               f"http://{address}/stats"], capture_output=True, timeout=30)
        assert curl.stdout.startswith(b"SLEPT 20\n"), curl
        assert json.loads(curl.stdout.split(b"\n")[1])["model"] == model
        health = engine.runs(run)[run].containers[0].attrs["State"]["Health"]["Status"]
        assert health == "healthy"
    finally:
        lab("down", run)
