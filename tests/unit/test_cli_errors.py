"""Errors a user can meet, and how the lab answers them (no Docker needed):
one line and exit 2 for bad input, one line and exit 70 for the lab's own
bugs, cleanup that a second signal cannot interrupt, a run.json that always
says how the run ended, and a lab that finds its folder or says where it looked."""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from lab import cli
from lab.errors import EXIT_INTERNAL, EnvironmentProblem
from lab.measure.events import EventStream
from lab.run import live

ROOT = Path(__file__).resolve().parents[2]


def lab(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# -- flags ----------------------------------------------------------------------

def numeric_flags() -> list[tuple[str, str]]:
    """Every (verb, flag) whose value is a number, found in the parser itself."""
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for verb, parser in sub.choices.items():
        for action in parser._actions:
            if action.option_strings and action.type is not None and action.type is not str \
                    and getattr(action.type, "__name__", "") == "parse":
                found.append((verb, action.option_strings[-1]))
    return found


def test_there_are_numeric_flags_to_check() -> None:
    flags = numeric_flags()
    assert ("up", "--clients") in flags and ("logs", "--tail") in flags, flags


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
@pytest.mark.parametrize("verb, flag", numeric_flags())
def test_nan_and_inf_are_refused_in_every_numeric_flag(verb: str, flag: str, value: str) -> None:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[verb]._actions if flag in a.option_strings)
    with pytest.raises(argparse.ArgumentTypeError, match="not a"):
        action.type(value)


def test_a_negative_tail_is_refused() -> None:
    done = lab("logs", "--tail", "-1")
    assert done.returncode == 2
    assert "--tail: -1 is too small" in one_line(done.stderr)


@pytest.mark.parametrize("argv", [["up", "threads", "--pattern", "rate"], ["up", "threads", "--rate", "100"]])
def test_the_rate_pattern_and_its_rate_come_together(argv: list[str]) -> None:
    done = lab(*argv)  # refused before anything starts (no engine needed)
    assert done.returncode == 2 and "--pattern rate needs --rate R" in one_line(done.stderr)


@pytest.mark.parametrize("argv, verb", [(["up", "threads", "--turbo"], "up"),
                                        (["down", "--everything"], "down"),
                                        (["check", "threads", "--fast"], "check")])
def test_an_unknown_flag_after_a_verb_points_to_that_verbs_help(argv: list[str], verb: str) -> None:
    done = lab(*argv)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "unrecognized arguments: " + argv[-1] in line and f"(see `lab {verb} --help`)" in line


# -- internal errors --------------------------------------------------------------

