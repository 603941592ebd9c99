"""What to start, in no orchestrator's words: one compose.yaml service for one run.

lab/plan/compose.py reads compose.yaml and fills a UnitSpec; each engine turns it
into its own API's terms (a container's create arguments, a Swarm service's
spec).  Everything here is plain data, so a unit test can hold an engine's
translation against it without any engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

NO_HEALTHCHECK: dict[str, Any] = {"test": ["NONE"]}  # a probed server: its own start event says ready


@dataclass(frozen=True)
class Mount:
    source: str  # the run's real volume name
    target: str  # the path inside
    read_only: bool = False


@dataclass(frozen=True)
class UnitSpec:
    """One service of compose.yaml, for one run, with the run's names filled in."""

    service: str  # the compose.yaml service it comes from
    name: str  # the unit's name on the engine (the run's prefix and the service)
    image: str
    network: str
    command: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # names on the run's network besides none: the service name first
    user: str | None = None
    working_dir: str | None = None
    read_only: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> options (size=16m,mode=...)
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    init: bool | None = None
    pids_limit: int | None = None
    mem_limit: str | int | None = None  # as compose writes it: 512m, 1g, or bytes
    nano_cpus: int | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (soft, hard)
    log_driver: str | None = None
    log_options: dict[str, str] = field(default_factory=dict)
    healthcheck: dict[str, Any] | None = None  # test, and interval/timeout/start_period in ns, retries
    mounts: tuple[Mount, ...] = ()
    publish: bool = False  # port 12345 on 127.0.0.1 of the engine's host, a free port
    stop_grace: float = 10.0  # seconds between SIGTERM and SIGKILL
    replicas: int = 1  # copies of it (the client swarm, spread over load nodes)
    pid_mode: str | None = None  # "container:<id>": share that container's PID namespace (the tracing sidecar)
    network_mode: str | None = None  # "none": no network at all (the tracing sidecar); None: ``network``
    role: str = "server"  # server | swarm | tools | client: where it is placed

    def but(self, **changes: Any) -> "UnitSpec":
        return replace(self, **changes)
