"""The swarm speaking every protocol, as a subprocess (no Docker).

Line and HTTP run against the lab's own threads model (ModelProcess); redis,
memcached and postgres against small fake servers written here: a thread
with a listening socket on loopback, a thread per connection, replying the
bytes real servers send (the codec tests' recordings).  Each fake keeps
what it saw, so the tests can say what went over the wire.  Swarms run and
are killed through test_swarm_local's fixtures; every wait is bounded.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ..unit.test_ioclient_postgres import PG_SLEEP, SELECT_1, STARTUP, TOO_MANY
from .model_process import ModelProcess
from .test_swarm_local import Swarm, check_shape, complete, target

Reply = tuple[bytes, bool]  # what to send, and whether to close after it


class Session:
    """One connection's server side: bytes in, (reply, close) out."""

    def __init__(self, server: "FakeServer", number: int) -> None:
        self.server = server
        self.number = number  # 1-based, in the order of accepts
        self.buf = b""

    def greet(self) -> Reply:
        return b"", False

    def feed(self, data: bytes) -> Reply:
        raise NotImplementedError


class FakeServer:
    """A listening socket on loopback, a thread per connection."""

    def __init__(self, session: Callable[["FakeServer", int], Session], limit: int | None = None) -> None:
        self.session = session
        self.limit = limit  # sessions at once before the server refuses more
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.active = 0
        self.accepted = 0
        self.seen: list[tuple[int, bytes]] = []  # (session, request) in arrival order
        self.problems: list[str] = []  # protocol rules the client broke
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def note(self, number: int, request: bytes) -> None:
        with self.lock:
            self.seen.append((number, request))

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.active += 1
                self.conns.append(conn)
                number = self.accepted
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        session = self.session(self, number)
        try:
            reply, close = session.greet()
            if reply:
                conn.sendall(reply)
            while not close:
                data = conn.recv(65536)
                if not data:
                    break
                reply, close = session.feed(data)
                if reply:
                    conn.sendall(reply)
            if close:
                # Close as a server does, with a FIN: read what the client
                # still sends until it closes too (a close with unread bytes
                # would be a reset instead of the EOF the test is about).
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(10)
                while conn.recv(65536):
                    pass
        except OSError:
            pass  # the swarm went away first
        finally:
            with self.lock:
                self.active -= 1
            conn.close()

    def over_limit(self) -> bool:
        with self.lock:
            return self.limit is not None and self.active > self.limit

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Redis(Session):
    """Inline commands; past the limit, the error redis sends, then the close."""

    def greet(self) -> Reply:
        if self.server.over_limit():
            return b"-ERR max number of clients reached\r\n", True
        return b"", False

    def feed(self, data: bytes) -> Reply:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\r\n")
        out = b""
        for line in lines:
            self.server.note(self.number, line)
            word, _, rest = line.partition(b" ")
            if line == b"PING":
                out += b"+PONG\r\n"
            elif word == b"DEBUG":  # DEBUG SLEEP s: this fake stalls only its own client
                time.sleep(float(rest.split()[1]))
                out += b"+OK\r\n"
            elif line == b"GET cut":
                return out + b"$5\r\nhel", True  # the server dies in the middle of a reply
            elif word == b"GET":
                out += b"$5\r\nhello\r\n"
            elif line == b"ECHO bad":
                out += b"%1\r\n"  # a RESP3 map: not RESP2
            elif word == b"ECHO":
                out += b"$%d\r\n%s\r\n" % (len(rest), rest)
            else:
                out += b"-ERR unknown command '" + word + b"'\r\n"
        return out, False


class Memcached(Session):
    def feed(self, data: bytes) -> Reply:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\r\n")
        out = b""
        for line in lines:
            self.server.note(self.number, line)
            if line == b"version":
                out += b"VERSION 1.6.18\r\n"
            elif line == b"get k":
                out += b"VALUE k 0 5\r\nhello\r\nEND\r\n"
            elif line == b"stats":
                out += b"STAT pid 42\r\nSTAT uptime 5\r\nEND\r\n"
            else:
                out += b"ERROR\r\n"
        return out, False


