"""The live view's model: who is served and who waits, built from events alone.

    board = Board(expected=3)
    board.feed(event, source="server")     # a server's JSON-line event (lab logs reads the same)
    board.feed(event, source="swarm")      # the client swarm's
    board.tasks(sample)                    # the server's processes and threads (ps)
    board.cpu(cores)                       # its CPU, in cores
    screen = board.screen(now)             # what the renderer draws, at one moment

A client is *served* from the server's first read of its request until its
connection closes: the same span the served-at-once judge counts
(lab/measure/analysis.served_spans), so "served at once: K of N" on the
screen is the judge's figure at that instant.  Where only the swarm's events
are read (a real server writes no trace), its first reply stands for the
server's first read.  A client the server has not read yet is *waiting*: it
may be connected (the kernel completed its handshake) or, seen only from
the server, not yet accepted at all.

Nothing here reads a clock or a container: ``now`` is given, so the state is
replayed exactly in tests.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

Event = dict[str, Any]

STALLED_S = 0.2  # a served client with no reply for this long (and 3 of its gaps) is shown stalled
RECENT_EVENTS = 5  # server events kept for the screen's tail
GAPS_KEPT = 8  # reply gaps remembered per client, for its usual pace

# The events that move a lane, per source (the view's own choice among ioschema's events).
LANE_SERVER_EVENTS = frozenset({"accept", "recv", "send", "close"})
LANE_SWARM_EVENTS = frozenset({"connect", "ready", "reply", "close"})

WAITING, ACCEPTED, SERVED, STALLED, CLOSED = "waiting", "accepted", "served", "stalled", "closed"


@dataclass
class Lane:
    """One client's connection, as its events tell it."""

    conn: str  # client address ip:port: the same string in the server's and the swarm's events
    seen: int  # order of first sight (a lane label when the swarm's number is unknown)
    client: int | None = None  # the swarm's client number, from its events
    connected_t: float | None = None  # the swarm connected, or the server accepted (first seen)
    accepted_t: float | None = None  # the server accepted it
    served_t: float | None = None  # the server's first read of a request (or the first reply)
    closed_t: float | None = None
    close_reason: str | None = None
    server_sends: int = 0
    swarm_replies: int = 0
    last_reply_t: float | None = None
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=GAPS_KEPT))

    @property
    def replies(self) -> int:
        """Replies as the client counted them, else as the server sent them."""
        return self.swarm_replies or self.server_sends

    def replied(self, t: float) -> None:
        if self.last_reply_t is not None and t > self.last_reply_t:
            self.gaps.append(t - self.last_reply_t)
        self.last_reply_t = t if self.last_reply_t is None else max(self.last_reply_t, t)

    def status(self, now: float) -> str:
        if self.closed_t is not None:
            return CLOSED
        if self.served_t is None:
            return ACCEPTED if self.accepted_t is not None else WAITING
        since = now - (self.last_reply_t if self.last_reply_t is not None else self.served_t)
        pace = statistics.median(self.gaps) if self.gaps else 0.0
        return STALLED if since > max(STALLED_S, 3 * pace) else SERVED

    def waited(self, now: float) -> float:
        """Seconds since its last reply; before any, since it was first seen."""
        if self.closed_t is not None:
            return 0.0
        since = self.last_reply_t if self.last_reply_t is not None else self.connected_t
        return max(0.0, now - since) if since is not None else 0.0

    @property
    def label(self) -> str:
        return f"client {self.client}" if self.client is not None else f"conn {self.seen}"


@dataclass(frozen=True)
class LaneView:
    label: str
    conn: str
    status: str
    replies: int
    waited_s: float


@dataclass(frozen=True)
class Tasks:
    """The server's process table at one moment: the article's `ps huH p PID | wc -l`, per process."""

    processes: int
    per_process: tuple[int, ...]  # threads of each process, oldest first

    @property
    def threads(self) -> int:
        return sum(self.per_process)


@dataclass(frozen=True)
class Screen:
    """Everything the renderer draws, at one moment."""

    title: str
    served: int  # served at once now (the judge's definition)
    of: int  # the clients there are, or were asked for
    most: int  # the most served at once since the board was (re)set: the judge's peak
    lanes: list[LaneView]
    unseen: int  # clients asked for that no event has shown yet
    unseen_why: str  # what unseen means here (not connected / not accepted)
    tasks: Tasks | None
    cores: float | None
    events: list[str]
    note: str = ""


