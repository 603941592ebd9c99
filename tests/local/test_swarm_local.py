"""The swarm as a subprocess against local models (no Docker).

Each test starts a model with ModelProcess and runs services/swarm/swarm.py
as the container would (PYTHONPATH=services), then reads results.json and
the swarm's stdout events.  Synchronisation is by events (the server's
accept, the swarm's connect and reply), with bounded waits that fail with
the trace so far; every swarm runs in its own process group, killed in a
finally, so no worker is ever left behind.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest

from ioschema import ERROR_KINDS as SHARED_ERROR_KINDS
from ioschema.schemas import SWARM_RESULTS

from .model_process import SERVICES, ModelProcess

SWARM = SERVICES / "swarm" / "swarm.py"
ERROR_KINDS = set(SHARED_ERROR_KINDS)
RESULTS = jsonschema.Draft202012Validator(SWARM_RESULTS)


class Swarm:
    """One swarm run: stdout events collected as they come, results read at the end."""

    def __init__(self, out: Path, *args: str, preexec: Callable[[], None] | None = None) -> None:
        self.out = out
        env = dict(os.environ, PYTHONPATH=str(SERVICES), PYTHONUNBUFFERED="1")
        env.pop("LAB_TRACE", None)
        self.args = [str(a) for a in args]
        self.began = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(SWARM), "--out", str(out), *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
            preexec_fn=preexec,
        )
        self.events: list[dict[str, Any]] = []
        self.stderr = b""
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._read_events, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)  # every stdout line must be one JSON event
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for e in self.events if match(e)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self._readers[0].is_alive():
                    raise AssertionError(f"swarm: fewer than {count} matching events within {timeout}s; "
                                         f"tail: {self.events[-6:]}; stderr: {self.stderr[-800:]!r}")
                self._cond.wait(min(left, 0.5))

    def finish(self, timeout: float = 20) -> tuple[int, dict[str, Any] | None]:
        """Wait for the swarm to exit; returns (exit code, results or None)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"swarm {self.args} still running after {timeout}s; "
                                 f"tail: {self.events[-6:]}") from None
        finally:
            self.kill()
        for t in self._readers:
            t.join(5)
        self.elapsed = time.monotonic() - self.began
        path = self.out / "results.json"
        return code, json.loads(path.read_text()) if path.exists() else None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the parent and every worker
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def run(tmp_path: Path):
    """Start swarms; each one is killed (with its workers) at the end of the test."""
    started: list[Swarm] = []

    def start(*args: Any, preexec: Callable[[], None] | None = None) -> Swarm:
        swarm = Swarm(tmp_path / f"out{len(started)}", *map(str, args), preexec=preexec)
        started.append(swarm)
        return swarm

    try:
        yield start
    finally:
        for swarm in started:
            swarm.kill()


def model(name: str) -> Callable[..., Any]:
    @pytest.fixture
    def fixture():
        proc = ModelProcess(name, "--backlog", "256")
        try:
            yield proc
        finally:
            proc.stop(signal.SIGKILL)
    return fixture


threads = model("threads")
blocking = model("blocking")


def target(server: ModelProcess) -> str:
    return f"127.0.0.1:{server.port}"


def complete(run: Callable[..., Swarm], *args: Any, code: int = 0, timeout: float = 20) -> dict[str, Any]:
    swarm = run(*args)
    got, doc = swarm.finish(timeout)
    assert got == code, f"exit {got}, wanted {code}; stderr: {swarm.stderr[-1500:]!r}"
    assert doc is not None, f"no results.json; stderr: {swarm.stderr[-800:]!r}"
    check_shape(doc)
    return doc


def check_shape(doc: dict[str, Any]) -> None:
    """What every results.json has, whatever the pattern: its schema
    (ioschema.schemas), and how its figures relate."""
    assert doc["schema"] == "iolab.swarm/1"
    broken = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in RESULTS.iter_errors(doc)]
    assert not broken, broken[:5]
    for key in ("ok", "failures", "warnings", "config", "environment", "limits", "started", "ended",
                "duration_s", "warmup_s", "measure_window_s", "summary", "cpu", "workers",
                "histograms", "connections", "connections_capped", "timeline", "actions", "exit_code"):
        assert key in doc, key
    s = doc["summary"]
    assert set(s["errors"]) >= ERROR_KINDS
    for hist in (s["latency"], s["connect"], s["handshake"]):
        assert list(hist) == ["count", "min_us", "mean_us", "p50_us", "p90_us", "p99_us", "p99_9_us", "max_us"]
        if hist["count"]:
            assert hist["min_us"] <= hist["p50_us"] <= hist["p90_us"] <= hist["p99_us"] <= hist["max_us"]
    assert doc["started"]["wall"] > 1e9 and doc["ended"]["monotonic"] >= doc["started"]["monotonic"]
    assert doc["cpu"]["total_s"] >= doc["cpu"]["workers_s"] >= 0
    assert doc["environment"]["cpu_count"] >= 1 and doc["limits"]["nofile_soft"] >= 1
    for rec in doc["connections"]:
        assert {"client", "role", "conn", "connect_start", "connect_end", "first_reply", "replies",
                "bytes_sent", "bytes_received", "errors", "close"} <= set(rec)
        assert set(rec["errors"]) <= ERROR_KINDS
    for conn in doc["timeline"]["conns"]:
        for sent, got in conn["pairs"]:
            assert got is None or got >= sent