class Postgres(Session):
    """Startup (answered after ``startup_delay``, a backend being forked),
    then simple queries; past the limit, "too many clients" and the close."""

    startup_delay = 0.0

    def __init__(self, server: FakeServer, number: int) -> None:
        super().__init__(server, number)
        self.started = False

    def feed(self, data: bytes) -> Reply:
        self.buf += data
        if not self.started:
            if len(self.buf) < 4 or len(self.buf) < struct.unpack("!i", self.buf[:4])[0]:
                return b"", False
            size = struct.unpack("!i", self.buf[:4])[0]
            startup, self.buf = self.buf[:size], self.buf[size:]
            self.server.note(self.number, startup)
            if self.buf:
                self.server.problems.append(f"session {self.number} sent {self.buf[:20]!r} before ReadyForQuery")
            if self.server.over_limit():
                return TOO_MANY, True
            time.sleep(self.startup_delay)
            self.started = True
            return STARTUP, False
        out = b""
        while len(self.buf) >= 5:
            size = struct.unpack("!i", self.buf[1:5])[0]
            if len(self.buf) < 1 + size:
                break
            kind, body, self.buf = self.buf[:1], self.buf[5:1 + size], self.buf[1 + size:]
            self.server.note(self.number, kind + body)
            if kind == b"X":
                return out, True
            query = body.rstrip(b"\0")
            if query.startswith(b"SELECT pg_sleep("):
                time.sleep(float(query[16:-1]))
                out += PG_SLEEP
            else:
                out += SELECT_1
        return out, False


class SlowPostgres(Postgres):
    startup_delay = 0.2


def fake(session: Callable[[FakeServer, int], Session], limit: int | None = None) -> Callable[..., Any]:
    @pytest.fixture
    def fixture() -> Iterator[FakeServer]:
        server = FakeServer(session, limit)
        try:
            yield server
        finally:
            server.close()
    return fixture


redis = fake(Redis)
redis_two = fake(Redis, limit=2)
memcached = fake(Memcached)
postgres = fake(Postgres)
postgres_slow = fake(SlowPostgres)
postgres_two = fake(Postgres, limit=2)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., Swarm]]:
    """Start swarms; each is killed (with its workers) at the end of the test."""
    started: list[Swarm] = []

    def start(*args: Any) -> Swarm:
        started.append(Swarm(tmp_path / f"out{len(started)}", *map(str, args)))
        return started[-1]

    try:
        yield start
    finally:
        for swarm in started:
            swarm.kill()


@pytest.fixture
def threads() -> Iterator[ModelProcess]:
    proc = ModelProcess("threads", "--backlog", "256")
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def at(server: FakeServer | ModelProcess) -> str:
    return target(server) if isinstance(server, ModelProcess) else f"127.0.0.1:{server.port}"


def records(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["client"]: r for r in doc["connections"]}


# -- line and HTTP, against the lab's own model ------------------------------------------

def test_line_is_the_default_and_reads_no_reply_text(run, threads: ModelProcess) -> None:
    doc = complete(run, "--target", at(threads), "--clients", 2, "--pattern", "pingpong", "--count", 20,
                   "--protocol", "line", "--trace", "off")
    s = doc["summary"]
    assert doc["config"]["protocol"] == s["protocol"] == "line" and doc["config"]["message"] == "client {i}"
    assert s["replies"] == 40 and s["error_replies"] is None and s["handshake"]["count"] == 0
    assert all(r["handshake_us"] is None and r["tcp_connect_end"] == r["connect_end"] for r in doc["connections"])


def test_http_pipelined_pingpong_against_a_model(run, threads: ModelProcess) -> None:
    doc = complete(run, "--target", at(threads), "--protocol", "http", "--clients", 3, "--pattern", "pingpong",
                   "--pipeline", 4, "--count", 100, "--trace", "off")
    s = doc["summary"]
    assert s["end_reason"] == "count" and s["replies"] == 300 and s["unanswered"] == 0
    assert s["error_replies"] == 0 and s["unexpected_replies"] == 0
    for r in doc["connections"]:
        request = f"GET /client{r['client']} HTTP/1.1\r\nHost: {at(threads)}\r\n\r\n"
        assert r["bytes_sent"] == 100 * len(request) and r["close"] == "count", r
    # the server read HTTP: its trace shows every client's connection
    accepted = {e["conn"] for e in threads.events if e["ev"] == "accept"}
    assert {r["conn"] for r in doc["connections"]} <= accepted


def test_http_replies_and_actions_are_read_as_texts(run, threads: ModelProcess) -> None:
    doc = complete(run, "--target", at(threads), "--protocol", "http", "--clients", 2, "--interval", 20,
                   "--count", 12, "--at", "0.05:1:/stats", "--at", "0.05:2:/sleep/100", "--trace", "msg")
    actions = {a["send"]: a for a in doc["actions"]}
    stats = json.loads(actions["/stats"]["reply"])  # the model's STATS, as a JSON body
    assert stats["model"] == "threads" and actions["/stats"]["outcome"] == "reply"
    assert actions["/sleep/100"]["reply"] == "SLEPT 100" and actions["/sleep/100"]["latency_ms"] >= 100
    assert [r["replies"] for r in doc["connections"]] == [12, 12]


