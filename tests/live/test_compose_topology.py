"""compose.yaml brought up by Compose itself (through pytest-docker), and the
difference between blocking and threads proven from the servers' traces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.measure.events import EventStream

ROOT = Path(__file__).resolve().parents[2]
PROFILES = "--profile blocking --profile threads"


@pytest.fixture(scope="session")
def compose_servers(engine, app_image, docker_services, docker_compose_project_name):
    """blocking and threads, started by Compose from compose.yaml; setup and
    teardown in one try/finally."""
    os.environ["LAB_IMAGE"] = app_image  # compose.yaml: image: ${LAB_IMAGE:-...}
    compose = docker_services._docker_compose
    try:
        compose.execute(f"{PROFILES} up -d --no-build blocking threads")
        found = {}
        for c in engine.client.containers.list(
                filters={"label": f"com.docker.compose.project={docker_compose_project_name}"}):
            found[c.labels["com.docker.compose.service"]] = c
        for c in found.values():
            engine.wait_healthy(engine.unit(c), timeout=60)
        yield {name: (c, docker_services.port_for(name, 12345)) for name, c in found.items()}
    finally:
        compose.execute(f"{PROFILES} down -v --remove-orphans")


def run_three_clients(port: int, seconds: float = 1.5) -> None:
    """The classic experiment from the host: three clients, 50 ms apart."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "services"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "services/swarm/swarm.py"), f"--target=127.0.0.1:{port}",
         "--clients=3", "--interval=50", f"--duration={seconds}", "--trace=off"],
        env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-500:]


def served_order(events: list[dict[str, Any]]) -> list[str]:
    """The connections whose requests the server received, in order."""
    return [e["conn"] for e in events if e["ev"] == "recv" and e.get("bytes")]


def test_compose_config_is_valid_for_the_installed_compose() -> None:
    from .conftest import compose_command
    done = subprocess.run(f"{compose_command()} -f compose.yaml config -q", shell=True, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("model", ["blocking", "threads"])
def test_models_serve_as_their_io_model_dictates(compose_servers, watch, model: str) -> None:
    container, port = compose_servers[model]
    watch(container)
    events = EventStream(container)
    try:
        before = len(events.matching(lambda e: e["ev"] == "close"))
        run_three_clients(port)
        events.wait_for(lambda e: e["ev"] == "close", timeout=30, count=before + 3,
                        what="closed connections")
        ours = [e for e in events.events if e["ev"] in ("accept", "recv", "close")][-200:]
        order = served_order(ours)
        conns = list(dict.fromkeys(order))
        assert len(conns) == 3, f"expected 3 clients' requests, saw {conns}"
        switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
        if model == "blocking":
            # one client at a time: each client's requests arrive in one unbroken run
            assert switches == 2, f"blocking interleaved clients: {order}"
            first_close = next(e["t"] for e in ours if e["ev"] == "close" and e["conn"] == conns[0])
            second_start = next(e["t"] for e in ours if e["ev"] == "recv" and e["conn"] == conns[1])
            assert second_start >= first_close, "the second client was served before the first left"
        else:
            # all at once: the three clients' requests interleave throughout
            assert switches >= 20, f"threads did not interleave clients: {switches} switches"
    finally:
        events.close()
