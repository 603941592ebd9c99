"""`lab watch` in a real pseudo-terminal, its screen read through a terminal emulator.

No host binary but Python: pexpect gives `python -m lab watch` a pty, and
pyte (a VT100 emulator) turns what it draws into the lines a person would
see.  Against the classic 3-client swarm, blocking shows "served at once: 1
of 3" and threads "3 of 3", each with its processes and threads lines; Ctrl-C
ends the view with exit 0 and leaves the topology exactly as it was.  `lab
up threads --watch` shows it straight away and leaves it up too; only `lab
watch --stop` takes it down.
"""

from __future__ import annotations

import os
import sys
import time

import pexpect
import pyte
import pytest

from tests.live.judged import ROOT, lab, run_of

ROWS, COLS = 40, 140


def states(engine, run: str) -> list[tuple[str, str]]:
    res = engine.runs(run).get(run)
    assert res is not None, f"run {run} is gone"
    return sorted((u.name, u.state().status) for u in res.units)


class Terminal:
    """`lab watch` on a pty, its screen as a terminal would show it."""

    def __init__(self, *args: str, verb: str = "watch") -> None:
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(sys.executable, ["-m", "lab", verb, *args], cwd=str(ROOT),
                                   env={**os.environ, "TERM": "xterm-256color"}, dimensions=(ROWS, COLS))

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def read(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.2))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return

    def wait_for(self, *wanted: str, within: float = 30.0) -> str:
        """Bounded: until every one of ``wanted`` is on the screen at once."""
        end = time.monotonic() + within
        while time.monotonic() < end:
            self.read(0.5)
            if all(w in self.text() for w in wanted):
                return self.text()
            if not self.child.isalive():
                break
        raise AssertionError(f"not on the screen within {within:g}s: {wanted}; the screen:\n{self.text()}")

    def interrupt(self) -> int | None:
        self.child.sendintr()  # Ctrl-C, as the terminal's line discipline sends it
        self.child.expect(pexpect.EOF, timeout=20)
        self.child.close()
        return self.child.exitstatus


@pytest.mark.parametrize("model, served", [("blocking", "1 of 3"), ("threads", "3 of 3")])
def test_watch_shows_who_is_served_and_leaves_the_topology_up(engine, app_image, model: str, served: str) -> None:
    up = lab("up", model, "--duration", "90")
    run = run_of(up)
    last = up.stdout.strip().splitlines()[-3:]  # a first run ends saying what to do next
    assert ["lab watch" in last[0], "lab logs" in last[1], "lab tour" in last[2]] == [True] * 3, up.stdout
    term = None
    try:
        before = states(engine, run)
        assert [s for _, s in before] == ["running", "running"], before
        term = Terminal("--run", run)
        screen = term.wait_for(f"served at once: {served}", "processes: 1", "threads: ", "CPU: ")
        lines = screen.splitlines()
        threads = next(line for line in lines if line.startswith("threads: "))
        assert "ps huH p PID | wc -l" in threads
        if model == "blocking":
            assert sum("waiting" in line for line in lines if line.startswith("client ")) == 2, screen
            assert threads.startswith("threads: 1 "), screen
        else:  # a thread per client, and the main one
            assert threads.startswith("threads: 4 "), screen
        assert term.interrupt() == 0
        term = None
        assert states(engine, run) == before, "Ctrl-C in lab watch changed the topology"
    finally:
        if term is not None and term.child.isalive():
            term.child.terminate(force=True)
        lab("down", run)


def test_up_watch_shows_it_at_once_and_watch_stop_takes_it_down(engine, app_image) -> None:
    """`lab up threads --watch`: up, then the view; Ctrl-C leaves the run up.
    `lab watch --stop` is the one way the view removes what it shows."""
    def ups() -> set[str]:
        return {r for r in engine.runs() if "-up-threads-" in r}

    before = ups()
    term = Terminal("threads", "--duration", "60", "--watch", verb="up")
    started: set[str] = set()
    try:
        term.wait_for("served at once: 3 of 3", "threads: 4 ", within=90)
        assert term.interrupt() == 0
        started = ups() - before
        assert len(started) == 1, started
        (run,) = started
        assert [s for _, s in states(engine, run)] == ["running", "running"]
        stopper = Terminal("--run", run, "--stop")
        stopper.wait_for("served at once: 3 of 3")
        assert stopper.interrupt() == 0
        assert run not in engine.runs(), "lab watch --stop left the run up"
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
        for run in (started or ups() - before):
            lab("down", run)
