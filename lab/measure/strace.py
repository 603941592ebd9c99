"""System calls counted by `strace -c -f`: its summary table, read into a record.

    counts = parse_summary(text)          # the sidecar's output (lab/run/tracer.py)
    counts.calls["epoll_wait"], counts.errors["recvfrom"]
    grouped(counts)                       # {"recv": n, "send": n, "eagain": n, ...}

`strace -c` prints, when it is stopped (SIGINT), one row per system call:

    % time     seconds  usecs/call     calls    errors syscall
    ------ ----------- ----------- --------- --------- ----------------
     29.29    0.000087          29         3           sendto
      4.71    0.000014           7         2         1 accept4
    ------ ----------- ----------- --------- --------- ----------------
    100.00    0.000297           9        33         1 total

Its errors column counts failed returns of each call, whatever the errno.
A non-blocking server's failed recv, send and accept are EAGAIN (a reset
peer is the rare other one), so the lab counts the errors of those families
as EAGAIN returns: cheap (no per-call output to write and parse) and, for
these calls, the same figure within a few resets.  The groups are the
article's names; each sums the calls that do that job (Python's socket.recv
is recvfrom, a forked child's read is read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# The article's names, and the system calls that do each job on Linux.
GROUPS: dict[str, tuple[str, ...]] = {
    "recv": ("recvfrom", "recvmsg", "recvmmsg", "read", "readv", "recv"),
    "send": ("sendto", "sendmsg", "sendmmsg", "write", "writev", "send"),
    "accept": ("accept", "accept4"),
    "select": ("select", "pselect6", "_newselect"),
    "poll": ("poll", "ppoll"),
    "epoll_wait": ("epoll_wait", "epoll_pwait", "epoll_pwait2"),
    "io_uring_enter": ("io_uring_enter",),
    "futex": ("futex",),
    "clone": ("clone", "clone3", "fork", "vfork"),
}
EAGAIN_FROM = ("recv", "send", "accept")  # the groups whose errors are EAGAIN returns
SEPARATOR = "------"
REFUSED = "Operation not permitted"  # what strace says when the host will not let it attach


@dataclass
class SyscallCounts:
    """One traced window: calls and failed returns by system call."""

    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def group(self, name: str) -> int:
        return sum(self.calls.get(c, 0) for c in GROUPS[name])

    def eagain(self) -> int:
        return sum(self.errors.get(c, 0) for g in EAGAIN_FROM for c in GROUPS[g])


def _row(line: str) -> tuple[str, int, int] | None:
    """(syscall, calls, errors) of one table row: % time, seconds,
    usecs/call, calls, errors (blank when none), syscall; None for anything else."""
    parts = line.split()
    if len(parts) not in (5, 6) or not all(p.replace(".", "", 1).isdigit() for p in parts[:-1]):
        return None
    name = parts[-1]
    if not name.replace("_", "").isalnum():
        return None
    return name, int(parts[3]), int(parts[4]) if len(parts) == 6 else 0


def parse_summary(text: str) -> SyscallCounts:
    """The summary table of `strace -c` in ``text`` (other lines, such as
    strace's "Process N attached", are skipped).  ValueError if there is no table."""
    counts = SyscallCounts()
    seen_header = False
    for line in text.splitlines():
        if line.lstrip().startswith("% time"):
            seen_header = True
            continue
        if not seen_header or line.startswith(SEPARATOR):
            continue
        row = _row(line)
        if row is None:
            continue
        name, calls, errors = row
        if name == "total":  # older strace leaves its usecs/call blank: the sum below is the total
            continue
        counts.calls[name] = counts.calls.get(name, 0) + calls
        if errors:
            counts.errors[name] = counts.errors.get(name, 0) + errors
    if not seen_header:
        raise ValueError("no strace summary table in its output")
    return counts


def grouped(counts: SyscallCounts) -> dict[str, int]:
    """Calls by the article's names, with EAGAIN returns as ``eagain``."""
    out = {name: counts.group(name) for name in GROUPS}
    out["eagain"] = counts.eagain()
    return out


def per_reply(counts: SyscallCounts, replies: float) -> dict[str, float]:
    """Each group per reply; ValueError for a denominator no run can have."""
    if isinstance(replies, bool) or not isinstance(replies, (int, float)) or not math.isfinite(replies) \
            or replies <= 0:
        raise ValueError(f"replies in the traced window must be a positive number, got {replies!r}")
    return {name: round(n / replies, 4) for name, n in grouped(counts).items()}
