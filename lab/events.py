"""Following a container's JSON-line events, with bounded waits.

    events = EventStream(container)
    accept = events.wait_for(lambda e: e["ev"] == "accept", timeout=5)

A wait that times out raises TraceTimeout carrying the last events seen, so
a check that fails says what the server did instead.  Reading is done by a
background thread from the engine's log stream: the container is never held
up by a slow reader.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from docker.models.containers import Container

Event = dict[str, Any]


class TraceTimeout(AssertionError):
    """A bounded wait on a trace ran out; the message shows the trace tail."""


class EventStream:
    def __init__(self, container: Container, name: str | None = None) -> None:
        self.name = name or container.name
        self.events: list[Event] = []
        self.other: list[str] = []  # lines that were not JSON events (tracebacks, ...)
        self.ended = False
        self._cond = threading.Condition()
        self._stream = container.logs(stream=True, follow=True, stdout=True, stderr=True)
        self._thread = threading.Thread(target=self._pump, daemon=True, name=f"events-{self.name}")
        self._thread.start()

    def _pump(self) -> None:
        pending = b""
        try:
            for chunk in self._stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                parsed = []
                for line in lines:
                    try:
                        event = json.loads(line)
                        if isinstance(event, dict) and "ev" in event:
                            parsed.append(event)
                            continue
                    except ValueError:
                        pass
                    self.other.append(line.decode(errors="replace"))
                with self._cond:
                    self.events.extend(parsed)
                    self._cond.notify_all()
        except Exception:  # the stream was closed under us: that is how it ends
            pass
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def matching(self, match: Callable[[Event], bool]) -> list[Event]:
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
                for event in self.events[seen:]:
                    if match(event):
                        found += 1
                        if found == count:
                            return event
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    why = "the container's output ended" if self.ended else f"{timeout:g}s passed"
                    raise TraceTimeout(
                        f"{self.name}: {found} of {count} {what} before {why}; last events: "
                        f"{self.events[-6:]}; other output: {self.other[-3:]}")
                self._cond.wait(left)

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:  # already closed
            pass
