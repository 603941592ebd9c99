"""What a worker tells the parent when its run ends: ``WorkerReport``.

A worker process sends its report up a pipe as one JSON object
(``to_json``); the parent reads it back (``from_json``) and results.py
merges the reports into results.json.  The histograms travel in their own
JSON form (ioschema.hist: mergeable by bucket), the records and timeline as
the rows results.json will carry (SCHEMA.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

Json = dict[str, Any]


@dataclass
class WorkerReport:
    """One worker's run, whole: its figures, records, timeline and actions."""

    worker: int  # its index among the parent's workers
    pid: int
    clients: int  # clients in its share
    started: float  # the run's start (monotonic), shared by every worker
    ended: float  # when its loop ended
    end_reason: str  # ioschema.END_REASONS
    latency: Json  # Histogram.to_json(): pattern replies after the warm-up, microseconds
    connect: Json  # successful connects, handshake included
    handshake: Json  # TCP connect to ready, protocols with a handshake
    totals: dict[str, int]  # book.Tally.totals
    errors: dict[str, int]  # per error kind, every connection
    closed_by: dict[str, int]  # close reason -> connections
    clients_connected: int  # clients that were ready at least once
    last_first_connect: float | None  # when the last of them first became ready
    records: list[Json]  # per connection (SCHEMA.md `connections[]`), up to its share of --records-max
    records_dropped: int
    timeline: list[Json]  # per connection: {"client", "conn", "pairs"}
    timeline_capped: bool
    actions: list[Json]  # its scripted actions (SCHEMA.md `actions[]`)
    cpu: dict[str, float]  # user_s, sys_s, measured_s (after the warm-up, until the loop ended)
    warnings: list[str]
    fast_path: str  # "native" or "python"

    def to_json(self) -> Json:
        # not dataclasses.asdict: that deep-copies every record on the way
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Json) -> "WorkerReport":
        return cls(**{f.name: data[f.name] for f in fields(cls)})
