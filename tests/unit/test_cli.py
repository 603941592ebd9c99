"""The CLI's answers to bad input: one line, exit code 2, no Docker needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab.run import context

ROOT = Path(__file__).resolve().parents[2]


def lab(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [l for l in done.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_unknown_model_lists_the_models() -> None:
    done = lab("up", "nosuchmodel")
    assert done.returncode == 2
    assert "unknown model 'nosuchmodel'; the models are: " in one_error_line(done)


@pytest.mark.parametrize("flag, value, says", [
    ("--clients", "-3", "too small"),
    ("--clients", "30000", "at most 19936"),
    ("--duration", "0", "too small"),
    ("--interval", "soon", "not a number"),
])
def test_impossible_numbers_are_refused(flag: str, value: str, says: str) -> None:
    done = lab("up", "threads", flag, value)
    assert done.returncode == 2
    assert says in one_error_line(done)


def test_unknown_verb_and_flag() -> None:
    verb, flag = lab("fly"), lab("up", "threads", "--turbo")
    assert verb.returncode == 2 and "invalid choice: 'fly'" in one_error_line(verb)
    assert flag.returncode == 2 and "unrecognized arguments: --turbo" in one_error_line(flag)


def test_unreachable_docker_says_how_to_start_it() -> None:
    done = lab("status", DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert done.returncode == 2
    assert "cannot reach a Docker engine at unix:///nonexistent/docker.sock" in one_error_line(done)


def test_malformed_compose_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  threads:\n    image: [unclosed\n")
    done = lab("up", "threads", LAB_COMPOSE=str(bad))
    assert done.returncode == 2
    assert one_error_line(done).startswith(f"lab: error: {bad}:4:1: ")


def test_models_lists_every_model_with_its_description() -> None:
    from lab.plan import models

    done = lab("models")
    assert done.returncode == 0
    rows = set(re.findall(r"^│ (\S+) +│", done.stdout, re.M))  # the first cell of each table row
    assert set(models.all_models()) <= rows, f"missing: {set(models.all_models()) - rows}"
    assert "one OS thread per connection" in done.stdout


def test_no_permission_on_the_docker_socket_says_what_to_do(monkeypatch, capsys) -> None:
    """What the SDK raises when the socket refuses us (EACCES), mapped to one
    line and exit 2 (root cannot be refused a socket, so the error is staged)."""
    import docker

    from lab import cli

    def refuse(**_: object) -> None:
        raise docker.errors.DockerException(
            "Error while fetching server API version: ('Connection aborted.', "
            "PermissionError(13, 'Permission denied'))")

    monkeypatch.setattr(docker, "from_env", refuse)
    context.forget()
    assert cli.main(["status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no permission to use the Docker engine" in err[0]
    assert "usermod -aG docker" in err[0]
