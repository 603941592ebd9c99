"""Trace lines are exact: none lost, none written twice, none torn.

The judges count event lines, so a line lost to a race, doubled by a signal
or cut by another process's write would change a verdict.  Each test runs
trace_storm.py in a process of its own (it forks, installs signal handlers
and starts 200 threads) and counts what reached the pipe against what the
script says it recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .model_process import SERVICES

STORM = Path(__file__).with_name("trace_storm.py")
NASTY = b'quote " backslash \\ nul \x00 bell \x07 cr \r tab \t bad utf-8 \xff\xfe \xe2\x82 end\n'


def storm(mode: str, n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run one storm; return every event (each line must parse) and the summary."""
    proc = subprocess.run([sys.executable, str(STORM), mode, str(n)], capture_output=True,
                          timeout=180, env={"PYTHONPATH": str(SERVICES), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    events = []
    for number, line in enumerate(proc.stdout.splitlines(), 1):
        try:
            events.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"line {number} is not one JSON object (torn?): {line[:200]!r}...") from None
    return events, json.loads(proc.stderr.splitlines()[-1])


def exactly_once(seen: Counter, expected: set, what: str) -> None:
    """Every expected key seen once, nothing else: fail naming a few of each fault."""
    missing = sorted(expected - set(seen), key=str)
    doubled = sorted((k for k, c in seen.items() if c > 1), key=str)
    extra = sorted(set(seen) - expected, key=str)
    assert not (missing or doubled or extra), (
        f"{what}: {len(missing)} lost {missing[:5]}, {len(doubled)} written twice {doubled[:5]}, "
        f"{len(extra)} unexpected {extra[:5]}")


def test_200_threads_and_a_sigchld_storm_lose_and_double_nothing() -> None:
    events, summary = storm("threads", 200)
    threads, per_thread = summary["threads"], summary["per_thread"]
    assert len(summary["children"]) >= 50 and summary["handled"] >= 1, summary  # the storm happened
    by_thread = Counter((e["conn"], e["seq"]) for e in events if e["ev"] in ("tick", "recv"))
    exactly_once(by_thread, {(f"t{i}", s) for i in range(threads) for s in range(per_thread)},
                 "thread events")
    exactly_once(Counter(e["seq"] for e in events if e["ev"] == "main"), set(range(summary["main"])),
                 "main-thread events")
    exactly_once(Counter(e["seq"] for e in events if e["ev"] == "sigchld"), set(range(summary["handled"])),
                 "events logged by the signal handler")
    exactly_once(Counter(e["child"] for e in events if e["ev"] == "child-exit"), set(summary["children"]),
                 "child-exit events")
    # Each thread writes its own tid (200 alive at once: 200 tids), all the one pid.
    tids = {e["conn"]: set() for e in events if e["ev"] == "tick"}
    for e in events:
        if e["ev"] == "tick":
            tids[e["conn"]].add(e["tid"])
    assert all(len(t) == 1 for t in tids.values()) and len(set.union(*tids.values())) == threads
    assert len({e["pid"] for e in events}) == 1
    recv = next(e for e in events if e["ev"] == "recv")
    assert recv["data"] == NASTY.decode("utf-8", "replace") and recv["bytes"] == len(NASTY)


def test_processes_sharing_the_pipe_never_tear_a_line() -> None:
    """Eight forked processes write lines just under PIPE_BUF at once through
    traces their parent made and used: every line arrives whole, once, with
    the pid of the process that wrote it; the parent's buffer only once."""
    events, summary = storm("processes", 200)
    longs = [e for e in events if e["ev"] == "long"]
    assert min(len(json.dumps(e, separators=(",", ":"))) for e in longs) > 3850  # near PIPE_BUF
    exactly_once(Counter((e["conn"], e["seq"]) for e in longs),
                 {(f"p{i}", s) for i in range(summary["processes"]) for s in range(summary["per_process"])},
                 "lines of the processes")
    for i, pid in enumerate(summary["pids"]):
        writers = {(e["pid"], e["tid"]) for e in longs if e["conn"] == f"p{i}"}
        assert writers == {(pid, pid)}, f"p{i} (pid {pid}) wrote as {writers}"
    parent = {e["pid"] for e in events if e["ev"] in ("parent", "pending")}
    assert [e["ev"] for e in events if e["ev"] in ("parent", "pending")] == ["parent", "pending"]
    assert parent.isdisjoint(summary["pids"])


def test_a_signal_that_raises_during_flush_loses_and_doubles_nothing() -> None:
    """A buffered trace (an event loop's) flushed while SIGUSR1 keeps raising
    in its thread, as SIGTERM raises Shutdown: an exception that lands inside
    flush() waits for it to end, so no line is written twice or dropped."""
    events, summary = storm("interrupts", 20_000)
    seen = Counter(e["seq"] for e in events if e["ev"] == "tick")
    doubled = [s for s, c in seen.items() if c > 1]
    assert not doubled, f"{len(doubled)} events written twice: {doubled[:5]}"
    lost = sorted(set(summary["returned"]) - set(seen))
    assert not lost, f"{len(lost)} recorded events never written: {lost[:5]}"
    assert set(seen) <= set(range(summary["events"]))
    assert summary["deferred"] > 0, summary["interrupted"]  # signals did land inside flush()
