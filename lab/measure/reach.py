"""Reaching a target: the swarm's flags for its protocol, readiness and closes
without the lab's trace.

The lab's own servers (kind: model, reference) write JSON-line events: a
`start` once they listen, a `close` for every connection.  A real server
(kind: server) logs in its own way, so the lab reads what the kernel knows
instead, from the server's network namespace: its socket table
(/proc/net/tcp), read on this machine when the engine is local (nothing runs
in the container), else by one exec of cat.  Reading it never takes a
connection slot, so it cannot disturb a server that serves one client at a
time.

- Ready: something listens on the target's port, and then a first request
  in its protocol gets a reply (postgres listens a moment before it accepts
  sessions; a wrong protocol never gets one).
- Settled: none of the swarm's connections is still open on the server's
  side (ESTABLISHED, or CLOSE_WAIT: the client left, the server has not yet
  closed its end).

The swarm speaks the target's protocol (model.yaml `protocol:`) on its port
(`port:`); a scenario's `{slow}` is the target's own slow request (`slow:`).
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..engine import EngineError, Unit
from ..errors import EnvironmentProblem, UsageError

SLOW = "{slow}"  # in a scenario's `at:` or `message:`: the target's slow request
LISTEN, ESTABLISHED, CLOSE_WAIT = "0A", "01", "08"  # /proc/net/tcp states
POLL_S = 0.1  # how often a state the kernel sends no event about is read again


def traced(model: Any) -> bool:
    """Does the target write the lab's JSON-line trace (start, accept, recv,
    close)?  The lab's models and the native reference do; real servers do not."""
    return getattr(model, "kind", "model") != "server"


def swarm_flags(model: Any, flags: list[str]) -> list[str]:
    """``flags`` for the swarm against ``model``: its protocol (unless given),
    and ``{slow}`` replaced by its slow request."""
    out = []
    slow = (model.spec.get("slow") or {}).get("request") if getattr(model, "spec", None) else None
    for flag in flags:
        if SLOW in flag:
            if not slow:
                raise UsageError(f"a scenario sends {SLOW}, but {model.name}'s model.yaml declares no slow: request")
            flag = flag.replace(SLOW, slow)
        out.append(flag)
    protocol = getattr(model, "protocol", "line")
    if protocol != "line" and not any(f.startswith("--protocol=") for f in out):
        out.append(f"--protocol={protocol}")
    return out


# One request in the target's protocol (its default message), answered or not.
EXCHANGE = ["--clients=1", "--pattern=pingpong", "--count=1", "--duration=4", "--connect-timeout=2",
            "--trace=off"]


def answered(results: dict[str, Any], error_replies_ok: bool = False) -> str | None:
    """None if the swarm's one request (EXCHANGE) got a reply (an error reply
    counts only with ``error_replies_ok``: a server still loading says so in
    one), else why not, in the swarm's words."""
    summary = results.get("summary") or {}
    if summary.get("replies") and (error_replies_ok or not summary.get("error_replies")):
        return None
    if summary.get("replies"):
        return "it answered with an error reply"
    failures = results.get("failures") or []
    errors = {k: n for k, n in (summary.get("errors") or {}).items() if n}
    if failures:
        return str(failures[0])
    if errors:
        return "its connections ended: " + ", ".join(f"{n} {k}" for k, n in errors.items())
    return "no reply to one request"


# -- the socket table -----------------------------------------------------------------

@dataclass(frozen=True)
class Socket:
    local: str  # ip:port
    remote: str
    state: str  # hex, as /proc/net/tcp writes it

    @property
    def port(self) -> int:
        return int(self.local.rsplit(":", 1)[1])


def _address(hexed: str) -> str:
    """/proc/net/tcp's address (IP in host byte order by 32-bit word, port in hex) as ip:port."""
    ip_hex, port_hex = hexed.split(":")
    raw = bytes.fromhex(ip_hex)
    packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(packed)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return f"{ip}:{int(port_hex, 16)}"


