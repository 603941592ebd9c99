"""The slow pattern (a slowloris client) through the worker's public face,
and its flags: each request in pieces at a set pace, beside normal clients."""

from __future__ import annotations

from typing import Any

import pytest

from swarm import flags, patterns

from .swarm_rig import T0, rig  # noqa: F401  (rig: the fixture)

PACE = 0.125  # a binary fraction of a second: the schedule's sums are exact


def test_a_slow_client_writes_a_piece_each_pace_then_waits_for_its_reply(rig: Any) -> None:
    t = rig(patterns.Slow(PACE, 2), message="abcde")  # "abcde\n": 6 bytes, 3 pieces
    c, far = t.connect(1, T0)
    assert far.wire == b"ab"
    t.turn(T0 + PACE / 2)
    assert far.wire == b"ab"  # nothing before the pace
    t.turn(T0 + PACE)
    assert far.wire == b"abcd"
    t.turn(T0 + 2 * PACE)
    assert far.wire == b"abcde\n"
    t.turn(T0 + 3 * PACE)
    assert far.wire == b"abcde\n"  # one request at a time: the next waits for the reply
    t.answer(c, b"abcde\n", T0 + 3 * PACE)
    assert far.wire == b"abcde\nab"  # the reply began the next request
    rec_latency = t.worker.tally.latency.summary()
    assert rec_latency["count"] == 1 and rec_latency["max_us"] == int(3 * PACE * 1e6)  # from its first piece


def test_bytes_sent_count_only_the_pieces_that_left(rig: Any) -> None:
    t = rig(patterns.Slow(PACE, 1), message="abc")
    c, far = t.connect(1, T0)
    t.turn(T0 + PACE)
    assert far.wire == b"ab"
    t.worker.finish()
    rec = t.record()
    assert rec["role"] == "slow" and rec["bytes_sent"] == 2 and rec["sent"] == 1 and rec["unanswered"] == 1


def test_the_budget_ends_a_slow_client_after_its_last_reply(rig: Any) -> None:
    t = rig(patterns.Slow(PACE, 4), message="abc", count=1)  # one piece: "abc\n"
    c, far = t.connect(1, T0)
    assert far.wire == b"abc\n"
    t.answer(c, b"ok\n", T0 + PACE)
    assert c.state != "open" and t.record()["close"] == "count"


def test_slow_clients_beside_normal_ones(rig: Any) -> None:
    """--slow-clients 1: client 1 sends in pieces, client 2 its own pattern."""
    t2 = rig(patterns.Interval(PACE), message="abc", clients=2, slow=(1, patterns.Slow(PACE, 1)))
    slow, far1 = t2.connect(1, T0)
    normal, far2 = t2.connect(2, T0)
    assert (slow.pattern.name, normal.pattern.name) == ("slow", "interval")
    assert far1.wire == b"a" and far2.wire == b"abc\n"


@pytest.mark.parametrize("argv, says", [
    (["--pattern", "slow", "--pace", "0"], "--pace: must be > 0"),
    (["--pattern", "slow", "--pace", "-100"], "--pace: must be > 0"),
    (["--pattern", "slow", "--piece", "0"], "--piece: must be > 0"),
    (["--pattern", "slow", "--piece", "999"], "--piece 999 is longer than the request"),
    (["--pattern", "slow", "--piece", "1.5"], "--piece: not a number"),
    (["--pace", "50"], "--pace and --piece are for slow clients"),
    (["--clients", "3", "--slow-clients", "4"], "--slow-clients 4 is more than --clients 3"),
    (["--slow-clients", "-1"], "--slow-clients: must be >= 0"),
    (["--pattern", "slow", "--fast-path", "native"], "slow clients run in the Python loop"),
])
def test_bad_slow_flags_are_one_line_and_exit_2(argv: list[str], says: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        flags.parse_args(["--target", "h:1"] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1], err


def test_slow_flags_default_and_reach_the_config() -> None:
    args = flags.parse_args(["--target", "h:1", "--slow-clients", "2", "--clients", "3"])
    assert (args.pace, args.piece) == (flags.PACE_MS, flags.PIECE)
    config = flags.config_of(args, 1)
    assert (config["slow_clients"], config["pace_ms"], config["piece"]) == (2, 100.0, 1)
    http = flags.parse_args(["--target", "h:80", "--protocol", "http", "--pattern", "slow", "--piece", "10"])
    assert http.piece == 10  # an HTTP request head is longer than 10 bytes


def test_flags_the_swarm_refuses_are_bad_input_for_the_lab() -> None:
    """A scenario's flags refused by the swarm in a container (argparse's exit 2,
    e.g. a piece longer than the target's request) end the run as bad input,
    in the swarm's one line; any other missing results are the environment's."""
    from types import SimpleNamespace

    from lab.errors import EnvironmentProblem, UsageError
    from lab.run import probe

    target = SimpleNamespace(model=SimpleNamespace(name="epoll"))
    line = ["swarm: error: --piece 50 is longer than the request (9 bytes): it would not be sent in pieces"]
    refused = probe._no_results(target, "slow-clients-main", 2, line)  # type: ignore[arg-type]
    assert isinstance(refused, UsageError) and str(refused) == (
        "epoll/slow-clients-main: the swarm refused the scenario's flags: --piece 50 is longer than the request "
        "(9 bytes): it would not be sent in pieces")
    assert isinstance(probe._no_results(target, "m", 137, "killed"), EnvironmentProblem)  # type: ignore[arg-type]
