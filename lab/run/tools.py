"""Real clients (nc, curl, wrk, hey, ab) run in a container on a run's network.

    with LiveRun(engine, "check", "threads", say=say) as live:
        live.wait_healthy(live.start("threads"))
        got = tools.run(live, ["curl", "-s", "http://server:12345/hello"], timeout=30)
        got.code, got.stdout, got.stderr

The unit is compose.yaml's `tools` service, run to completion by the engine
(a container; on Swarm mode a one-replica service), so it lives in the same
box as every lab container (user 10001, no capabilities, read-only root,
limits, bounded logs) and carries the run's labels: if the caller dies,
cleanup finds it like anything else of the run.  It joins the run's network (or, with
``network=``, another run's) and reaches servers by their network alias
(`server`, or the service name).  Nothing touches the host: no published
port, no bind mount; input travels in an environment variable.  So it works
the same against a remote DOCKER_HOST, and the host needs none of the tools.

One command per container, bounded by ``timeout`` (coreutils `timeout`
inside: exit code 124, like timeout(1), when it ran out of time), then the
container is removed.  What it printed is also kept in the run directory as
logs/tools-N.log.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine import EngineError, EngineTimeout
from ..errors import EnvironmentProblem

if TYPE_CHECKING:
    from .live import LiveRun

SERVICE_NAME = "tools"
TIMED_OUT = 124  # the exit code of coreutils timeout when the command ran out of time
# Feed stdin (base64 in $IOLAB_STDIN, so any bytes survive) or nothing, and
# bound the command; $1 is the timeout, the rest is the command itself.
_WRAP = ('t=$1; shift; if [ -n "${IOLAB_STDIN-}" ]; then '
         'printf %s "$IOLAB_STDIN" | base64 -d | exec timeout -k 2 "$t" "$@"; '
         'else exec timeout -k 2 "$t" "$@" </dev/null; fi')
_STDIN_MAX = 64 * 1024  # an environment variable, not a pipe: keep it small
_count = itertools.count(1)


@dataclass(frozen=True)
class ToolResult:
    argv: list[str]
    code: int  # the command's exit code (124: ran out of time)
    stdout: bytes
    stderr: bytes
    seconds: float  # wall time of the container, start to exit

    @property
    def timed_out(self) -> bool:
        return self.code == TIMED_OUT

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    def __str__(self) -> str:  # for assertion messages: what ran and what it said
        err = self.stderr.decode(errors="replace").strip()[-300:]
        return f"`{' '.join(self.argv)}` exited {self.code} after {self.seconds:.1f}s: {err or self.text[-300:]}"


def run(live: LiveRun, argv: list[str], timeout: float = 60, *, stdin: bytes | None = None,
        network: str | None = None) -> ToolResult:
    """Run ``argv`` in a tools container on ``live``'s network (or ``network``)
    and return its exit code and output once it has exited."""
    if not argv:
        raise ValueError("tools.run needs a command")
    if stdin is not None and len(stdin) > _STDIN_MAX:
        raise ValueError(f"tools.run: stdin is limited to {_STDIN_MAX} bytes")
    n = next(_count)
    name = f"{live.prefix}-tools-{n}-{secrets.token_hex(2)}"
    env = {"IOLAB_STDIN": base64.b64encode(stdin).decode()} if stdin else {}
    spec = live.spec(SERVICE_NAME, command=["sh", "-c", _WRAP, "tools", f"{timeout:g}", *argv],
                     environment=env, role=SERVICE_NAME, name=name, network=network)
    try:  # the command is bounded inside; this bounds a unit that will not stop
        done = live.engine.run_once(spec, timeout + 30)
    except EngineTimeout:
        raise EnvironmentProblem(f"{name} ({' '.join(argv)}) did not exit within "
                                 f"{timeout + 30:g}s although its command was bounded") from None
    except EngineError as exc:
        raise EnvironmentProblem(f"{name} ({' '.join(argv)}) failed: {exc}") from None
    code, out, err = int(done.code if done.code is not None else -1), done.stdout, done.stderr
    result = ToolResult(list(argv), code, out, err, done.seconds)
    live.dir.write_log(f"tools-{n}", f"$ {' '.join(argv)}\n# exit {code}\n".encode() + out
                       + (b"\n# stderr\n" + err if err else b""))
    return result


def run_text(live: LiveRun, argv: list[str], timeout: float) -> tuple[int, str]:
    """run(), as (exit status, what it printed on stdout and stderr, as text)."""
    done = run(live, argv, timeout=timeout)
    return done.code, done.text + done.stderr.decode(errors="replace")