class Board:
    """The state of one topology (or one tour probe) as its events arrive."""

    def __init__(self, title: str = "", expected: int | None = None) -> None:
        self.title = title
        self.expected = expected  # clients asked for (the swarm's start event says it too)
        self.note = ""
        self.lanes: dict[str, Lane] = {}
        self.recent: deque[str] = deque(maxlen=RECENT_EVENTS)
        self.swarm_seen = False
        self.origin: float | None = None  # the first event's time: the tail's times are relative to it
        self._tasks: Tasks | None = None
        self._cores: float | None = None
        self.most = 0

    def reset(self, title: str | None = None, expected: int | None = None, note: str = "") -> None:
        """A new probe or topology: forget the clients, keep the server's figures."""
        self.lanes.clear()
        self.most = 0
        self.swarm_seen = False
        self.expected = expected
        self.note = note
        if title is not None:
            self.title = title

    # -- input ---------------------------------------------------------------------
    def feed(self, event: Event, source: str) -> None:
        """One event; ``source``: "server" or "swarm" (whose events these are)."""
        ev, t = event.get("ev"), event.get("t")
        if not isinstance(t, (int, float)):
            return
        if self.origin is None:
            self.origin = float(t)
        if source == "swarm":
            self._swarm(event, ev, float(t))
        else:
            self._server(event, ev, float(t))
        self.most = max(self.most, self.served_now())

    def feed_all(self, events: Iterable[Event], source: str) -> None:
        for e in events:
            self.feed(e, source)

    def tasks(self, processes: int, per_process: Iterable[int]) -> None:
        self._tasks = Tasks(processes, tuple(per_process))

    def cpu(self, cores: float | None) -> None:
        self._cores = cores

    def _lane(self, conn: str, t: float) -> Lane:
        lane = self.lanes.get(conn)
        if lane is None:
            lane = self.lanes[conn] = Lane(conn, len(self.lanes) + 1, connected_t=t)
        return lane

    def _server(self, e: Event, ev: Any, t: float) -> None:
        self.recent.append(self._line(e, t))
        conn = e.get("conn")
        if ev not in LANE_SERVER_EVENTS or not isinstance(conn, str):
            return
        lane = self._lane(conn, t)
        if ev == "accept":
            lane.accepted_t = lane.accepted_t or t
        elif ev == "recv" and e.get("bytes"):
            lane.accepted_t = lane.accepted_t or t
            lane.served_t = lane.served_t or t
        elif ev == "send":
            lane.server_sends += 1
            if not self.swarm_seen:
                lane.replied(t)
        elif ev == "close":
            lane.closed_t, lane.close_reason = t, e.get("reason")

    def _swarm(self, e: Event, ev: Any, t: float) -> None:
        if ev == "start" and isinstance(e.get("clients"), int):
            self.expected = e["clients"]
        conn = e.get("conn")
        if ev not in LANE_SWARM_EVENTS or not isinstance(conn, str):
            return
        self.swarm_seen = True
        lane = self._lane(conn, t)
        if isinstance(e.get("client"), int):
            lane.client = e["client"]
        if ev == "reply":
            lane.swarm_replies += 1
            lane.replied(t)
            lane.served_t = lane.served_t or t  # no server trace (a real server): the first reply
        elif ev == "close" and lane.closed_t is None:
            lane.closed_t, lane.close_reason = t, e.get("reason")

    def _line(self, e: Event, t: float) -> str:
        """A server event as `lab logs` shows it, shortened for the screen."""
        details = " ".join(f"{k}={v}" for k, v in e.items()
                           if k not in ("t", "ev", "model", "pid", "tid", "conn", "data", "wall"))
        return f"{t - (self.origin or t):8.3f}  {e.get('ev', '?'):<7} {e.get('conn', ''):<21} {details}"[:110]

    # -- output --------------------------------------------------------------------
    def served_now(self) -> int:
        """Clients served at this moment: read by the server and not gone (stalled ones too)."""
        return sum(1 for lane in self.lanes.values() if lane.served_t is not None and lane.closed_t is None)

    def screen(self, now: float) -> Screen:
        lanes = sorted(self.lanes.values(), key=lambda x: (x.client if x.client is not None else 10**9, x.seen))
        views = [LaneView(x.label, x.conn, x.status(now), x.replies, x.waited(now)) for x in lanes]
        of = max(self.expected or 0, len(lanes))
        return Screen(self.title, self.served_now(), of, self.most, views, max(0, of - len(lanes)),
                      "not connected yet" if self.swarm_seen else "not accepted yet: in the listen backlog",
                      self._tasks, self._cores, list(self.recent), self.note)
