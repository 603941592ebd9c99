"""The swarm speaking other protocols, without sockets or a real clock.

A worker runs with the real client codecs (services/ioclient) on the test
bench of test_swarm_worker.py (swarm_rig.py): the test writes what the
server answers, in whatever pieces it likes, and says what time it is.  The
server's bytes are the ones real servers sent (the codec tests'
recordings).  Then the flags: defaults per protocol, and every refusal is
one line and exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from swarm import fastpath, flags, patterns, results, wire
from swarm.conn import CLOSED, OPEN, Conn
from swarm.report import WorkerReport

from .swarm_rig import T0, FakeSocket, Rig, rig  # noqa: F401  (rig: the fixture)
from .test_ioclient_postgres import SELECT_1, STARTUP, TERMINATED, TOO_MANY

MS = 1 / 1024  # a binary fraction of a second: times add up exactly
QUERY = b"Q\x00\x00\x00\rSELECT 1\x00"
TERMINATE = b"X\x00\x00\x00\x04"


class Lab:
    """One worker with a codec (on a rig), and its trace as a list of events."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.eng = rig.worker

    def connect(self, client: int, now: float) -> tuple[Conn, FakeSocket]:
        """The client's TCP connect completes at ``now``."""
        return self.rig.connect(client, now)

    def answer(self, c: Conn, far: FakeSocket, data: bytes, now: float, *, bytewise: bool = False) -> None:
        """The server sends ``data`` (one byte per read if ``bytewise``)."""
        self.rig.answer(c, data, now, bytewise=bytewise)

    def close_far(self, c: Conn, far: FakeSocket, now: float) -> None:
        self.rig.close_far(c, now)

    def turn(self, now: float) -> None:
        self.rig.turn(now)

    def events(self) -> list[dict[str, Any]]:
        return self.rig.events()

    def record(self, client: int = 1) -> dict[str, Any]:
        return self.rig.record(client)


@pytest.fixture
def lab(rig: Callable[..., Rig]) -> Callable[..., Lab]:
    def make(pattern: patterns.Pattern, protocol: str, message: str, **kwargs: Any) -> Lab:
        return Lab(rig(pattern, protocol=protocol, message=message, **kwargs))
    return make


# -- handshakes ---------------------------------------------------------------------

def test_postgres_is_connected_only_once_ready_for_query(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "postgres", "SELECT 1")
    c, far = t.connect(1, T0)
    startup = c.codec.handshake()
    assert far.wire == startup and not c.ready and c.connect_end is None  # no query before the session
    t.answer(c, far, STARTUP[:-1], T0 + MS, bytewise=True)
    assert far.wire == startup and not c.ready and t.eng.tally.connect.total == 0
    t.answer(c, far, STARTUP[-1:], T0 + 2 * MS)  # the ReadyForQuery's last byte
    assert c.ready and c.connect_end == T0 + 2 * MS and far.wire == startup + QUERY
    assert t.eng.tally.handshake.total == 1 and t.eng.first_connects == {1: T0 + 2 * MS}
    t.answer(c, far, SELECT_1, T0 + 3 * MS, bytewise=True)
    assert c.ledger.answered == 1 and far.wire == startup + QUERY * 2  # the reply bought the next query
    assert t.eng.tally.latency.summary()["max_us"] == int(MS * 1e6)
    ready = [e for e in t.events() if e["ev"] == "ready"]
    assert [(e["conn"], e["handshake_us"]) for e in ready] == [(c.name, int(2 * MS * 1e6))]


def test_a_refused_session_is_a_failed_connection_of_its_own_kind(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "postgres", "SELECT 1")
    c, far = t.connect(1, T0)
    t.answer(c, far, TOO_MANY, T0 + MS)
    assert c.state == CLOSED and far.wire == c.codec.handshake()  # no query, no Terminate
    r = t.record()
    assert (r["close"], r["errors"], r["connect_end"], r["tcp_connect_end"]) == \
        ("refused-by-server", {"refused-by-server": 1}, None, T0)
    totals = t.eng.tally.totals
    assert (totals["failed"], totals["connected"], totals["tcp_connected"]) == (1, 0, 1)
    assert t.eng.tally.errors["refused-by-server"] == 1 and not t.eng.first_connects
    (error,) = [e for e in t.events() if e["ev"] == "error"]
    assert error["kind"] == "refused-by-server" and error["phase"] == "handshake"
    assert "too many clients" in error["detail"]


