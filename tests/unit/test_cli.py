"""The CLI's answers to bad input: one line, exit code 2, no Docker needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab.run import context
from lab.tour.steps import load_steps

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


def test_models_lists_every_model_on_a_line_of_its_own() -> None:
    from lab.plan import models

    done = lab("models")
    assert done.returncode == 0
    names = set(re.findall(r"^  (\S+)  +\S", done.stdout, re.M))  # a line per target: its name, its summary
    assert set(models.all_models()) <= names, f"missing: {set(models.all_models()) - names}"
    assert "one OS thread per connection" in done.stdout
    assert len(done.stdout.splitlines()) <= len(models.all_models()) + 5  # short: no descriptions
    assert "A blocked thread holds up nobody else" not in done.stdout


def test_models_name_prints_the_whole_text_and_the_promises() -> None:
    done = lab("models", "threads")
    assert done.returncode == 0
    assert "A blocked thread holds up nobody else" in done.stdout and "peak_served=all" in done.stdout
    assert "blocking" not in done.stdout.split("\n", 1)[0]
    bad = lab("models", "nosuchmodel")
    assert bad.returncode == 2 and "unknown model 'nosuchmodel'" in one_error_line(bad)


def test_logs_shows_a_start_record_in_short_and_whole_with_long() -> None:
    import json

    from lab.verbs.logs import render

    start = {"t": 10.0, "ev": "start", "model": "swarm", "pid": 1, "tid": 1, "target": "server:12345",
             "clients": 3, "pattern": "interval", "interval_ms": 50.0, "workers": 1, "max_connecting": 128,
             "timeline_max": 200000, "records_max": 20000, "hostname": "c0ffee", "python": "3.11.2"}
    line = json.dumps(start).encode()
    short, whole = render("swarm", line, [], False), render("swarm", line, [], False, long=True)
    assert "clients=3" in short and "target=server:12345" in short and "(5 more with --long)" in short
    assert "max_connecting" not in short and "hostname=c0ffee" in whole and "more with --long" not in whole
    assert len(short) < 160 < len(whole) + 40


def test_watch_and_up_watch_refuse_without_a_terminal_in_one_line() -> None:
    done = lab("watch")
    assert done.returncode == 2
    line = one_error_line(done)
    assert "needs a terminal" in line and "lab logs -f" in line
    up = lab("up", "threads", "--watch", DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert up.returncode == 2 and "needs a terminal" in one_error_line(up)  # refused before any engine is asked


STEPS = len(load_steps())  # lab/tour/steps.yaml (test_tour.py holds their order)


@pytest.mark.parametrize("args, says", [
    (["--step", str(STEPS + 1)], f"there is no step {STEPS + 1}: the tour has steps 1 to {STEPS}"),
    (["--step", "0"], "too small"),
    (["--step", "2", "--from", "3"], "not allowed with argument"),
    (["--lang", "fr"], "invalid choice: 'fr'"),
    (["--render", "no-such-run"], "no single tour run matches 'no-such-run'"),
])
def test_tour_refuses_bad_input_in_one_line(args: list[str], says: str) -> None:
    done = lab("tour", *args, DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert done.returncode == 2
    assert says in one_error_line(done)


def test_tour_lists_its_steps_in_either_language() -> None:
    en, zh = lab("tour", "--list"), lab("tour", "--list", "--lang", "zh")
    assert en.returncode == zh.returncode == 0
    assert len(en.stdout.splitlines()) == len(zh.stdout.splitlines()) == STEPS
    assert " 1. One thread, blocking calls" in en.stdout and " 8. 每个客户端一个线程" in zh.stdout


def test_every_verb_is_short() -> None:
    """A verb parses, calls the library and prints (DESIGN.md): 150 lines at most."""
    long = {f.name: n for f in (ROOT / "lab" / "verbs").glob("*.py")
            if (n := len(f.read_text().splitlines())) > 150}
    assert not long, long


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