def parse_tcp(text: str) -> list[Socket]:
    """The sockets of /proc/net/tcp and tcp6 text (their header lines skipped)."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or ":" not in parts[1] or parts[0] == "sl":
            continue
        try:
            found.append(Socket(_address(parts[1]), _address(parts[2]), parts[3].upper()))
        except ValueError:
            continue
    return found


def socket_table(unit: Unit, procs_dir: str | None = None) -> list[Socket]:
    """The sockets of the server's network namespace now: through one of its
    processes on this machine when the engine is local, else by exec."""
    if procs_dir:
        try:
            with open(os.path.join(procs_dir, "cgroup.procs")) as f:
                pid = f.read().split()[0]
            text = ""
            for name in ("tcp", "tcp6"):
                with open(f"/proc/{pid}/net/{name}") as f:
                    text += f.read()
            return parse_tcp(text)
        except (OSError, IndexError):
            pass  # no process yet, or not this machine's: ask the engine
    code, output = unit.exec(["cat", "/proc/net/tcp", "/proc/net/tcp6"], stderr=False)
    return parse_tcp(output.decode(errors="replace"))


def listening(sockets: Iterable[Socket], port: int) -> bool:
    return any(s.state == LISTEN and s.port == port for s in sockets)


def open_on_server(sockets: Iterable[Socket], conns: Iterable[str]) -> set[str]:
    """Which of the clients ``conns`` (ip:port, as the swarm names them) the
    server still has open: established, or left by the client and not yet closed."""
    wanted = set(conns)
    return {s.remote for s in sockets if s.remote in wanted and s.state in (ESTABLISHED, CLOSE_WAIT)}


# -- waiting on what the kernel knows (bounded) ----------------------------------------

def wait_ready(unit: Unit, port: int, procs_dir: str | None, exchange: Callable[[], str | None],
               timeout: float, name: str) -> float:
    """Until something listens on ``port`` and ``exchange()`` (one request in
    the target's protocol) says None (answered); seconds it took.  One line
    on what went wrong if the unit dies or ``timeout`` passes first."""
    began = time.monotonic()
    deadline = began + timeout
    why = f"nothing listened on port {port}"
    pause = threading.Event()
    while True:
        if not unit.alive():
            raise EnvironmentProblem(f"{name} exited before it was ready; last log lines: {_tail(unit)}")
        try:
            ready = listening(socket_table(unit, procs_dir), port)
        except EngineError as exc:
            ready, why = False, f"its socket table could not be read ({exc})"
        if ready:
            why = exchange() or ""
            if not why:
                return time.monotonic() - began
        if time.monotonic() >= deadline:
            raise EnvironmentProblem(f"{name} was not ready within {timeout:g}s: {why}; last log lines: "
                                     f"{_tail(unit)}")
        pause.wait(POLL_S)


def wait_closed(unit: Unit, procs_dir: str | None, conns: Iterable[str], timeout: float) -> set[str]:
    """Until the server has closed its end of every one of ``conns`` (bounded);
    the ones still open when the bound passed (none: all closed)."""
    conns = set(conns)
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        try:
            still = open_on_server(socket_table(unit, procs_dir), conns)
        except EngineError:
            return conns  # the server is gone: nothing more to read
        if not still or time.monotonic() >= deadline:
            return still
        pause.wait(POLL_S)


def _tail(unit: Unit) -> str:
    try:
        text = unit.logs(tail=3).decode(errors="replace").strip()
    except EngineError:
        return "(no logs)"
    return " | ".join(text.splitlines()) or "(no output)"


# -- a workload's flags, and readiness where no swarm container waits for execs --------

def workload_flags(protocol: str, flags: dict[str, Any]) -> dict[str, Any]:
    """A line-protocol workload's swarm flags for a target of ``protocol``:
    its protocol's own default request (--size pads lines only)."""
    if protocol == "line":
        return dict(flags)
    return {**{k: v for k, v in flags.items() if k not in ("size", "message")}, "protocol": protocol}


def done_results(output: bytes) -> dict[str, Any]:
    """The swarm's `done` event (its last words on stdout) as answered() reads results."""
    import json
    for line in reversed(output.decode(errors="replace").splitlines()):
        if '"ev":"done"' in line.replace(" ", ""):
            try:
                done = json.loads(line)
            except ValueError:
                break
            return {"summary": {"replies": done.get("replies"), "errors": done.get("errors") or {}},
                    "failures": done.get("failures") or []}
    return {"summary": {}, "failures": ["the swarm said nothing"]}
