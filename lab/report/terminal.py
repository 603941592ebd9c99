"""What `lab compare` shows on the terminal: progress bars while it runs
(one line per measured workload where stderr is not a terminal), each
workload's figures in one line as it is measured, and the summary table at
the end, read back from the results.json just written."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rich.markup import escape

from ..console import err, say
from .data import PARTIAL


class Progress:
    """Progress bars on a terminal; one line per measured workload elsewhere."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._bars: Any = None
        if err.is_terminal:
            from rich.progress import (BarColumn, Progress as Bars, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self._bars = Bars(TextColumn("{task.description:<34}"), BarColumn(bar_width=30),
                              TextColumn("{task.fields[detail]:>11}"), TimeElapsedColumn(),
                              TimeRemainingColumn(), console=err, transient=False)
            self._all = self._bars.add_task("all models", total=total, detail=f"0/{total}")
            self._step = self._bars.add_task("", total=1.0, visible=False, detail="")

    def __enter__(self) -> "Progress":
        if self._bars:
            self._bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bars:
            self._bars.__exit__(*exc)

    def note(self, text: str) -> None:
        if self._bars:
            self._bars.console.print(f"[dim]lab:[/] {escape(text)}", highlight=False)
        else:
            say(text)

    @contextmanager
    def step(self, label: str, seconds: float) -> Iterator[None]:
        """A step of known length: its own bar follows the clock (a UI
        refresh; nothing waits on it)."""
        if not self._bars:
            yield
            self.done += 1
            return
        began = time.monotonic()
        self._bars.reset(self._step, total=seconds, description=f"  {label}", visible=True,
                         detail=f"0.0/{seconds:.1f} s")
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(0.1):
                now = min(seconds, time.monotonic() - began)
                self._bars.update(self._step, completed=now, detail=f"{now:.1f}/{seconds:.1f} s")

        ticker = threading.Thread(target=tick, daemon=True, name="progress")
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            self._bars.update(self._step, visible=False)
        self.done += 1
        self._bars.update(self._all, completed=self.done, detail=f"{self.done}/{self.total}")


def one_line(model: str, rep: int, workload: str, got: dict[str, Any]) -> str:
    """A measured workload record (results.json) in one line, as `lab compare` goes."""
    head = f"{model} {rep} {workload}:"
    if got.get("cost") and not got.get("error"):  # traced: its verdicts, never a speed
        return f"{head} " + "; ".join(f"{v['expect']} {v['observed']}" for v in got["cost"]["verdicts"])
    if got.get("swarm") is None:
        return f"{head} FAILED: {got.get('error')}"
    cpu = got["server_cpu"]
    if got.get("check"):
        text = f"{head} {got['check']['observed']}"
    else:
        s = got["swarm"]["summary"]
        lat = s["latency"]
        text = f"{head} {s['replies_per_s']:,.0f} replies/s"
        if lat["count"]:
            text += f", p50 {lat['p50_us'] / 1000:.2f} ms, p99 {lat['p99_us'] / 1000:.2f} ms"
        if s["unanswered"]:
            text += f", {s['unanswered']:,} requests unanswered"
        per = got.get("replies_per_client") or []
        if per and not all(per):
            text += f", {sum(1 for n in per if n)} of {len(per)} connections served {PARTIAL}"
    if (got.get("wrk") or {}).get("requests_per_s") is not None:
        text += f"; wrk {got['wrk']['requests_per_s']:,.0f} requests/s"
    if cpu["cores"] is not None:
        text += f", server {cpu['cores']:.2f} cores"
    text += f", swarm {got['swarm']['cpu']['per_s']:.2f} cores"
    if got.get("error"):
        text += f"; FAILED: {got['error']}"
    return text


def print_table(console: Any, table: Any) -> None:
    """A rich table, never squeezed: a pipe or a file counts as 80 columns."""
    from rich.measure import Measurement

    narrow = console.width
    if not console.is_terminal:
        console.width = max(narrow, Measurement.get(console, console.options.update(width=1000), table).maximum)
    try:
        console.print(table)
    finally:
        console.width = narrow


def print_summary(console: Any, run_dir: Path, seconds: float) -> None:
    """The summary table on the terminal, and where the report is."""
    from . import load, tables

    print_table(console, tables.rich_table(tables.summary(load(run_dir))))
    console.print(f"report: {run_dir / 'report.html'} (also report.md, results.json, results.csv) "
                  f"after {seconds:.0f} s")
