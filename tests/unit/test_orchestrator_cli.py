"""--orchestrator and --swarm-replicas on the command line: every misuse is
one line and exit 2, before anything starts; an engine that is not a Swarm
manager is refused in one line that says what to do."""

from __future__ import annotations

import pytest

from lab import cli
from lab.engine import sdk
from lab.run import context

from .test_cli import lab, one_error_line
from .test_swarm_orchestrator import FakeClient


@pytest.mark.parametrize("argv", [
    ["up", "threads", "--swarm-replicas", "2"],
    ["check", "epoll", "--swarm-replicas", "3"],
    ["compare", "--models", "epoll", "--swarm-replicas", "2"],
    ["run", "c10k", "--model", "epoll", "--swarm-replicas", "2"],
    ["bench", "swarm", "--swarm-replicas", "2"],
])
def test_replicas_without_swarm_mode_are_refused(argv: list[str]) -> None:
    done = lab(*argv, LAB_ORCHESTRATOR="", DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert done.returncode == 2
    assert "needs --orchestrator swarm" in one_error_line(done)


def test_an_unknown_orchestrator_is_refused() -> None:
    flag = lab("status", "--orchestrator", "nomad")
    assert flag.returncode == 2 and "invalid choice: 'nomad'" in one_error_line(flag)
    env = lab("status", LAB_ORCHESTRATOR="nomad")
    assert env.returncode == 2
    assert one_error_line(env) == ("lab: error: unknown orchestrator 'nomad' (from LAB_ORCHESTRATOR); "
                                   "the orchestrators are: local, swarm")


@pytest.mark.parametrize("verb", [["up", "threads"], ["check", "epoll"]])
def test_swarm_mode_on_an_engine_that_is_not_a_manager_says_what_to_do(monkeypatch, capsys, verb) -> None:
    monkeypatch.setattr(sdk, "connect", lambda *a, **k: FakeClient([], swarm={"LocalNodeState": "inactive"}))
    context.forget()
    assert cli.main([*verb, "--orchestrator", "swarm"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("lab: skipped:")]
    assert err == ["lab: error: --orchestrator swarm needs a Swarm manager: run `docker swarm init` on this "
                   "engine, or point DOCKER_HOST at a manager"]