def test_http_msg_level_traces_show_each_body(run, threads: ModelProcess) -> None:
    swarm = run("--target", at(threads), "--protocol", "http", "--clients", 2, "--interval", 20, "--count", 5,
                "--trace", "msg")
    code, doc = swarm.finish()
    assert code == 0 and doc is not None, swarm.stderr
    replies = [e for e in swarm.events if e["ev"] == "reply"]
    assert len(replies) == 10 and all(e["data"] == f"/client{e['client']}" for e in replies), replies


# -- redis ---------------------------------------------------------------------------------

def test_redis_pipelined_pingpong(run, redis: FakeServer) -> None:
    doc = complete(run, "--target", at(redis), "--protocol", "redis", "--clients", 4, "--pattern", "pingpong",
                   "--pipeline", 8, "--count", 400, "--trace", "conn")
    s = doc["summary"]
    assert s["replies"] == 1600 and s["unexpected_replies"] == 0 and s["error_replies"] == 0
    assert all(r["replies"] == 400 and r["close"] == "count" for r in doc["connections"])
    assert all(r["bytes_sent"] == 400 * len(b"PING\r\n") for r in doc["connections"])
    assert sum(1 for _, line in redis.seen if line == b"PING") == 1600


def test_redis_slow_command_as_a_scripted_action(run, redis: FakeServer) -> None:
    doc = complete(run, "--target", at(redis), "--protocol", "redis", "--clients", 2, "--interval", 10,
                   "--count", 30, "--at", "0.05:1:DEBUG SLEEP 0.2", "--trace", "conn")
    (action,) = doc["actions"]
    assert (action["outcome"], action["reply"]) == ("reply", "OK") and action["latency_ms"] >= 200
    assert [r["replies"] for r in doc["connections"]] == [30, 30]
    # client 1's requests sent during the sleep waited behind it (the fake stalls only that connection)
    assert records(doc)[1]["latency_max_us"] >= 100_000


def test_redis_rate_is_held(run, redis: FakeServer) -> None:
    doc = complete(run, "--target", at(redis), "--protocol", "redis", "--clients", 2, "--pattern", "rate",
                   "--rate", 200, "--duration", 1.2, "--warmup", 0.2, "--trace", "off")
    rate = doc["summary"]["rate"]
    assert 170 <= rate["achieved_per_s"] <= 220, rate  # intended times: the schedule, not the machine
    assert doc["summary"]["latency"]["count"] == doc["summary"]["replies_measured"] > 150


def test_a_protocol_error_ends_only_its_connection(run, redis: FakeServer) -> None:
    """Client 2's reply is not RESP2: its connection ends ("other") and the
    same worker goes on serving clients 1 and 3 to their count."""
    swarm = run("--target", at(redis), "--protocol", "redis", "--clients", 3, "--workers", 1, "--interval", 10,
                "--count", 50, "--message", "ECHO {i}", "--at", "0.05:2:ECHO bad", "--trace", "conn")
    code, doc = swarm.finish()
    assert code == 0 and doc is not None, swarm.stderr  # a connection lost mid-run is not a failed run
    check_shape(doc)
    recs = records(doc)
    assert recs[2]["close"] == "other" and recs[2]["errors"] == {"other": 1}
    assert recs[1]["replies"] == recs[3]["replies"] == 50 and doc["summary"]["end_reason"] == "all-closed"
    assert len(doc["workers"]) == 1 and doc["summary"]["errors"]["other"] == 1
    (error,) = [e for e in swarm.events if e["ev"] == "error"]
    assert error["client"] == 2 and error["detail"].startswith("redis protocol error")


def test_eof_in_the_middle_of_a_reply(run, redis: FakeServer) -> None:
    swarm = run("--target", at(redis), "--protocol", "redis", "--clients", 2, "--pattern", "interval",
                "--interval", 10, "--count", 20, "--message", "GET k", "--at", "0.05:2:GET cut", "--trace", "conn")
    code, doc = swarm.finish()
    assert code == 0 and doc is not None, swarm.stderr
    recs = records(doc)
    assert recs[1]["replies"] == 20 and recs[2]["close"] == "eof"
    (action,) = doc["actions"]
    assert action["outcome"] == "eof"  # the server went away before the action's reply was whole
    (error,) = [e for e in swarm.events if e["ev"] == "error"]
    assert error["kind"] == "eof" and "in the middle of a reply (7 bytes of it)" in error["detail"]


def test_redis_max_clients_is_an_error_reply_not_a_refusal(run, redis_two: FakeServer) -> None:
    swarm = run("--target", at(redis_two), "--protocol", "redis", "--clients", 3, "--pattern", "hold",
                "--duration", 0.5, "--ramp", 20, "--trace", "conn")
    code, doc = swarm.finish()
    assert code == 0 and doc is not None, swarm.stderr
    s = doc["summary"]
    assert s["connections"]["connected"] == 3 and s["connections"]["failed"] == 0
    third = records(doc)[3]  # the ramp makes it the last to come
    assert third["close"] == "eof" and third["error_replies"] == 1 and s["unexpected_replies"] == 1


