"""classify's hold probe (services/swarm/holds.py) against the lab's models run
as local subprocesses: K connections each holding half a request, then a
fresh request; the bound is the smallest K that leaves it unanswered.  The
models' bounds are known from their design: one for the blocking server,
the pool's size for prefork and threadpool, none for a thread or process per
connection or an event loop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import pytest

from tests.local.model_process import SERVICES, ModelProcess

STEPS = "1,2,4,8"


def holds(port: int, *flags: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "swarm.holds", "--target", f"127.0.0.1:{port}",
                           "--steps", STEPS, *flags], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SERVICES)})
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines and lines[-1]["ev"] == "holds", done.stdout + done.stderr
    return done.returncode, lines[-1]


@pytest.mark.parametrize("model, args, bound", [
    ("blocking", (), 1),
    ("prefork", ("--workers", "3"), 3),
    ("threadpool", ("--workers", "3"), 3),
    ("threads", (), None),
    ("forking", (), None),
    ("epoll", (), None),
    ("asyncio", (), None),
])
def test_the_bound_is_what_the_model_is(model: str, args: tuple[str, ...], bound: int | None) -> None:
    server = ModelProcess(model, *args, trace="off")
    try:
        code, found = holds(server.port, "--idle")
    finally:
        server.stop()
    assert code == 0 and found["error"] is None, found
    assert found["bound"] == bound, [(s["k"], s["answered"]) for s in found["steps"]]
    held = [s for s in found["steps"] if s["mode"] == "unfinished"]
    assert all(s["held"] == s["k"] and not s["refused"] for s in held), held  # every half was held
    if bound is None:
        assert found["reach"] == 8 and all(s["answered"] for s in held)
    else:  # the bound is exact: answered one below it, never at it
        assert any(s["k"] == bound - 1 and s["answered"] for s in held) or bound == 1
        assert any(s["k"] == bound and not s["answered"] for s in held)
        assert found["idle_parked"] is False  # an idle keep-alive connection keeps its worker here


def test_a_port_that_refuses_is_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        code, found = holds(port)
    assert code == 2 and found["error"] == "it refused the connection" and not found["steps"]


def test_a_server_that_never_answers_is_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)  # accepted by the kernel, never read: no answer ever comes
        code, found = holds(s.getsockname()[1])
    assert code == 2 and "did not answer one complete line request" in found["error"]