def test_an_internal_error_exits_70_with_one_line_and_keeps_the_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    from lab.verbs import models

    def broken(_args: Any) -> int:
        raise ZeroDivisionError("a bug in the lab")

    monkeypatch.setattr(models, "run", broken)
    assert cli.main(["models"]) == EXIT_INTERNAL
    line = one_line(capsys.readouterr().err)
    assert line.startswith("lab: error: internal error: ZeroDivisionError: a bug in the lab (traceback in ")
    saved = Path(line.split("traceback in ", 1)[1].split(";", 1)[0])
    assert saved.parent == tmp_path / "errors" and "ZeroDivisionError" in saved.read_text()
    assert cli.main(["models", "--debug"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise ZeroDivisionError("a bug in the lab")' in err


def test_an_internal_error_in_a_run_keeps_its_traceback_in_that_run(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    run = fake_run(tmp_path, FakeEngine())
    from lab.verbs import models

    def broken(_args: Any) -> int:
        with run:
            raise KeyError("lost")

    monkeypatch.setattr(models, "run", broken)
    assert cli.main(["models"]) == EXIT_INTERNAL
    capsys.readouterr()
    assert "KeyError" in (run.dir.path / "traceback.txt").read_text()
    assert json.loads((run.dir.path / "run.json").read_text())["status"] == "failed"


# -- cleanup ---------------------------------------------------------------------------

class FakeEngine:
    """Just enough of lab.engine.Engine for a LiveRun that made nothing."""

    lab = "iolabfake"
    kind = "fake"

    def __init__(self, on_stop: Any = None, remove_fails: bool = False) -> None:
        self.on_stop, self.remove_fails, self.removed = on_stop, remove_fails, 0

    def runs(self, run: str | None = None, every_lab: bool = False) -> dict[str, Any]:
        return {}

    def notes(self) -> list[str]:
        return []

    def stop(self, containers: list[Any], grace: Any) -> None:
        if self.on_stop:
            self.on_stop()

    def remove(self, res: Any) -> list[str]:
        self.removed += 1
        if self.remove_fails:
            raise EnvironmentProblem("could not remove container x: the engine said no")
        return []


def fake_run(tmp_path: Path, engine: FakeEngine) -> live.LiveRun:
    from lab.plan import compose
    topology = compose.Topology(tmp_path / "compose.yaml", {}, {}, {})
    return live.LiveRun(engine, "test", "cleanup", say=lambda _: None, topology=topology)  # type: ignore[arg-type]


def status_of(run: live.LiveRun) -> dict[str, Any]:
    return json.loads((run.dir.path / "run.json").read_text())


def test_a_second_sigterm_during_cleanup_does_not_interrupt_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    engine = FakeEngine(on_stop=lambda: os.kill(os.getpid(), signal.SIGTERM))
    previous = signal.signal(signal.SIGTERM, cli._terminate)  # SIGTERM raises, as in `lab`
    try:
        with pytest.raises(KeyboardInterrupt):
            with fake_run(tmp_path, engine) as run:
                raise KeyboardInterrupt  # the first signal
        assert engine.removed == 1  # the second one (sent during stop) changed nothing
        assert status_of(run)["status"] == "interrupted"
        assert signal.getsignal(signal.SIGTERM) is cli._terminate  # restored afterwards
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_run_json_never_stays_running_when_removal_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    run = fake_run(tmp_path, FakeEngine(remove_fails=True))
    assert status_of(run)["status"] == "running"
    with pytest.raises(EnvironmentProblem, match="could not remove"):
        with run:
            pass
    meta = status_of(run)
    assert meta["status"] == "failed" and "lab down --all" in meta["cleanup"]


# -- the log reader -------------------------------------------------------------------

class BrokenStream:
    def __iter__(self) -> Any:
        yield b'{"t": 1.0, "ev": "start", "model": "fake", "pid": 7, "tid": 7, "wall": 1.7e9}\n'
        raise ConnectionError("the engine hung up")

    def close(self) -> None:
        pass


class FakeContainer:
    name = "fake"

    def logs(self, **_: Any) -> BrokenStream:
        return BrokenStream()


def test_an_error_in_the_log_reader_is_reported_not_swallowed() -> None:
    events = EventStream(FakeContainer())  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="reading fake's log stopped: ConnectionError: the engine hung up"):
        events.wait_for(lambda e: e["ev"] == "accept", timeout=10)
    assert [e["ev"] for e in events.events] == ["start"]


# -- packaging -------------------------------------------------------------------------

def installed_copy(tmp_path: Path) -> Path:
    """The `lab` package alone in a site-packages folder, as `pip install .` leaves it."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "lab", site / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def run_installed(site: Path, cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys; sys.path.insert(0, {str(site)!r}); from lab.cli import main; sys.exit(main({list(argv)!r}))"
    clean = {k: v for k, v in os.environ.items() if k != "LAB_HOME"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**clean, **env})


def test_an_installed_lab_outside_a_clone_says_where_it_looked(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_installed(site, elsewhere, "models")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "cannot find the lab's services/ folder" in line and str(elsewhere) in line and "LAB_HOME" in line


def test_an_installed_lab_works_inside_a_clone_or_with_lab_home(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    inside = run_installed(site, ROOT / "services", "models", "--json")
    assert inside.returncode == 0, inside.stderr
    assert "threads" in json.loads(inside.stdout)
    home = run_installed(site, tmp_path, "models", "--json", LAB_HOME=str(ROOT))
    assert home.returncode == 0, home.stderr
    assert json.loads(home.stdout).keys() == json.loads(inside.stdout).keys()


def python_floor() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = spec.removeprefix(">=").split(".")[:2]
    return int(major), int(minor)


def test_the_code_parses_as_the_oldest_python_claimed() -> None:
    """requires-python names the oldest Python the code runs on; no file may
    use syntax that came later (f-strings reusing their quotes, `type` aliases...)."""
    floor = python_floor()
    for path in [*ROOT.glob("lab/**/*.py"), *ROOT.glob("services/**/*.py"), *ROOT.glob("tests/**/*.py")]:
        ast.parse(path.read_text(), str(path), feature_version=floor)


def test_ci_runs_the_unit_layer_on_the_oldest_python_claimed() -> None:
    """CI (.ci/run) runs this very suite: on the oldest version requires-python
    claims, so that version is the one proven.  Elsewhere any newer one will do."""
    floor = python_floor()
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        assert sys.version_info[:2] == floor, f"CI runs Python {sys.version.split()[0]}, the floor is {floor}"
    assert sys.version_info[:2] >= floor


# -- the terminal, the pipe and the environment --------------------------------------------

@pytest.mark.parametrize("columns", ["abc", "0", "-5", "3", "99999999999"])
def test_a_garbage_columns_falls_back_to_a_sane_width(columns: str) -> None:
    from lab import console

    class Pipe:  # not a terminal
        def isatty(self) -> bool:
            return False

    assert console.width(Pipe(), {"COLUMNS": columns}) == console.PIPE_WIDTH
    assert console.width(Pipe(), {"COLUMNS": "120"}) == 120
    assert console.width(Pipe(), {}, default=80) == 80


def test_every_verb_prints_whatever_columns_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """COLUMNS=abc was a traceback at import; COLUMNS=0 an empty page (rich
    reads COLUMNS itself unless it is given a width)."""
    done = lab("models", COLUMNS="abc")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "threads" in done.stdout and len(done.stdout) > 1000
    from rich.console import Console
    from lab import console
    monkeypatch.setenv("COLUMNS", "0")
    page = Console(file=io.StringIO(), width=console.width(io.StringIO()))
    page.print("a table")
    assert page.file.getvalue() == "a table\n"  # type: ignore[attr-defined]


def test_a_closed_pipe_ends_quietly_with_the_verbs_own_code() -> None:
    """`lab models | head -1`: the reader leaves before the lab writes."""
    p = subprocess.Popen([sys.executable, "-m", "lab", "models"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0 and err == "", err


def test_a_closed_pipe_keeps_an_error_exit(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.errors import ExpectationFailed
    from lab.verbs import models

    class Closed:
        def write(self, text: str) -> int:
            raise BrokenPipeError

        def flush(self) -> None:
            raise BrokenPipeError

    def prints_then_fails(_args: Any) -> int:
        print("a table")
        raise ExpectationFailed("1 expectation(s) did not hold")

    monkeypatch.setattr(models, "run", prints_then_fails)
    monkeypatch.setattr(sys, "stdout", Closed())
    assert cli.main(["models"]) == 1
    assert "did not hold" in capsys.readouterr().err


def test_an_invalid_lab_home_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "nowhere"))
    assert cli.main(["models"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"LAB_HOME={tmp_path / 'nowhere'} is not the lab's folder" in line


@pytest.mark.parametrize("argv, says", [
    (["compare", "--models", ""], "--models '' names no model"),
    (["compare", "--models", " , "], "--models ' , ' names no model"),
    (["compare", "--scenario", ""], "--scenario '' names no workload"),
    (["check", "epoll", "--scenario", ""], "the scenario named is empty"),
    (["run", "", "--model", "epoll"], "the scenario named is empty"),
])
def test_an_empty_name_is_refused_never_the_whole_default_set(argv: list[str], says: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # nothing could run if not refused
    assert cli.main(argv) == 2
    assert says in one_line(capsys.readouterr().err)