def test_a_silent_handshake_times_out_on_its_own_clock(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "postgres", "SELECT 1")
    c, far = t.connect(1, T0 + 0.5)  # the TCP connect took half the connect timeout
    t.turn(T0 + 1.25)  # past the connect's deadline, within the handshake's
    assert c.state == OPEN
    t.turn(T0 + 1.5)
    r = t.record()
    assert (r["close"], r["errors"], r["connect_end"]) == ("timeout", {"timeout": 1}, None)
    assert t.eng.tally.totals["failed"] == 1


def test_eof_during_the_handshake_fails_the_connection(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "postgres", "SELECT 1")
    c, far = t.connect(1, T0)
    t.answer(c, far, STARTUP[:20], T0 + MS)
    t.close_far(c, far, T0 + 2 * MS)
    r = t.record()
    assert (r["close"], r["connect_end"], r["replies"]) == ("eof", None, 0)
    assert t.eng.tally.totals["failed"] == 1


def test_protocols_without_a_handshake_are_ready_at_the_connect(lab: Any) -> None:
    t = lab(patterns.PingPong(2), "redis", "PING")
    c, far = t.connect(1, T0)
    assert c.ready and c.connect_end == T0 and far.wire == b"PING\r\n" * 2
    assert t.eng.tally.handshake.total == 0 and c.handshake_us() is None


# -- replies --------------------------------------------------------------------------

PROTOCOL_CASES = [
    # protocol, message, request bytes, one reply as servers send it
    ("redis", "PING", b"PING\r\n", b"+PONG\r\n"),
    ("memcached", "get k", b"get k\r\n", b"VALUE k 0 5\r\nhello\r\nEND\r\n"),
    ("http", "/client{i}", b"GET /client1 HTTP/1.1\r\nHost: web\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n"),
    ("postgres", "SELECT 1", QUERY, SELECT_1),
]


@pytest.mark.parametrize("protocol,message,wanted,reply", PROTOCOL_CASES, ids=[c[0] for c in PROTOCOL_CASES])
def test_pipelined_replies_are_counted_exactly_in_any_pieces(lab: Any, protocol: str, message: str,
                                                              wanted: bytes, reply: bytes) -> None:
    options = {"host": "web"} if protocol == "http" else {}
    t = lab(patterns.PingPong(4), protocol, message, count=12, **options)
    c, far = t.connect(1, T0)
    hello = c.codec.handshake()
    if hello:
        t.answer(c, far, STARTUP, T0)
    assert far.wire == hello + wanted * 4
    t.answer(c, far, reply * 4, T0 + MS, bytewise=True)  # every reply refills the pipeline at once
    assert c.ledger.answered == 4 and far.wire == hello + wanted * 8
    t.answer(c, far, reply * 4, T0 + 2 * MS)  # four in one read
    assert far.wire == hello + wanted * 12  # the budget is spent: nothing more to send
    cut = len(reply) * 2 + 3
    t.answer(c, far, (reply * 4)[:cut], T0 + 3 * MS)  # the last four, cut inside the third
    assert c.ledger.answered == 10 and c.state == OPEN
    t.answer(c, far, (reply * 4)[cut:], T0 + 4 * MS)
    r = t.record()
    assert (r["replies"], r["sent"], r["unanswered"], r["close"], r["error_replies"]) == (12, 12, 0, "count", 0)
    assert t.eng.tally.totals["unexpected"] == 0
    goodbye = TERMINATE if protocol == "postgres" else b""  # postgres: a clean session end
    assert far.wire == hello + wanted * 12 + goodbye


def test_a_protocol_error_closes_only_its_connection(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "redis", "PING", clients=2)
    (c1, far1), (c2, far2) = t.connect(1, T0), t.connect(2, T0)
    t.answer(c1, far1, b"%3\r\n", T0 + MS)  # a RESP3 map: not what this client speaks
    t.answer(c2, far2, b"+PONG\r\n", T0 + MS)
    assert c1.state == CLOSED and c2.state == OPEN and far2.wire == b"PING\r\n" * 2
    r = t.record(1)
    assert (r["close"], r["errors"]) == ("other", {"other": 1})
    (error,) = [e for e in t.events() if e["ev"] == "error"]
    assert error["client"] == 1 and error["detail"].startswith("redis protocol error") and "phase" not in error


def test_eof_in_the_middle_of_a_reply_says_so(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "redis", "GET k")
    c, far = t.connect(1, T0)
    t.answer(c, far, b"$5\r\nhel", T0 + MS)
    t.close_far(c, far, T0 + 2 * MS)
    r = t.record()
    assert (r["close"], r["replies"], r["unanswered"]) == ("eof", 0, 1)
    (error,) = [e for e in t.events() if e["ev"] == "error"]
    assert error["kind"] == "eof" and "in the middle of a reply (7 bytes of it)" in error["detail"]


