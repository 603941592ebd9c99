"""Following a unit's JSON-line events, with bounded waits.

    events = EventStream(unit)
    accept = events.wait_for(lambda e: e["ev"] == "accept", timeout=5)

A wait that times out raises TraceTimeout carrying the last events seen, so
a check that fails says what the server did instead.  Reading is done by a
background thread from the engine's log stream: the unit is never held up
by a slow reader.  Each event is held to TRACE_EVENT as it is read
(lab/measure/evidence.py): a broken one stops the reading, and the next
look at the stream raises its EvidenceError (exit 70).  A unit on another
machine (a Swarm node) stamps its events on that machine's clock; they are
moved onto this machine's (its Clock, lab/engine/base.py), so every trace
and reading shares one axis.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from ..errors import EvidenceError
from .evidence import check_event

Event = dict[str, Any]


class TraceTimeout(AssertionError):
    """A bounded wait on a trace ran out; the message shows the trace tail."""


class EventStream:
    def __init__(self, unit: Any, name: str | None = None) -> None:
        """``unit``: a lab.engine.Unit (or anything with logs() and a name)."""
        self.name = name or unit.name
        clock = unit.clock() if hasattr(unit, "clock") else None
        self._offset = clock.offset_s if clock is not None else 0.0
        self.events: list[Event] = []
        self.other: list[str] = []  # lines that were not JSON events (tracebacks, ...)
        self.ended = False
        self.error: str | None = None  # why reading stopped, if not because it ended or was closed
        self.broken: EvidenceError | None = None  # an event outside TRACE_EVENT: raised at the next look
        self._lines = 0
        self._closing = False
        self._cond = threading.Condition()
        self._stream = unit.logs(stream=True, follow=True, stdout=True, stderr=True)
        self._thread = threading.Thread(target=self._pump, daemon=True, name=f"events-{self.name}")
        self._thread.start()

    def _pump(self) -> None:
        pending = b""
        try:
            for chunk in self._stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                parsed: list[Event] = []
                try:
                    self._parse(lines, parsed)
                finally:  # a broken event: those before it are kept, none after
                    with self._cond:
                        self.events.extend(parsed)
                        self._cond.notify_all()
        except EvidenceError as exc:
            self.broken = exc
        except Exception as exc:  # closed under us by close(): that is how it ends; else say why
            if not self._closing:
                self.error = f"reading {self.name}'s log stopped: {type(exc).__name__}: {exc}"
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _parse(self, lines: list[bytes], into: list[Event]) -> None:
        """Each line's event into ``into``, held to TRACE_EVENT first; other lines into ``other``."""
        for line in lines:
            self._lines += 1
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not (isinstance(event, dict) and "ev" in event):
                self.other.append(line.decode(errors="replace"))
                continue
            check_event(event, f"{self.name}'s trace, line {self._lines}")
            if self._offset and isinstance(event.get("t"), (int, float)):
                event["t"] -= self._offset  # onto this machine's clock
            into.append(event)

    def _whole(self) -> None:
        """Raise the broken event's error: nothing is judged from a broken trace."""
        if self.broken is not None:
            raise self.broken

    def matching(self, match: Callable[[Event], bool]) -> list[Event]:
        self._whole()
        with self._cond:
            return [e for e in self.events if match(e)]

    def wait_for(self, match: Callable[[Event], bool], timeout: float, count: int = 1,
                 what: str = "matching events") -> Event:
        """Block until ``count`` events match; return the count-th.  Each
        event is looked at once, however long the trace grows."""
        deadline = time.monotonic() + timeout
        seen = found = 0
        with self._cond:
            while True:
                self._whole()
                for event in self.events[seen:]:
                    if match(event):
                        found += 1
                        if found == count:
                            return event
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    why = (self.error or "the unit's output ended") if self.ended \
                        else f"{timeout:g}s passed"
                    raise TraceTimeout(
                        f"{self.name}: {found} of {count} {what} before {why}; last events: "
                        f"{self.events[-6:]}; other output: {self.other[-3:]}")
                self._cond.wait(left)

    def close(self) -> None:
        self._closing = True
        try:
            self._stream.close()
        except Exception:  # already closed
            pass
