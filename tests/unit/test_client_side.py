"""Judging real servers from the clients' side, without Docker.

A real server writes none of the lab's trace, so served_at_once reads who
was served when from the swarm's records (first reply, close): each case
gives the clients' spans and the verdict each key must get (True, False, or
None: not judged).  Also the pieces the lab reads instead of the trace
(lab/measure/reach.py): the socket table, the swarm's flags for a protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from lab import checks
from lab.checks import registry
from lab.errors import UsageError
from lab.measure import reach
from lab.measure.procs import Sample
from lab.plan import models
from lab.plan.models import Model
from tests.unit.test_judges import T0, FakeTarget, context, judged, probe


def untraced(target: FakeTarget) -> FakeTarget:
    target.traced = False  # type: ignore[attr-defined]
    return target


def clients(want: Any, spans: list[tuple[float, float] | None], *, workers: int | None = None,
            closed: dict[int, str] | None = None, closes_idle: bool = False, asked: int | None = None,
            samples: list[Sample] | None = None, thread_count: int | None = None) -> checks.Context:
    """``spans``: per client, (first reply, close) seconds after T0 (None: connected, never answered);
    ``closed``: clients the server closed (client -> how); ``asked``: clients beyond these never connected."""
    closed = closed or {}
    connections = []
    for i, span in enumerate(spans, 1):
        connections.append({"client": i, "conn": f"10.0.0.2:{4000 + i}",
                            "first_reply": None if span is None else T0 + span[0],
                            "close_t": T0 + (span[1] if span else 2.0), "close": closed.get(i, "count")})
    for i in range(len(spans) + 1, (asked or len(spans)) + 1):
        connections.append({"client": i, "conn": None, "close": "connect-failed"})
    expect: dict[str, Any] = {"peak_served": want}
    if thread_count is not None:
        expect["thread_count"] = thread_count
    ctx = context("served-at-once", expect, workers=workers, target=untraced(FakeTarget()),
                  probes={"main": probe({"connections": connections, "summary": {"clients": asked or len(spans)}})},
                  samples={"main": samples or []})
    if closes_idle:
        ctx.model = Model("fake", "s", "d", expect, workers, {"expect": expect, "closes_idle": True},
                          Path("services/fake/model.yaml"), kind="server")
    return ctx


AT_ONCE = [(0.1, 1.0), (0.1, 1.0), (0.1, 1.0)]
POOL = [(0.1, 1.0)] * 4 + [(1.01, 2.0)]  # the fifth's first reply after the first left
SERVED = [
    ("held-all", lambda: clients("all", AT_ONCE), {"peak_served": True}),
    ("held-one", lambda: clients(1, [(0.1, 1.0), (1.01, 2.0), (2.01, 3.0)]), {"peak_served": True}),
    ("held-workers", lambda: clients("workers", POOL, workers=4), {"peak_served": True}),
    ("held-thread-count", lambda: clients("all", AT_ONCE, samples=[Sample(T0 + 0.5, 1, 5, {7: 5})],
                                          thread_count=5), {"peak_served": True, "thread_count": True}),
    ("held-closed-by-its-rule", lambda: clients("all", [(0.1, 0.11), (0.12, 1.0), (0.13, 1.0)],
                                                closed={1: "eof"}, closes_idle=True), {"peak_served": True}),
    ("contradicted-all", lambda: clients("all", [(0.1, 1.0), (1.01, 2.0), (1.01, 2.0)]), {"peak_served": False}),
    ("contradicted-workers-served-early", lambda: clients("workers", [(0.1, 1.0)] * 4 + [(0.5, 2.0)], workers=4),
     {"peak_served": False}),
    ("contradicted-closed-undeclared", lambda: clients("all", [(0.1, 0.11), (0.12, 1.0), (0.12, 1.0)],
                                                       closed={1: "eof"}), {"peak_served": False}),
    ("contradicted-a-client-never-answered", lambda: clients("all", [(0.1, 1.0), (0.1, 1.0), None]),
     {"peak_served": False}),
    ("contradicted-thread-count", lambda: clients("all", AT_ONCE, samples=[Sample(T0 + 0.5, 1, 6, {7: 6})],
                                                  thread_count=5), {"peak_served": True, "thread_count": False}),
    ("empty-nobody-connected", lambda: clients("all", [], asked=3), {"peak_served": None}),
    ("zero-workers-undeclared", lambda: clients("workers", AT_ONCE), {"peak_served": None}),
    ("missing-samples", lambda: clients("all", AT_ONCE, thread_count=5), {"peak_served": True, "thread_count": None}),
    ("partial-closed-all-but-one", lambda: clients("all", [(0.1, 0.11), (0.1, 0.11), (0.12, 1.0)],
                                                   closed={1: "eof", 2: "eof"}, closes_idle=True),
     {"peak_served": None}),
    ("partial-two-of-three-connected", lambda: clients("all", [(0.1, 1.0), (0.1, 1.0)], asked=3),
     {"peak_served": False}),
]


@pytest.mark.parametrize("case, build, want", SERVED, ids=[c for c, _, _ in SERVED])
def test_served_at_once_from_the_clients_side(case: str, build: Callable[[], checks.Context],
                                              want: dict[str, bool | None]) -> None:
    ctx = build()
    got = judged("served_at_once", ctx)
    assert got == want, [(v.expect, v.observed) for v in registry.JUDGES["served_at_once"](ctx)]


def test_client_side_verdicts_say_where_the_evidence_came_from() -> None:
    v = registry.JUDGES["served_at_once"](clients("all", [(0.1, 0.11), (0.12, 1.0), (0.12, 1.0)],
                                                         closed={1: "eof"}, closes_idle=True))[0]
    assert v.ok is True and v.figures["evidence"] == "client side" and v.figures["closed_by_server"] == {1: "eof"}
    assert "2 of 2 at once" in v.observed and "closes_idle" in v.observed


# -- lab/measure/reach.py -----------------------------------------------------------------------

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:3039 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 1 1 0
   1: 030012AC:3039 020012AC:A2E6 01 00000000:00000000 00:00000000 00000000 10001        0 2 1 0
   2: 030012AC:3039 020012AC:A2E8 08 00000000:00000000 00:00000000 00000000 10001        0 3 1 0
   3: 030012AC:3039 020012AC:A2EA 06 00000000:00000000 00:00000000 00000000 10001        0 4 1 0
  sl  local_address                         remote_address                        st tx_queue
   0: 0000000000000000FFFF0000030012AC:3039 0000000000000000FFFF0000020012AC:B000 01 0:0 0:0 0
"""


