"""The swarm's pure parts: request lines, scripted actions, schedules."""

from __future__ import annotations

import json

import pytest

from swarm import patterns


def test_message_template_and_padding() -> None:
    assert patterns.message("client {i}", 7, None) == b"client 7\n"
    line = patterns.message("client {i}", 12, 64)
    assert len(line) == 64 and line.startswith(b"client 12.") and line.endswith(b".\n")
    with pytest.raises(ValueError, match="shorter"):
        patterns.message("client {i}", 1, 5)


def test_at_splits_on_the_first_two_colons() -> None:
    a = patterns.parse_at("0.5:3:SLEEP 200")
    assert (a.t, a.client, a.send, a.line) == (0.5, 3, "SLEEP 200", b"SLEEP 200\n")
    assert patterns.parse_at("2:1:a:b").send == "a:b"
    for bad in ("2:1", "x:1:CRASH", "2:0:CRASH", "-1:1:CRASH"):
        with pytest.raises(ValueError):
            patterns.parse_at(bad)


def test_plan_inline_or_file(tmp_path) -> None:
    items = [{"t": 2.0, "client": 1, "send": "CRASH"}, {"t": 0, "client": 2, "send": "STATS"}]
    inline = patterns.parse_plan(json.dumps(items))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(items))
    from_file = patterns.parse_plan(str(path))
    assert [(a.t, a.client, a.send) for a in inline] == [(2.0, 1, "CRASH"), (0.0, 2, "STATS")]
    assert [a.to_json() for a in inline] == [a.to_json() for a in from_file]
    for bad in ('{"t": 1}', '[{"t": 1, "client": 1}]', '[{"t": 1, "client": 1, "send": "x", "z": 1}]',
                str(tmp_path / "missing.json"), "[1, 2"):
        with pytest.raises(ValueError):
            patterns.parse_plan(bad)


def test_rate_spreads_clients_over_one_period() -> None:
    rate = patterns.make("rate", interval_ms=50, depth=1, rate=1000, active=10)
    assert isinstance(rate, patterns.Rate)
    assert rate.period == pytest.approx(0.01)

    class Fake:
        def __init__(self, client: int) -> None:
            self.client = client

    phases = sorted(rate.phase(Fake(i)) for i in range(1, 11))  # type: ignore[arg-type]
    assert phases == pytest.approx([i / 1000 for i in range(10)])


def test_budgets() -> None:
    assert patterns.make("pingpong", interval_ms=1, depth=4, rate=None, active=1).budget(None) == patterns.UNLIMITED
    assert patterns.make("interval", interval_ms=1, depth=1, rate=None, active=1).budget(5) == 5
    assert patterns.make("storm", interval_ms=1, depth=1, rate=None, active=1).budget(5) == 1
    assert not patterns.make("hold", interval_ms=1, depth=1, rate=None, active=1).sends
