"""Every model, in its container, brought up the way a user does (`lab up
MODEL --no-swarm`), healthy, and answering both protocols from real tools:
`nc` for the line protocol and `curl` for HTTP.  The tools run in the lab's
tools container on the run's own network and address the server by its
network alias, so the host needs neither tool, and nothing is published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.console import say
from lab.plan import models
from lab.run import tools
from lab.run.live import LiveRun

ROOT = Path(__file__).resolve().parents[2]


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


@pytest.fixture(scope="module")
def clients(engine, app_image):
    """A test run whose only containers are tools containers, joined to
    whichever run's network a test names."""
    with LiveRun(engine, "test", "clients", say=say) as live:
        live.image_for(tools.SERVICE_NAME)  # made once, before any timing matters
        yield live


# The Python models (references and real servers speak their own protocols).
PYTHON_MODELS = sorted(n for n, m in models.all_models().items() if getattr(m, "kind", "model") == "model")


@pytest.mark.parametrize("model", PYTHON_MODELS)
def test_model_comes_up_healthy_and_speaks_both_protocols(clients, engine, model: str) -> None:
    done = lab("up", model, "--no-swarm")
    assert done.returncode == 0, done.stderr
    run = done.stdout.split("(run ", 1)[1].split(",", 1)[0]
    try:
        res = engine.runs(run)[run]
        assert res.units[0].state().health == "healthy"
        network = res.networks[0].name
        nc = tools.run(clients, ["nc", "-q", "1", "server", "12345"], timeout=20,
                       stdin=b"hello from nc\nSTATS\n", network=network)
        lines = nc.stdout.splitlines()
        assert nc.code == 0 and len(lines) == 2, nc
        assert lines[0] == b"hello from nc", nc
        assert json.loads(lines[1])["model"] == model, nc
        curl = tools.run(clients, ["curl", "-sS", "--max-time", "10", "http://server:12345/sleep/20",
                                   "http://server:12345/stats"], timeout=20, network=network)
        assert curl.code == 0 and curl.stdout.startswith(b"SLEPT 20\n"), curl
        assert json.loads(curl.stdout.split(b"\n")[1])["model"] == model, curl
    finally:
        lab("down", run)