def test_the_socket_table_is_read_as_the_kernel_writes_it() -> None:
    sockets = reach.parse_tcp(TCP)
    assert [(s.local, s.remote, s.state) for s in sockets] == [
        ("0.0.0.0:12345", "0.0.0.0:0", "0A"), ("172.18.0.3:12345", "172.18.0.2:41702", "01"),
        ("172.18.0.3:12345", "172.18.0.2:41704", "08"), ("172.18.0.3:12345", "172.18.0.2:41706", "06"),
        ("172.18.0.3:12345", "172.18.0.2:45056", "01")]
    assert reach.listening(sockets, 12345) and not reach.listening(sockets, 80)
    # open on the server's side: established, or left by the client and not closed yet (TIME_WAIT is gone)
    assert reach.open_on_server(sockets, ["172.18.0.2:41702", "172.18.0.2:41704", "172.18.0.2:41706",
                                          "172.18.0.2:9"]) == {"172.18.0.2:41702", "172.18.0.2:41704"}


def test_the_swarm_speaks_the_targets_protocol_and_sends_its_slow_request() -> None:
    redis = models.get("redis")
    assert reach.swarm_flags(redis, ["--clients=3", "--at=0.5:1:{slow}"]) == [
        "--clients=3", "--at=0.5:1:DEBUG SLEEP 0.5", "--protocol=redis"]
    assert reach.swarm_flags(models.get("epoll"), ["--clients=3"]) == ["--clients=3"]  # line: the default
    assert reach.swarm_flags(redis, ["--protocol=line"]) == ["--protocol=line"]  # asked for: kept
    with pytest.raises(UsageError, match="nginx's model.yaml declares no slow: request"):
        reach.swarm_flags(models.get("nginx"), ["--at=0.5:1:{slow}"])
    assert reach.traced(models.get("epoll")) and reach.traced(models.get("native"))
    assert not reach.traced(redis)


