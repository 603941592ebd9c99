"""The live view's model and screen, from events alone (no Docker, no clock):
who is served, who waits, grouped lanes, and agreement with the judge's
served-at-once figure on the same trace."""

from __future__ import annotations

import json

from rich.console import Console

from lab.measure import analysis
from lab.watch.live import parse
from lab.watch.render import render
from lab.watch.state import ACCEPTED, CLOSED, SERVED, STALLED, WAITING, Board

A, B, C = "10.0.0.2:4001", "10.0.0.2:4002", "10.0.0.2:4003"


def server(t: float, ev: str, conn: str | None = None, **kw: object) -> dict:
    return {"t": t, "ev": ev, "model": "m", "pid": 7, "tid": 7, **({"conn": conn} if conn else {}), **kw}


def swarm(t: float, ev: str, conn: str | None = None, **kw: object) -> dict:
    return {"t": t, "ev": ev, "model": "swarm", "pid": 9, "tid": 9, **({"conn": conn} if conn else {}), **kw}


def exchange(t: float, conn: str, client: int) -> list[tuple[dict, str]]:
    """One request and its reply, as the server and the swarm log them."""
    return [(server(t, "recv", conn, bytes=9), "server"), (server(t + 0.001, "send", conn, bytes=9), "server"),
            (swarm(t + 0.002, "reply", conn, client=client), "swarm")]


def feed(board: Board, events: list[tuple[dict, str]]) -> None:
    for e, source in sorted(events, key=lambda x: x[0]["t"]):
        board.feed(e, source)


def blocking_trace(until: float) -> list[tuple[dict, str]]:
    """The classic swarm against a blocking server: all three connect, only client 1 is accepted."""
    events = [(swarm(0.0, "start", clients=3), "swarm")]
    events += [(swarm(0.01, "connect", c, client=i), "swarm") for i, c in enumerate((A, B, C), 1)]
    events.append((server(0.02, "accept", A), "server"))
    t = 0.03
    while t < until:
        events += exchange(t, A, 1)
        t += 0.05
    return events


def test_blocking_one_served_two_waiting_since_they_connected() -> None:
    board = Board("blocking")
    feed(board, blocking_trace(5.0))
    screen = board.screen(now=5.0)
    assert (screen.served, screen.of, screen.most) == (1, 3, 1)
    by = {lane.label: lane for lane in screen.lanes}
    assert by["client 1"].status == SERVED and by["client 1"].replies == 100
    assert by["client 2"].status == WAITING and by["client 3"].status == WAITING
    assert abs(by["client 2"].waited_s - 4.99) < 0.01  # waiting since it connected
    assert by["client 1"].waited_s < 0.05


def test_threads_all_served_and_interleaved() -> None:
    board = Board("threads")
    events = [(swarm(0.0, "start", clients=3), "swarm")]
    for i, c in enumerate((A, B, C), 1):
        events += [(swarm(0.01, "connect", c, client=i), "swarm"), (server(0.02, "accept", c), "server")]
        events += [e for k in range(20) for e in exchange(0.03 + 0.05 * k + 0.001 * i, c, i)]
    feed(board, events)
    screen = board.screen(now=1.05)
    assert (screen.served, screen.of) == (3, 3)
    assert all(lane.status == SERVED for lane in screen.lanes)


def test_a_served_client_without_replies_for_a_while_is_stalled_and_still_served() -> None:
    """asyncio during BLOCK 500: the others get nothing for half a second, yet are being served."""
    board = Board()
    feed(board, [(server(0.0, "accept", A), "server")] + [e for k in range(10) for e in exchange(0.05 * k, A, 1)])
    assert board.screen(now=0.5).lanes[0].status == SERVED
    later = board.screen(now=1.2)
    assert later.lanes[0].status == STALLED and later.served == 1


