"""uring in its container, under seccomp profiles of its own.

Docker 25+ blocks io_uring in its default seccomp profile; this engine's
default still allows it.  So both sides are staged here through the lab
itself (a compose.yaml whose uring service names a profile, given inline as
the engine's API takes it): with services/uring/seccomp-io_uring.json the
server comes up healthy and answers; with the same profile refusing the
three io_uring calls, as Docker 25's default does, `lab up` fails (exit 2)
with the server's one line, which says what to do.  And the client swarm's
every pattern runs against it, as against epoll in test_swarm_live.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab.plan import models
from lab.console import say
from lab.run.live import LiveRun
from lab.run.probe import Bench
from tests.live.judged import ROOT, lab
from tests.live.test_swarm_live import PATTERNS

PROFILE = ROOT / "services" / "uring" / "seccomp-io_uring.json"
URING_CALLS = {"io_uring_setup", "io_uring_enter", "io_uring_register"}


def compose_with(tmp_path: Path, profile: dict) -> dict[str, str]:
    """LAB_COMPOSE for a compose.yaml whose uring service runs under ``profile``."""
    text = (ROOT / "compose.yaml").read_text().replace("./services", f"{ROOT}/services")
    opt = json.dumps(["no-new-privileges:true", "seccomp=" + json.dumps(profile, separators=(",", ":"))])
    text, n = re.subn(r"(\n  uring:\n(?:    #.*\n)*)(    <<: \*server\n)", rf"\1\2    security_opt: {opt}\n", text)
    assert n == 1, "compose.yaml's uring service is not where this test looks for it"
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return {"LAB_COMPOSE": str(path)}


def test_the_shipped_profile_lets_it_serve(engine, app_image, tmp_path: Path) -> None:
    env = compose_with(tmp_path, json.loads(PROFILE.read_text()))
    done = lab("up", "uring", "--no-swarm", env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    run = done.stdout.split("(run ", 1)[1].split(",", 1)[0]
    try:
        (unit,) = engine.runs(run)[run].units
        got = unit.exec(["python3", "-c", "import socket; s = socket.create_connection(('127.0.0.1', 12345)); "
                         "s.sendall(b'STATS\\n'); print(s.makefile().readline())"])
        assert json.loads(got.output)["model"] == "uring", got
    finally:
        lab("down", run, env=env)


def test_refused_by_the_profile_it_says_why_in_one_line(engine, app_image, tmp_path: Path) -> None:
    profile = json.loads(PROFILE.read_text())
    for rule in profile["syscalls"]:
        if set(rule["names"]) == URING_CALLS:
            rule.update(action="SCMP_ACT_ERRNO", errnoRet=1)  # EPERM, as Docker 25+ refuses them
    env = compose_with(tmp_path, profile)
    done = lab("up", "uring", "--no-swarm", env=env, timeout=300)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "io_uring_setup refused (EPERM) by this process's seccomp filter: Docker 25+ blocks io_uring" \
        in done.stderr, done.stderr
    assert "seccomp-io_uring.json" in done.stderr


@pytest.fixture(scope="module")
def uring(engine, app_image):
    with LiveRun(engine, "test", "uring-patterns", say=say) as live:
        bench = Bench(live)
        target = bench.serve(models.get("uring"), trace="conn")
        try:
            yield bench, target
        finally:
            target.close()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_swarm_pattern_is_served(uring, pattern: str) -> None:
    bench, target = uring
    probe = bench.swarm(target, pattern, [*PATTERNS[pattern], "--duration=1.5", "--trace=conn"])
    s = probe.summary
    assert probe.exit_code == 0 and probe.results["ok"], probe.results.get("failures")
    assert s["pattern"] == pattern and s["end_reason"] == "duration"
    assert sum(s["errors"].values()) == 0, s["errors"]
    if pattern == "hold":
        assert s["connections"]["connected"] == 200 and s["replies"] == 0
        return
    assert s["replies"] > 0 and s["latency"]["count"] > 0
    if pattern == "interval":
        assert {c["client"] for c in probe.results["connections"] if c["replies"]} == {1, 2, 3}
    if pattern == "rate":
        assert abs(s["rate"]["achieved_per_s"] - 2000) < 200
    if pattern == "storm":
        assert s["connections"]["attempted"] > 10 and s["storm"]["connections_per_s"] > 0