@pytest.mark.parametrize("results, why", [
    ({"summary": {"replies": 1, "error_replies": 0}}, None),
    ({"summary": {"replies": 1, "error_replies": 1}}, "it answered with an error reply"),
    ({"summary": {"replies": 0}, "failures": ["client 1 never connected"]}, "client 1 never connected"),
    ({"summary": {"replies": 0, "errors": {"refused-by-server": 1, "eof": 0}}},
     "its connections ended: 1 refused-by-server"),
    ({"summary": {"replies": 0}}, "no reply to one request"),
])
def test_a_first_exchange_is_answered_or_says_why_not(results: dict[str, Any], why: str | None) -> None:
    assert reach.answered(results) == why


# -- model.yaml: slow:, closes_idle:, class: ---------------------------------------------

def write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "srv"
    folder.mkdir()
    (folder / "model.yaml").write_text("name: srv\nkind: server\nsummary: s\ndescription: d\n" + text)
    return folder / "model.yaml"


@pytest.mark.parametrize("text, message", [
    ("slow: {request: PING}\nexpect: {}\n", "slow is {request: one line of text, ms: a whole number from 1 to 60000}"),
    ("slow: {request: PING, ms: 0}\nexpect: {}\n", "slow is {request"),
    ("expect:\n  slow_stalls_others: true\n", "slow_stalls_others needs a top-level slow:"),
    ("closes_idle: sometimes\nexpect: {}\n", "closes_idle is true or false"),
    ("class: hydra\nexpect: {}\n", "class is 'hydra'; allowed: one-at-a-time |"),
])
def test_bad_declarations_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("|", r"\|")):
        models.load_model(write(tmp_path, text))


def test_every_real_server_declares_its_slow_request_and_class() -> None:
    servers = {n: m for n, m in models.all_models().items() if m.kind == "server"}
    assert {n: m.expect.get("slow_stalls_others") for n, m in servers.items() if "slow" in m.spec} == {
        "apache-prefork": False, "apache-worker": False, "apache-event": False, "postgres": False, "redis": True}
    assert all(m.spec.get("class") in models.CLASSES for m in servers.values())
    assert [n for n, m in servers.items() if m.spec.get("closes_idle")] == ["apache-event"]


def test_workers_names_every_target_with_a_pool(capsys: pytest.CaptureFixture[str]) -> None:
    from lab import cli
    assert cli.main(["up", "nginx", "--workers", "2", "--no-swarm"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["lab: error: nginx has no pool: --workers applies to targets with one (apache-event, "
                     "apache-prefork, apache-worker, prefork, threadpool)"], lines


def test_a_workloads_flags_speak_the_targets_protocol() -> None:
    flags = {"clients": 50, "pattern": "pingpong", "size": 64}
    assert reach.workload_flags("line", flags) == flags
    assert reach.workload_flags("redis", flags) == {"clients": 50, "pattern": "pingpong", "protocol": "redis"}
    assert reach.done_results(b'{"t":1,"ev":"start"}\n{"t":2,"ev":"done","replies":1,"errors":{},"failures":[]}\n') \
        == {"summary": {"replies": 1, "errors": {}}, "failures": []}
    assert reach.answered(reach.done_results(b"")) == "the swarm said nothing"