def test_seen_from_the_server_alone_the_unaccepted_wait_in_the_backlog() -> None:
    """The tour reads the probed server's trace only: clients asked but not
    yet accepted are shown as waiting, and said to be in the listen backlog."""
    board = Board(expected=3)
    feed(board, [(server(0.0, "accept", A), "server"), *[(e, s) for e, s in exchange(0.01, A, 1) if s == "server"]])
    screen = board.screen(now=0.5)
    assert (screen.served, screen.of, screen.unseen) == (1, 3, 2)
    assert "listen backlog" in screen.unseen_why
    assert screen.lanes[0].replies == 1  # counted from the server's sends


def test_accepted_but_silent_is_neither_served_nor_waiting_unseen() -> None:
    board = Board(expected=2)
    board.feed(server(0.0, "accept", A), "server")
    screen = board.screen(now=1.0)
    assert screen.lanes[0].status == ACCEPTED and screen.served == 0 and screen.unseen == 1


def test_closing_ends_service_and_the_peak_is_kept() -> None:
    board = Board()
    feed(board, [(server(0.0, "accept", A), "server"), (server(0.0, "accept", B), "server"),
                 *exchange(0.1, A, 1), *exchange(0.1, B, 2), (server(0.2, "close", A, reason="eof"), "server")])
    screen = board.screen(now=0.25)
    assert screen.served == 1 and screen.most == 2
    assert {lane.status for lane in screen.lanes} == {CLOSED, SERVED}
    board.reset("next probe", expected=4)
    assert board.screen(now=0.7).served == 0 and board.most == 0 and board.expected == 4


def test_the_peak_is_the_judges_served_at_once_figure_on_the_same_trace() -> None:
    """A prefork-like trace (two at a time, a third after one leaves): the
    board's peak equals analysis.peak_overlap of the judge's served spans."""
    events = []
    for conn, start, end in ((A, 0.0, 1.0), (B, 0.2, 1.5), (C, 1.0, 2.0)):
        events += [(server(start, "accept", conn), "server"), (server(start + 0.01, "recv", conn, bytes=5), "server"),
                   (server(start + 0.02, "send", conn, bytes=5), "server"), (server(end, "close", conn), "server")]
    board = Board()
    feed(board, events)
    spans = analysis.served_spans([e for e, _ in sorted(events, key=lambda x: x[0]["t"])], {A: 1, B: 2, C: 3}, 9.0)
    assert board.most == analysis.peak_overlap(spans.values()) == 2


def test_the_screen_says_served_at_once_with_processes_threads_and_cpu() -> None:
    board = Board("lab watch · blocking")
    feed(board, blocking_trace(1.0))
    board.tasks(1, [1])
    board.cpu(0.01)
    console = Console(record=True, width=120, color_system=None)
    console.print(render(board.screen(now=1.0)))
    text = console.export_text()
    assert "served at once: 1 of 3" in text
    assert "processes: 1" in text and "threads: 1" in text and "ps huH p PID | wc -l" in text
    assert "CPU: 0.01 cores" in text
    assert "client 2" in text and "waiting" in text
    assert "recv" in text  # the last server events


def test_many_clients_are_grouped_to_fit() -> None:
    board = Board(expected=1000)
    for i in range(1000):
        conn = f"10.0.1.{i // 250}:{5000 + i}"
        board.feed(swarm(0.0, "connect", conn, client=i + 1), "swarm")
        if i % 2 == 0:
            for e, s in exchange(0.1, conn, i + 1):
                board.feed(e, s)
    console = Console(record=True, width=140, height=40, color_system=None)
    console.print(render(board.screen(now=0.2), max_lanes=12))
    text = console.export_text()
    assert "served at once: 500 of 1000" in text
    assert len(text.splitlines()) < 30, text
    assert "1–84" in text  # a row per group of 84 clients


def test_log_lines_become_events_on_this_machines_clock() -> None:
    line = json.dumps(server(105.5, "recv", A, bytes=3)).encode()
    assert parse(line, offset=100.0)["t"] == 5.5
    assert parse(b"Traceback (most recent call last):") is None
    assert parse(b'{"no": "event"}') is None