# -- patterns -------------------------------------------------------------------

def test_interval_every_client_served_by_threads(run, threads: ModelProcess) -> None:
    swarm = run("--target", target(threads), "--clients", 3, "--duration", 0.6, "--trace", "msg")
    code, doc = swarm.finish()
    assert code == 0 and doc is not None, swarm.stderr
    check_shape(doc)
    s = doc["summary"]
    assert s["connections"]["connected"] == 3 and s["end_reason"] == "duration"
    assert [r["client"] for r in doc["connections"]] == [1, 2, 3]
    for rec in doc["connections"]:
        assert rec["replies"] >= 5, rec  # 12 sends at 50 ms in 0.6 s
        assert rec["bytes_received"] == rec["replies"] * len(f"client {rec['client']}\n")
    # the swarm's local address is the server's peer: the lab joins on it
    accepted = {e["conn"] for e in threads.events if e["ev"] == "accept"}
    assert {r["conn"] for r in doc["connections"]} <= accepted
    assert len(doc["timeline"]["conns"]) == 3
    assert s["latency"]["count"] == s["replies"] > 0
    # msg level: one event per reply, with what it said and how long it took
    replies = [e for e in swarm.events if e["ev"] == "reply"]
    assert len(replies) == s["replies"]
    assert all(e["data"] == f"client {e['client']}" and e["latency_us"] >= 0 for e in replies)
    assert [e["ev"] for e in swarm.events][0] == "start" and swarm.events[0]["wall"] > 1e9


def test_interval_blocking_serves_only_one_client(run, blocking: ModelProcess) -> None:
    doc = complete(run, "--target", target(blocking), "--clients", 3, "--duration", 0.6, "--trace", "conn")
    served = [r for r in doc["connections"] if r["replies"]]
    waiting = [r for r in doc["connections"] if not r["replies"]]
    assert len(served) == 1 and len(waiting) == 2, json.dumps(doc["connections"], indent=0) + json.dumps(blocking.events)
    for r in waiting:
        assert r["connect_end"] is not None and r["sent"] > 0 and r["unanswered"] == r["sent"]
    # the waiting clients' requests show in the timeline as [sent, null]
    pairs = {c["client"]: c["pairs"] for c in doc["timeline"]["conns"]}
    assert all(got is None for r in waiting for _, got in pairs[r["client"]])


def test_pingpong_count_ends_the_run(run, threads: ModelProcess) -> None:
    doc = complete(run, "--target", target(threads), "--clients", 4, "--pattern", "pingpong",
                   "--pipeline", 4, "--size", 64, "--count", 300, "--duration", 30, "--trace", "off")
    s = doc["summary"]
    assert s["end_reason"] == "count" and doc["duration_s"] < 15
    assert [r["replies"] for r in doc["connections"]] == [300] * 4
    assert all(r["bytes_sent"] == 300 * 64 and r["close"] == "count" for r in doc["connections"])
    assert s["replies_per_s"] > 0 and s["latency"]["count"] == 1200 and s["unanswered"] == 0


def test_active_clients_run_the_pattern_and_the_rest_hold(run, threads: ModelProcess) -> None:
    # two workers, one active client: worker 2 only holds and must be told the run is over
    doc = complete(run, "--target", target(threads), "--clients", 6, "--active", 1, "--workers", 2,
                   "--pattern", "pingpong", "--count", 50, "--duration", 30, "--trace", "conn")
    assert doc["summary"]["end_reason"] == "count" and doc["duration_s"] < 15
    roles = {r["client"]: (r["role"], r["sent"], r["replies"]) for r in doc["connections"]}
    assert roles[1] == ("pingpong", 50, 50)
    assert all(roles[c] == ("hold", 0, 0) for c in range(2, 7))
    assert doc["summary"]["hold"] == 5