def test_a_body_read_to_the_close_is_a_reply_at_eof(lab: Any) -> None:
    t = lab(patterns.Storm(), "http", "/", host="web")
    c, far = t.connect(1, T0)
    t.answer(c, far, b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nhello", T0 + MS)
    assert c.state == OPEN and c.ledger.answered == 0  # the body may go on
    t.close_far(c, far, T0 + 2 * MS)
    r = t.record()
    assert (r["replies"], r["close"], r["errors"]) == (1, "done", {})  # storm: its one request answered


def test_a_server_that_announces_its_close_ends_the_connection_there(lab: Any) -> None:
    t = lab(patterns.PingPong(2), "http", "/", host="web")
    c, far = t.connect(1, T0)
    request = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    t.answer(c, far, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", T0 + MS)
    assert c.state == CLOSED and far.wire == request * 2  # nothing more sent into a closing connection
    r = t.record()
    assert (r["replies"], r["unanswered"], r["close"]) == (1, 1, "eof")


def test_a_fatal_error_after_startup_is_an_error_reply_then_the_end(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "postgres", "SELECT pg_sleep(5)")
    c, far = t.connect(1, T0)
    t.answer(c, far, STARTUP, T0)
    t.answer(c, far, TERMINATED, T0 + MS)  # pg_terminate_backend() from elsewhere
    r = t.record()
    assert (r["replies"], r["error_replies"], r["close"]) == (1, 1, "eof")


def test_error_replies_are_counted_per_connection(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "redis", "NOPE", count=2)
    c, far = t.connect(1, T0)
    t.answer(c, far, b"-ERR unknown command 'NOPE'\r\n" * 2, T0 + MS, bytewise=True)
    r = t.record()
    assert (r["replies"], r["error_replies"], r["close"]) == (2, 2, "count")
    assert t.eng.tally.totals["error_replies"] == 2


# -- scripted actions -----------------------------------------------------------------

@pytest.mark.parametrize("protocol,pattern_reply,send,wanted,reply,text", [
    ("redis", b"+PONG\r\n", "DEBUG SLEEP 0.5", b"DEBUG SLEEP 0.5\r\n", b"+OK\r\n", "OK"),
    ("postgres", SELECT_1, "SELECT 1", QUERY, SELECT_1, "1"),
    ("http", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab\n", "/sleep/500",
     b"GET /sleep/500 HTTP/1.1\r\nHost: web\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nSLEPT 500\n",
     "SLEPT 500"),
])
def test_an_action_goes_through_the_codec_and_its_reply_text_is_kept(
        lab: Any, protocol: str, pattern_reply: bytes, send: str, wanted: bytes, reply: bytes, text: str) -> None:
    action = patterns.Action(MS, 1, send)
    t = lab(patterns.PingPong(1), protocol, wire.DEFAULT_MESSAGES[protocol], actions=[action],
            **({"host": "web"} if protocol == "http" else {}))
    c, far = t.connect(1, T0)
    if c.codec.handshake():
        t.answer(c, far, STARTUP, T0)
    t.turn(T0 + MS)  # the action's time
    assert far.wire.endswith(wanted) and c.slow and c.codec.keep  # texts only while it is in flight
    t.answer(c, far, pattern_reply + reply, T0 + 2 * MS, bytewise=True)
    assert (action.outcome, action.reply) == ("reply", text)
    assert c.ledger.answered == 1 and not c.slow and not c.codec.keep  # back to counting


def test_an_action_before_the_session_is_ready_is_not_connected(lab: Any) -> None:
    action = patterns.Action(MS, 1, "SELECT 1")
    t = lab(patterns.PingPong(1), "postgres", "SELECT 1", actions=[action])
    c, far = t.connect(1, T0)
    t.turn(T0 + MS)  # the action's time: the session is not ready yet
    assert action.outcome == "not-connected" and far.wire == c.codec.handshake()


def test_msg_level_traces_every_reply_text(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "redis", "PING", count=2, level="msg")
    c, far = t.connect(1, T0)
    assert c.slow and c.codec.keep
    t.answer(c, far, b"+PONG\r\n+PONG\r\n", T0 + MS)
    replies = [e for e in t.events() if e["ev"] == "reply"]
    assert len(replies) == 2 and all(e["data"] == "PONG" for e in replies), replies


# -- what the lab reads -----------------------------------------------------------------

def test_results_carry_the_protocol_and_the_handshakes(lab: Any) -> None:
    t = lab(patterns.PingPong(1), "postgres", "SELECT 1", count=1)
    c, far = t.connect(1, T0)
    t.answer(c, far, STARTUP, T0 + 4 * MS)
    t.answer(c, far, SELECT_1, T0 + 5 * MS)
    sent = json.dumps(t.eng.finish().to_json())  # as a worker sends it to the parent
    report = WorkerReport.from_json(json.loads(sent))
    args = flags.parse_args(["--protocol", "postgres", "--target", "db:5432", "--clients", "1",
                             "--pattern", "pingpong"])
    doc = results.build(config=flags.config_of(args, 1), environment={}, workers=[report], failures=[],
                        warnings=[], t0=T0, wall0=0.0, ended=T0 + 1, wall_end=1.0,
                        cpu={"user_s": 0, "sys_s": 0, "workers_s": 0, "measured_s": 0, "parent": {}},
                        limits={}, actions=[])
    assert doc["config"]["protocol"] == "postgres" and doc["config"]["message"] == "SELECT 1"
    s = doc["summary"]
    assert s["protocol"] == "postgres" and s["handshake"]["count"] == 1 and s["error_replies"] == 0
    assert s["connections"]["connected"] == s["connections"]["tcp_connected"] == 1
    (rec,) = doc["connections"]
    assert rec["handshake_us"] == int(4 * MS * 1e6) and rec["tcp_connect_end"] == T0
    assert doc["histograms"]["handshake"]["count"] == 1
    assert "postgres pingpong" in results.human_line(doc)


# -- flags ----------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", wire.PROTOCOLS)
def test_each_protocol_has_a_default_message(protocol: str) -> None:
    args = flags.parse_args(["--protocol", protocol, "--target", "h:80"])
    assert args.message == wire.DEFAULT_MESSAGES[protocol]
    assert flags.config_of(args, 1)["protocol"] == protocol
    assert (args.codec is None) == (protocol == "line")


@pytest.mark.parametrize("target,host", [("web:8080", "web:8080"), ("web:80", "web"), ("[::1]:81", "[::1]:81")])
def test_the_http_host_defaults_to_the_target(target: str, host: str) -> None:
    args = flags.parse_args(["--protocol", "http", "--target", target])
    assert args.http_host == host and args.codec().host == host


def test_postgres_logs_in_as_lab_unless_told() -> None:
    args = flags.parse_args(["--protocol", "postgres", "--user", "alice"])
    assert (args.user, args.database) == ("alice", "lab")
    assert b"user\0alice\0database\0lab\0" in args.codec().handshake()


@pytest.mark.parametrize("argv,says", [
    (["--protocol", "redis", "--size", "64"], "--size pads line-protocol requests"),
    (["--protocol", "redis", "--user", "x"], "--user and --database are for --protocol postgres"),
    (["--protocol", "line", "--http-host", "x"], "--http-host is for --protocol http"),
    (["--protocol", "memcached", "--message", "set k 0 0 2 noreply hi"], "does not answer noreply"),
    (["--protocol", "memcached", "--message", "mg k v q"], "does not answer noreply"),
    (["--protocol", "memcached", "--pattern", "hold", "--at", "1:1:delete k noreply"], "waits for its reply"),
    (["--protocol", "redis", "--message", ""], "an empty redis request is never answered"),
    (["--protocol", "redis", "--at", "1:1: "], "an empty redis request"),
    (["--protocol", "postgres", "--user", "a\0b"], "cannot hold NUL"),
    (["--protocol", "http", "--http-host", "a b"], "is not a host name"),
    (["--protocol", "smtp"], "invalid choice"),
])
def test_bad_protocol_flags_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                    says: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        flags.parse_args(argv)
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and says in errors[0], errors


def test_a_native_fast_path_asked_for_where_none_is_built_is_one_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(fastpath, "LIBRARY", tmp_path / "libfastpath.so")  # a checkout: nothing compiled
    with pytest.raises(SystemExit) as exit_:
        flags.parse_args(["--fast-path", "native"])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no libfastpath.so" in errors[0], errors
    for choice, on in (("auto", True), ("python", False)):  # auto falls back to Python without a word
        args = flags.parse_args(["--fast-path", choice])
        assert flags.config_of(args, 1)["fast_path"] == choice and (args.fast_path != "python") is on


def test_noreply_is_fine_for_clients_that_only_hold() -> None:
    args = flags.parse_args(["--protocol", "memcached", "--pattern", "hold", "--message", "delete k noreply"])
    assert args.message == "delete k noreply"
