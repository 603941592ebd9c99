"""The "cost per reply" section: system calls by name and context switches, per model.

Read from the syscalls workload's records (lab/report/results.py
cost_record): the median over the repeats of each figure.  System calls
come from traced runs (strace in a sidecar: each call stops the server
twice), so they are counts, never speeds; context switches come from an
untraced run.  The io_uring model is drawn beside epoll, the readiness
loop it is set against.
"""

from __future__ import annotations

import statistics
from typing import Any, Iterator

from .data import Run, Workload
from .tables import DASH, Table, num

CALLS = ("recv", "send", "eagain", "accept", "select", "poll", "epoll_wait", "io_uring_enter", "futex", "clone")
SWITCHES = ("voluntary", "involuntary")
BESIDE = {"uring": "epoll"}  # drawn next to this model


def ordered(run: Run) -> list[str]:
    """The run's models in its order, each of BESIDE moved next to its partner."""
    models = [m for m in run.models if m not in BESIDE or BESIDE[m] not in run.models]
    for m, partner in BESIDE.items():
        if m in run.models and partner in run.models:
            models.insert(models.index(partner) + 1, m)
    return models


def _records(run: Run, model: str, workload: str) -> Iterator[dict[str, Any]]:
    for rep in run.repeats(model):
        rec = (rep.get("workloads") or {}).get(workload) or {}
        if rec.get("cost"):
            yield rec["cost"]


def median(run: Run, model: str, workload: str, part: str, name: str) -> float | None:
    """The median over the repeats of one figure (``part``: calls_per_reply, switches_per_reply...)."""
    values = [v for c in _records(run, model, workload)
              if isinstance(v := (c.get(part) or {}).get(name), (int, float))]
    return statistics.median(values) if values else None


def verdicts(run: Run, model: str, workload: str) -> str:
    found = [f"{v['expect']} {'held' if v['ok'] else 'FAILED' if v['ok'] is False else 'not judged'}"
             for c in _records(run, model, workload) for v in c.get("verdicts", [])]
    return "; ".join(dict.fromkeys(found)) or DASH


def table(run: Run, w: Workload) -> Table:
    t = Table(["model", *CALLS, "switches vol.", "switches invol.", "verdicts"], align="l" + "r" * 12 + "l")
    for m in ordered(run):
        if not any(True for _ in _records(run, m, w.name)):
            continue
        cells = [num(median(run, m, w.name, "calls_per_reply", c), 2) for c in CALLS]
        cells += [num(median(run, m, w.name, "switches_per_reply", s), 2) for s in SWITCHES]
        t.add([m, *cells, verdicts(run, m, w.name)])
    t.notes.append("Per reply, the median of the repeats. System calls: 8 clients in ping-pong over kept "
                   "connections, counted by strace (`eagain`: the failed returns of recv, send and accept, "
                   "which in a non-blocking server are EAGAIN); a traced server is slowed by every call, so "
                   "these are counts, not speeds. Context switches: the server's tasks in /proc over the same "
                   "workload untraced (voluntary: it waited; involuntary: the scheduler took the CPU).")
    return t