def test_rate_is_held_and_measured_from_intended_times(run, threads: ModelProcess) -> None:
    doc = complete(run, "--target", target(threads), "--clients", 4, "--pattern", "rate", "--rate", 400,
                   "--duration", 1.2, "--warmup", 0.2, "--trace", "off")
    rate = doc["summary"]["rate"]
    assert rate["intended_per_s"] == 400
    assert 340 <= rate["achieved_per_s"] <= 440, rate
    s = doc["summary"]
    assert s["latency"]["count"] == s["replies_measured"] >= 300
    assert s["replies_measured"] < s["replies"]  # the warm-up's replies are left out


def test_rate_counts_a_stalled_server_in_the_percentiles(run, threads: ModelProcess) -> None:
    """A BLOCK holds client 1's connection for 300 ms; the requests intended
    meanwhile are answered late, and their latency says so (no coordinated
    omission)."""
    doc = complete(run, "--target", target(threads), "--clients", 1, "--pattern", "rate", "--rate", 100,
                   "--duration", 1.0, "--at", "0.2:1:BLOCK 300", "--trace", "off")
    lat = doc["summary"]["latency"]
    assert lat["max_us"] >= 250_000 and lat["p90_us"] >= 100_000, lat
    (action,) = doc["actions"]
    assert action["outcome"] == "reply" and action["reply"] == "BLOCKED 300"


def test_hold_connects_and_says_nothing(run, threads: ModelProcess) -> None:
    doc = complete(run, "--target", target(threads), "--clients", 20, "--pattern", "hold",
                   "--duration", 1.0, "--ramp", 200, "--trace", "conn")
    s = doc["summary"]
    assert s["connections"]["connected"] == 20 and s["requests_sent"] == 0 and s["replies"] == 0
    assert 0.09 <= s["connections"]["connect_all_s"] < 0.9  # the ramp spread 20 connects over 0.1 s
    assert s["connect"]["count"] == 20


def test_storm_churns_connections(run, threads: ModelProcess) -> None:
    doc = complete(run, "--target", target(threads), "--clients", 4, "--pattern", "storm", "--count", 5,
                   "--duration", 30, "--trace", "conn")
    s = doc["summary"]
    assert s["end_reason"] == "count"
    assert s["connections"]["attempted"] == 20 == s["connections"]["connected"] == s["replies"]
    assert s["connections"]["closed_by"] == {"done": 20}
    assert len({r["conn"] for r in doc["connections"]}) == 20
    assert s["storm"]["connections_per_s"] > 0


