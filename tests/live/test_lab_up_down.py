"""`lab up` / `lab logs` / `lab status` / `lab down`, end to end, as a user
types them (the console script in a subprocess), against the live engine."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, cast

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ))


def events_of(run: str, service: str) -> list[dict]:
    raw = lab("logs", service, "--run", run, "--raw")
    assert raw.returncode == 0, raw.stderr
    return [json.loads(line) for line in raw.stdout.splitlines() if line.startswith("{")]


def wait_for_replies(run: str, want: int) -> list[dict]:
    """Bounded wait: follow the swarm's log until `want` replies arrived."""
    proc = subprocess.Popen([sys.executable, "-m", "lab", "logs", "swarm", "--run", run, "--raw", "-f"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    seen: list[dict] = []
    try:
        for line in cast(IO[str], proc.stdout):  # a pipe: Popen was given PIPE
            if '"ev":"reply"' in line:
                seen.append(json.loads(line))
                if len(seen) >= want:
                    return seen
        pytest.fail(f"the swarm's log ended after {len(seen)} of {want} replies")
    finally:
        proc.kill()
        proc.wait()
    return seen


@pytest.fixture
def up_run(app_image):
    """Yields a function that runs `lab up` and returns the run id; every run
    it started is taken down afterwards, whatever happened."""
    started: list[str] = []

    def up(*args: str) -> str:
        done = lab("up", *args)
        assert done.returncode == 0, done.stderr
        run = next(line.split("run ")[1].split(",")[0] for line in done.stdout.splitlines() if "(run " in line)
        started.append(run)
        return run

    try:
        yield up
    finally:
        for run in started:
            lab("down", run)


def test_threads_serves_three_clients_interleaved(up_run) -> None:
    run = up_run("threads", "--duration", "30")
    replies = wait_for_replies(run, 30)
    clients = [r["client"] for r in replies]
    assert set(clients) == {1, 2, 3}
    assert sum(a != b for a, b in zip(clients, clients[1:])) >= 10, clients
    human = lab("logs", "--run", run)
    assert "client 1" in human.stdout and "client 2" in human.stdout and "client 3" in human.stdout


def test_blocking_serves_one_client_at_a_time(up_run) -> None:
    run = up_run("blocking", "--duration", "30")
    replies = wait_for_replies(run, 20)
    assert {r["client"] for r in replies} == {replies[0]["client"]}
    received = [e["conn"] for e in events_of(run, "blocking") if e["ev"] == "recv"]
    assert len(set(received)) == 1, "a second client's messages reached the blocking server"


def test_status_and_down_leave_nothing_behind(up_run, engine) -> None:
    run = up_run("threads", "--duration", "30", "--no-swarm")
    status = json.loads(lab("status", "--json").stdout)
    mine = [r for r in status["runs"] if r["run"] == run]
    assert mine and mine[0]["containers"][0]["health"] == "healthy"
    done = lab("down", run)
    assert done.returncode == 0 and f"removed run {run}" in done.stdout
    assert run not in engine.runs()
    logs = list(Path(os.environ["LAB_RUNS_DIR"]).glob(f"{run}/logs/threads.log"))
    assert logs and b'"ev":"start"' in logs[0].read_bytes()


def test_published_port_is_on_loopback_only(up_run, engine) -> None:
    run = up_run("threads", "--no-swarm", "--publish")
    container = engine.runs(run)[run].units[0].raw
    bound = container.attrs["NetworkSettings"]["Ports"]["12345/tcp"]
    assert {b["HostIp"] for b in bound} == {"127.0.0.1"}
    port = int(bound[0]["HostPort"])
    # From the host, where the port is published (the stdlib: no host tool needed).
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/hello")
        reply = conn.getresponse()
        assert (reply.status, reply.read()) == (200, b"/hello\n")
    finally:
        conn.close()