# -- memcached ---------------------------------------------------------------------------------

def test_memcached_interval_and_stats(run, memcached: FakeServer) -> None:
    doc = complete(run, "--target", at(memcached), "--protocol", "memcached", "--clients", 2, "--interval", 10,
                   "--count", 20, "--message", "get k", "--at", "0.05:1:stats", "--trace", "conn")
    assert [r["replies"] for r in doc["connections"]] == [20, 20]
    (action,) = doc["actions"]
    assert action["reply"] == "STAT pid 42\r\nSTAT uptime 5\r\nEND"


def test_memcached_default_message_is_version(run, memcached: FakeServer) -> None:
    doc = complete(run, "--target", at(memcached), "--protocol", "memcached", "--clients", 1, "--pattern",
                   "pingpong", "--count", 10, "--trace", "off")
    assert doc["summary"]["replies"] == 10 and set(memcached.seen) == {(1, b"version")}


# -- postgres -----------------------------------------------------------------------------------

def test_postgres_is_connected_after_its_handshake(run, postgres_slow: FakeServer) -> None:
    """The fake answers the startup 200 ms late (a backend being forked): the
    connection counts as connected only then, and no query left before."""
    doc = complete(run, "--target", at(postgres_slow), "--protocol", "postgres", "--clients", 2, "--pattern",
                   "pingpong", "--count", 30, "--trace", "conn")
    s = doc["summary"]
    assert s["replies"] == 60 and s["connections"]["connected"] == 2 and s["handshake"]["count"] == 2
    for r in doc["connections"]:
        assert r["handshake_us"] >= 200_000 and r["connect_end"] - r["tcp_connect_end"] >= 0.2, r
        assert r["first_reply"] > r["connect_end"]
    assert s["connect"]["min_us"] >= 200_000  # the connect time includes the handshake
    assert not postgres_slow.problems
    startups = [req for _, req in postgres_slow.seen if req[4:8] == b"\x00\x03\x00\x00"]
    assert len(startups) == 2 and all(b"user\0lab\0database\0lab\0" in req for req in startups)


def test_postgres_pg_sleep_as_a_scripted_action(run, postgres: FakeServer) -> None:
    doc = complete(run, "--target", at(postgres), "--protocol", "postgres", "--clients", 2, "--interval", 20,
                   "--count", 40, "--at", "0.4:1:SELECT pg_sleep(0.3)", "--trace", "conn")
    (action,) = doc["actions"]  # at 0.4 s: both sessions are ready by then, even on a loaded host
    assert (action["outcome"], action["reply"]) == ("reply", ""), action
    assert action["latency_ms"] >= 300
    assert [r["replies"] for r in doc["connections"]] == [40, 40]
    assert sum(1 for _, req in postgres.seen if req == b"X") == 2  # each session ended with Terminate


def test_postgres_too_many_clients_is_refused_by_server(run, postgres_two: FakeServer) -> None:
    swarm = run("--target", at(postgres_two), "--protocol", "postgres", "--clients", 4, "--pattern", "hold",
                "--duration", 0.6, "--ramp", 20, "--trace", "conn")
    code, doc = swarm.finish()
    assert code == 1 and doc is not None, swarm.stderr  # some clients never connected
    check_shape(doc)
    s = doc["summary"]
    conns = s["connections"]
    assert (conns["connected"], conns["failed"], conns["tcp_connected"]) == (2, 2, 4), conns
    assert s["errors"]["refused-by-server"] == 2 and conns["closed_by"]["refused-by-server"] == 2
    refused = [r for r in doc["connections"] if r["close"] == "refused-by-server"]
    assert {r["client"] for r in refused} == {3, 4}  # the ramp brings them last
    assert all(r["connect_end"] is None and r["tcp_connect_end"] is not None for r in refused)
    assert any("refused-by-server x2" in f for f in doc["failures"]), doc["failures"]
    errors = [e for e in swarm.events if e["ev"] == "error"]
    assert len(errors) == 2 and all(e["phase"] == "handshake" and "too many clients" in e["detail"]
                                    for e in errors)


def test_postgres_storm_makes_a_session_per_connection(run, postgres: FakeServer) -> None:
    doc = complete(run, "--target", at(postgres), "--protocol", "postgres", "--clients", 2, "--pattern", "storm",
                   "--count", 5, "--trace", "off")
    s = doc["summary"]
    assert s["connections"]["closed_by"] == {"done": 10} and s["replies"] == 10
    assert s["handshake"]["count"] == 10 and postgres.accepted == 10
