"""Structured events: one JSON object per line on stdout.

Every server and the swarm write the same shape, so the lab can prove
behaviour from traces:

    {"t": 5123.004211, "ev": "accept", "model": "threads", "pid": 7,
     "tid": 8, "conn": "172.20.0.3:41830"}

``t`` is CLOCK_MONOTONIC, which containers on one host share, so events from
the server and from the swarm can be laid on one time axis.  The ``start``
event also carries ``wall`` (epoch seconds) to anchor that axis.

Levels: ``off`` keeps only start, stop and errors; ``conn`` adds connection
events (accept, close); ``msg`` adds one event per recv and send.  Throughput
runs use ``conn`` so tracing does not change what it measures.

Each event is written with one write(2) of less than PIPE_BUF bytes, so lines
from threads and forked children never interleave.  Single-threaded event
loops may buffer (``autoflush=False``) and call flush() once per loop turn.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

LEVELS = {"off": 0, "conn": 1, "msg": 2}
PREVIEW = 80  # bytes of payload shown in msg-level events
_LINE_MAX = 4000  # below PIPE_BUF (4096): one write, never torn


class Trace:
    def __init__(self, model: str, level: str = "msg", fd: int = 1, autoflush: bool = True) -> None:
        if level not in LEVELS:
            raise ValueError(f"trace level must be one of {', '.join(LEVELS)}")
        self.model = model
        self.level = LEVELS[level]
        self.fd = fd
        self.autoflush = autoflush
        self._pending: list[bytes] = []

    @property
    def conns(self) -> bool:
        return self.level >= 1

    @property
    def msgs(self) -> bool:
        return self.level >= 2

    def event(self, ev: str, conn: str | None = None, **fields: Any) -> None:
        """Record one event, whatever the level (start, stop, error, ...)."""
        record: dict[str, Any] = {
            "t": round(time.monotonic(), 6),
            "ev": ev,
            "model": self.model,
            "pid": os.getpid(),
            "tid": threading.get_native_id(),
        }
        if conn is not None:
            record["conn"] = conn
        record.update(fields)
        line = json.dumps(record, separators=(",", ":"), default=str).encode()
        if len(line) > _LINE_MAX:
            record = {k: record[k] for k in ("t", "ev", "model", "pid", "tid")}
            record["truncated"] = len(line)
            line = json.dumps(record, separators=(",", ":")).encode()
        self._pending.append(line + b"\n")
        if self.autoflush:
            self.flush()

    def conn(self, ev: str, conn: str, **fields: Any) -> None:
        """A connection event (accept, close, ...): kept at level conn and up."""
        if self.level >= 1:
            self.event(ev, conn, **fields)

    def msg(self, ev: str, conn: str, data: bytes, **fields: Any) -> None:
        """A per-message event (recv, send): kept only at level msg."""
        if self.level >= 2:
            text = data[:PREVIEW].decode("utf-8", "replace")
            self.event(ev, conn, bytes=len(data), data=text, **fields)

    def flush(self) -> None:
        if not self._pending:
            return
        chunks, self._pending = self._pending, []
        for chunk in chunks if self.autoflush else [b"".join(chunks)]:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self.fd, view):]