def test_a_server_that_never_answers(run) -> None:
    """Connected (the kernel completes handshakes into the backlog) but never
    accepted or read: every request stays unanswered, and the run still
    ends on time with its results."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        doc = complete(run, "--target", f"127.0.0.1:{port}", "--clients", 2, "--interval", 20,
                       "--duration", 0.5, "--trace", "conn")
    s = doc["summary"]
    assert s["connections"]["connected"] == 2 and s["replies"] == 0
    assert s["unanswered"] == s["requests_sent"] >= 40
    assert s["latency"]["count"] == 0
    for conn in doc["timeline"]["conns"]:
        assert conn["pairs"] and all(got is None for _, got in conn["pairs"])


MODELS = sorted(p.parent.name for p in SERVICES.glob("*/model.yaml") if (p.parent / "server.py").exists())


@pytest.mark.parametrize("name", MODELS)
def test_every_model_answers_every_request(run, name: str) -> None:
    """Closed loop with a count against each model found: every client gets
    all its replies, whether the model serves them together or in turn (a
    one-at-a-time model serves the next client when the previous one leaves)."""
    server = ModelProcess(name, "--backlog", "256")
    try:
        doc = complete(run, "--target", target(server), "--clients", 3, "--pattern", "pingpong",
                       "--pipeline", 2, "--count", 40, "--duration", 20, "--trace", "off")
    finally:
        server.stop(signal.SIGKILL)
    assert doc["summary"]["end_reason"] == "count"
    assert [r["replies"] for r in doc["connections"]] == [40, 40, 40]


# -- scripted actions -----------------------------------------------------------

def test_scripted_raise_and_stats_are_recorded(run, threads: ModelProcess) -> None:
    plan = json.dumps([{"t": 0.2, "client": 2, "send": "STATS"}])
    doc = complete(run, "--target", target(threads), "--clients", 3, "--duration", 0.8,
                   "--at", "0.3:1:RAISE", "--plan", plan, "--trace", "conn")
    actions = {a["send"]: a for a in doc["actions"]}
    assert actions["RAISE"]["outcome"] in ("eof", "reset") and actions["RAISE"]["latency_ms"] >= 0
    stats = json.loads(actions["STATS"]["reply"])
    assert actions["STATS"]["outcome"] == "reply" and stats["model"] == "threads"
    closes = {r["client"]: r["close"] for r in doc["connections"]}
    assert closes[1] in ("eof", "reset") and closes[2] == closes[3] == "duration"


def test_scripted_crash_ends_every_connection(run, threads: ModelProcess) -> None:
    doc = complete(run, "--target", target(threads), "--clients", 3, "--duration", 10,
                   "--at", "0.2:1:CRASH", "--trace", "conn")
    (crash,) = doc["actions"]
    assert crash["outcome"] in ("eof", "reset") and crash["conn"] == doc["connections"][0]["conn"]
    assert doc["summary"]["end_reason"] == "all-closed" and doc["duration_s"] < 5
    assert all(r["close"] in ("eof", "reset") and sum(r["errors"].values()) == 1 for r in doc["connections"])
    assert threads.proc.wait(5) == -signal.SIGSEGV


# -- failures -------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed: connects are refused


def test_refused_target_fails_in_bounded_time(run) -> None:
    swarm = run("--target", f"127.0.0.1:{closed_port()}", "--clients", 2, "--duration", 30,
                "--connect-timeout", 0.6, "--trace", "conn")
    code, doc = swarm.finish(10)
    assert code == 1, swarm.stderr
    assert swarm.elapsed < 5
    assert b"refused" in swarm.stderr and b"failed" in swarm.stderr
    assert doc is not None and doc["ok"] is False and doc["failures"]
    s = doc["summary"]
    assert s["connections"]["failed"] == 2 and s["errors"]["refused"] >= 2
    assert all(r["close"] == "connect-failed" and r["attempts"] > 1 for r in doc["connections"])


@pytest.mark.parametrize("flags", [
    ["--clients", "0"],
    ["--pattern", "nope"],
    ["--at", "soon:1:CRASH"],
    ["--at", "1:9:CRASH"],
    ["--plan", "[{\"t\": 1}]"],
    ["--pattern", "rate"],
    ["--target", "nohost"],
    ["--clients", "3", "--active", "5"],
    ["--size", "4"],
    ["--message", "client {j}"],
    ["--warmup", "5", "--duration", "2"],
])
def test_bad_flags_exit_2_with_one_clear_line(run, flags: list[str]) -> None:
    swarm = run("--target", "127.0.0.1:9", *flags) if "--target" not in flags else run(*flags)
    code, doc = swarm.finish(10)
    assert code == 2 and doc is None
    last = swarm.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("swarm: error: "), swarm.stderr


def test_more_clients_than_descriptors_is_refused_before_starting(run) -> None:
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    swarm = run("--target", "127.0.0.1:9", "--clients", 1000, "--workers", 1, "--pattern", "hold",
                preexec=low_limit)
    code, doc = swarm.finish(10)
    assert code == 2 and doc is None
    assert b"RLIMIT_NOFILE is 256" in swarm.stderr


def test_server_killed_mid_run_still_yields_results(run, threads: ModelProcess) -> None:
    swarm = run("--target", target(threads), "--clients", 5, "--pattern", "interval", "--interval", 10,
                "--duration", 30, "--trace", "msg")
    threads.wait_for(lambda e: e["ev"] == "accept", count=5)
    swarm.wait_for(lambda e: e["ev"] == "reply", count=10)
    threads.stop(signal.SIGKILL)
    code, doc = swarm.finish(15)
    assert code == 0 and doc is not None, swarm.stderr
    check_shape(doc)
    assert doc["summary"]["end_reason"] == "all-closed" and doc["duration_s"] < 15
    for rec in doc["connections"]:
        assert rec["replies"] > 0 and rec["close"] in ("eof", "reset"), rec
        assert sum(rec["errors"].values()) == 1
    errors = [e for e in swarm.events if e["ev"] == "error"]
    assert {e["client"] for e in errors} == {1, 2, 3, 4, 5}


def test_sigterm_stops_early_and_writes_results(run, threads: ModelProcess) -> None:
    swarm = run("--target", target(threads), "--clients", 4, "--pattern", "pingpong", "--duration", 30,
                "--trace", "conn")
    swarm.wait_for(lambda e: e["ev"] == "connect", count=4)
    swarm.proc.send_signal(signal.SIGTERM)
    code, doc = swarm.finish(10)
    assert code == 0 and doc is not None, swarm.stderr
    check_shape(doc)
    assert doc["summary"]["end_reason"] == "signal" and doc["duration_s"] < 10
    assert all(r["close"] == "signal" for r in doc["connections"])
    assert [e["ev"] for e in swarm.events][-1] == "done"
