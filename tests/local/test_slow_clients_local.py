"""Slow clients against models run as local processes: one slow client (a
request in pieces, 3 bytes every 100 ms) holds the blocking model, so the
normal clients beside it are never answered; the epoll model reads the
pieces as they come and answers everyone on time.  The swarm's flags are
the slow-clients scenario's (scenarios/slow-clients.yaml)."""

from __future__ import annotations

from typing import Any

from .test_swarm_local import check_shape, model, run, target  # noqa: F401  (run: the fixture)

blocking = model("blocking")
epoll = model("epoll")


def slow_run(run: Any, server: Any) -> dict[str, Any]:
    swarm = run("--target", target(server), "--clients", 4, "--slow-clients", 1, "--pace", 100, "--piece", 3,
                "--workers", 1, "--ramp", 20, "--interval", 50, "--duration", 2, "--trace", "off")
    code, doc = swarm.finish(30)
    assert doc is not None, swarm.stderr
    check_shape(doc)
    return doc


def roles(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    conns = doc["connections"]
    return [c for c in conns if c["role"] == "slow"], [c for c in conns if c["role"] == "interval"]


def test_one_slow_client_holds_the_blocking_model(run: Any, blocking: Any) -> None:
    doc = slow_run(run, blocking)
    slow, normal = roles(doc)
    assert len(slow) == 1 and len(normal) == 3
    assert slow[0]["replies"] >= 3, slow  # 9-byte requests in 3 pieces: a reply every 0.2 s
    assert sum(c["sent"] for c in normal) > 60 and sum(c["replies"] for c in normal) == 0, normal


def test_slow_clients_do_not_hold_the_epoll_model(run: Any, epoll: Any) -> None:
    doc = slow_run(run, epoll)
    slow, normal = roles(doc)
    assert slow[0]["replies"] >= 3 and slow[0]["latency_max_us"] >= 150_000, slow  # it was slow
    sent, got = sum(c["sent"] for c in normal), sum(c["replies"] for c in normal)
    assert sent > 60 and got >= sent - 3, normal  # at most the last request each still in flight
    assert max(c["latency_max_us"] for c in normal) < 100_000, normal
