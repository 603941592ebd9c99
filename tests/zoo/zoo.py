"""The zoo: third-party servers from Debian's packages, for testing `lab classify`.

zoo.yaml (beside this file) says, for each server, how to run it and talk to
it, and the ground truth of its concurrency model as observed by hand
(tests/zoo/verify.py).  This module loads and checks that file and starts a
zoo server in the lab's box through the lab's engine.  Its API:

    zoo = load()                       # Zoo, or ZooError naming the file, server and key
    zoo.family                         # lab.run.images.Family: the mmdebstrap package list
    zoo.servers["lighttpd"]            # Server (fields as zoo.yaml's keys, below)
    zoo.servers["lighttpd"].truth.cls  # "event-loop"

    tag = image(engine, say=print)     # iolab/zoo-servers:HASH: the family (iolab/zoo:SUITE-HASH,
                                       # mmdebstrap, about 75 s once) and image/Dockerfile, if missing
    spec = box(server, tag, network, name=..., labels={...})   # lab.engine.UnitSpec (the lab's box)
    unit = start(engine, server, tag, network, labels={...})   # started and listening on 12345

``engine`` is the lab's (lab.engine.connect()).  ``server`` is a Server or
its name.  ``network`` is an existing network's name
(engine.create_network(name, internal=True, labels=...)); ``labels`` should
carry the lab's run labels (lab.engine.LAB, RUN, OWNER) so that
engine.runs() and engine.remove() find and remove what was started.  The
server answers as alias ``server`` on that network, port 12345 (PORT); the
unit runs no health check (its probe would show in the process table), and
start() waits by exec'ing grep on /proc/net/tcp{,6} until it listens.
Errors: ZooError (a ValueError) for zoo.yaml and for a server that never
listens, with its last log lines.

zoo.yaml: `family: {name, packages}` (a lab.run.images.Family; every server's
packages are among them) and `servers:`, a list; per server (every key
required; null where it does not apply):

    name                 also `zoo-serve NAME` in the image
    packages             {debian-package: version seen}
    command              what zoo-serve execs (a string, for people)
    protocol             line | http | redis | postgres | memcached
    request              a complete request that gets a reply (Python escapes: \\r\\n)
    partial              an incomplete request that makes the server wait for the rest
    reply                how the reply to `request` starts
    banner               how the server's greeting starts, or null if it does not speak first
    closes_after_response   true if it closes the connection after each reply
    idle_timeout         seconds after which it closes a connection holding `partial`
                         (null: none seen within `idle_checked` seconds)
    keepalive_timeout    seconds after which it closes a connection that got its reply and
                         says nothing more (null: closes at once, see closes_after_response,
                         or none seen within `idle_checked` seconds)
    idle_checked         seconds a connection was watched for those
    truth:
      class              one of lab.plan.models.CLASSES
      n                  pool size or workers (pools, event-loop-workers), else null
      hybrid             e.g. "2 processes x 2 threads", or null
      per_connection     {processes: P, threads: T} added per held connection
                         (per-connection classes), else null; T counts every task, a new
                         process's own thread included (socat: 2 processes, 2 threads)
      bound              held incomplete requests served at once: with fewer held, a fresh
                         request is answered; 1, N, a server's own cap (tcpserver -c 40,
                         webfs -c 32), or "unbounded" (the box's 256 tasks still cap a
                         per-connection server)
      note               one paragraph: what the server really does
    verified:
      how                the command that made the table
      baseline           {processes, threads} with nothing connected (every process in the
                         container but docker-init, PID 1)
      held               [{k, connected, processes, threads, answered, ms}] for K = 1, 2, 4, 8:
                         connected is how many of the K could be made (a full listen queue
                         drops the rest), ms the probe's time to its first reply byte
                         (null when not answered)
      notes              what else was seen (banners, closes, lazy pools), or null
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ZOO_YAML = HERE / "zoo.yaml"
CONTEXT = HERE / "image"  # the image's build context: Dockerfile, zoo-serve, hold.py, etc/
PORT = 12345
REPO = "iolab/zoo-servers"  # the built image; the family is iolab/zoo:SUITE
PROTOCOLS = ("line", "http", "redis", "postgres", "memcached")
UNBOUNDED = "unbounded"
PER_CONNECTION = ("process-per-connection", "thread-per-connection")
SIZED = ("process-pool", "thread-pool", "event-loop-workers")
KS = (1, 2, 4, 8)

SERVER_KEYS = ("name", "packages", "command", "protocol", "request", "partial", "reply", "banner",
               "closes_after_response", "idle_timeout", "keepalive_timeout", "idle_checked", "truth", "verified")
TRUTH_KEYS = ("class", "n", "hybrid", "per_connection", "bound", "note")
VERIFIED_KEYS = ("how", "baseline", "held", "notes")
STEP_KEYS = ("k", "connected", "processes", "threads", "answered", "ms")


class ZooError(ValueError):
    """zoo.yaml is malformed: the message names the file, the server and the key."""


def _classes() -> tuple[str, ...]:
    try:
        from lab.plan.models import CLASSES
        return tuple(CLASSES)
    except ImportError:  # the lab not installed: the same list
        return ("one-at-a-time", "process-per-connection", "thread-per-connection", "process-pool",
                "thread-pool", "event-loop", "event-loop-workers")


@dataclass(frozen=True)
class Truth:
    cls: str
    n: int | None
    hybrid: str | None
    per_connection: dict[str, int] | None
    bound: int | str
    note: str
    also_seen: str | None = None  # a class a run may honestly see instead (the note says why)


@dataclass(frozen=True)
class Server:
    name: str
    packages: dict[str, str]
    command: str
    protocol: str
    request: bytes
    partial: bytes
    reply: bytes
    banner: bytes | None
    closes_after_response: bool
    idle_timeout: float | None
    keepalive_timeout: float | None
    idle_checked: float
    truth: Truth
    verified: dict[str, Any]

    def serve(self) -> list[str]:
        """The container's command."""
        return ["zoo-serve", self.name]


@dataclass(frozen=True)
class Zoo:
    family: Any  # lab.run.images.Family
    servers: dict[str, Server]


def unescape(text: str) -> bytes:
    """zoo.yaml's request texts: Python escapes (\\r\\n, \\x00), latin-1."""
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


def _need(doc: Any, keys: tuple[str, ...], where: str, optional: tuple[str, ...] = ()) -> None:
    if not isinstance(doc, dict):
        raise ZooError(f"{where}: expected a mapping, found {type(doc).__name__}")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise ZooError(f"{where}: missing {', '.join(missing)}")
    extra = [k for k in doc if k not in keys + optional]
    if extra:
        raise ZooError(f"{where}: unknown key {', '.join(map(str, extra))} (known: {', '.join(keys + optional)})")


def _int(value: Any, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ZooError(f"{where}: expected a whole number >= {low}, found {value!r}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ZooError(f"{where}: expected a non-empty string, found {value!r}")
    return value


def _truth(doc: Any, where: str) -> Truth:
    _need(doc, TRUTH_KEYS, where, optional=("also_seen",))
    cls = doc["class"]
    if cls not in _classes():
        raise ZooError(f"{where}.class: {cls!r} is not one of {', '.join(_classes())}")
    n = doc["n"]
    if cls in SIZED:
        n = _int(n, f"{where}.n", 1)
    elif n is not None:
        raise ZooError(f"{where}.n: a {cls} has no size: null, not {n!r}")
    per = doc["per_connection"]
    if cls in PER_CONNECTION:
        _need(per, ("processes", "threads"), f"{where}.per_connection")
        per = {k: _int(per[k], f"{where}.per_connection.{k}") for k in ("processes", "threads")}
        grows = per["processes"] if cls == "process-per-connection" else per["threads"]
        if per["threads"] < per["processes"]:
            raise ZooError(f"{where}.per_connection: every process has a thread: threads >= processes")
        if grows < 1:
            raise ZooError(f"{where}.per_connection: a {cls} adds at least one "
                           f"{'process' if cls == 'process-per-connection' else 'thread'} per connection")
    elif per is not None:
        raise ZooError(f"{where}.per_connection: only a per-connection class adds tasks per connection: null")
    bound = doc["bound"]
    if bound != UNBOUNDED:
        bound = _int(bound, f"{where}.bound", 1)
    if cls == "one-at-a-time" and bound != 1:
        raise ZooError(f"{where}.bound: one at a time serves 1, not {bound!r}")
    if cls in ("process-pool", "thread-pool") and bound != n:
        raise ZooError(f"{where}.bound: a pool of {n} serves {n} held connections at once, not {bound!r}")
    hybrid = doc["hybrid"]
    if hybrid is not None:
        _text(hybrid, f"{where}.hybrid")
    also = doc.get("also_seen")
    if also is not None and (also not in _classes() or also == cls):
        raise ZooError(f"{where}.also_seen: {also!r} is not another of {', '.join(_classes())}")
    return Truth(cls, n, hybrid, per, bound, _text(doc["note"], f"{where}.note"), also)


def _verified(doc: Any, where: str) -> dict[str, Any]:
    _need(doc, VERIFIED_KEYS, where)
    _text(doc["how"], f"{where}.how")
    _need(doc["baseline"], ("processes", "threads"), f"{where}.baseline")
    held = doc["held"]
    if not isinstance(held, list):
        raise ZooError(f"{where}.held: expected a list of steps ({', '.join(STEP_KEYS)})")
    for i, step in enumerate(held):
        _need(step, STEP_KEYS, f"{where}.held[{i}]")
        for key in ("k", "connected", "processes", "threads"):
            _int(step[key], f"{where}.held[{i}].{key}")
        if step["connected"] > step["k"]:
            raise ZooError(f"{where}.held[{i}].connected: at most k ({step['k']}), not {step['connected']}")
        if not isinstance(step["answered"], bool):
            raise ZooError(f"{where}.held[{i}].answered: true or false, not {step['answered']!r}")
        if step["ms"] is not None:
            _int(step["ms"], f"{where}.held[{i}].ms")
    ks = tuple(step["k"] for step in held)
    if ks != KS:
        raise ZooError(f"{where}.held: steps for K = {', '.join(map(str, KS))}, found {ks}")
    if doc["notes"] is not None:
        _text(doc["notes"], f"{where}.notes")
    return dict(doc)


def _server(doc: Any, where: str) -> Server:
    if isinstance(doc, dict) and isinstance(doc.get("name"), str):
        where = f"{where} ({doc['name']})"
    _need(doc, SERVER_KEYS, where)
    name = _text(doc["name"], f"{where}.name")
    packages = doc["packages"]
    if not isinstance(packages, dict) or not packages or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in packages.items()):
        raise ZooError(f"{where}.packages: expected {{package: version seen}}, found {packages!r}")
    if doc["protocol"] not in PROTOCOLS:
        raise ZooError(f"{where}.protocol: {doc['protocol']!r} is not one the swarm speaks ({', '.join(PROTOCOLS)})")
    for key in ("closes_after_response",):
        if not isinstance(doc[key], bool):
            raise ZooError(f"{where}.{key}: true or false, not {doc[key]!r}")
    checked = doc["idle_checked"]
    if isinstance(checked, bool) or not isinstance(checked, (int, float)) or checked <= 0:
        raise ZooError(f"{where}.idle_checked: seconds (> 0), not {checked!r}")
    for key in ("idle_timeout", "keepalive_timeout"):
        idle = doc[key]
        if idle is not None and (isinstance(idle, bool) or not isinstance(idle, (int, float))
                                 or not 0 < idle <= checked):
            raise ZooError(f"{where}.{key}: seconds (> 0, at most idle_checked) or null, not {idle!r}")
    if doc["closes_after_response"] and doc["keepalive_timeout"] is not None:
        raise ZooError(f"{where}.keepalive_timeout: null for a server that closes after each response")
    banner = doc["banner"]
    return Server(
        name=name, packages=dict(packages), command=_text(doc["command"], f"{where}.command"),
        protocol=doc["protocol"], request=unescape(_text(doc["request"], f"{where}.request")),
        partial=unescape(_text(doc["partial"], f"{where}.partial")),
        reply=unescape(_text(doc["reply"], f"{where}.reply")),
        banner=None if banner is None else unescape(_text(banner, f"{where}.banner")),
        closes_after_response=doc["closes_after_response"], idle_timeout=doc["idle_timeout"],
        keepalive_timeout=doc["keepalive_timeout"], idle_checked=checked,
        truth=_truth(doc["truth"], f"{where}.truth"), verified=_verified(doc["verified"], f"{where}.verified"))


def load(path: Path | str = ZOO_YAML) -> Zoo:
    """zoo.yaml, checked: every key present, classes known, sizes consistent."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ZooError(f"{path}: cannot read: {exc}") from None
    _need(doc, ("family", "servers"), str(path))
    fam = doc["family"]
    _need(fam, ("name", "packages"), f"{path}: family")
    if not isinstance(fam["packages"], list) or not all(isinstance(p, str) for p in fam["packages"]):
        raise ZooError(f"{path}: family.packages: a list of Debian package names")
    from lab.run.images import Family
    family = Family(_text(fam["name"], f"{path}: family.name"), tuple(fam["packages"]))
    if not isinstance(doc["servers"], list) or not doc["servers"]:
        raise ZooError(f"{path}: servers: a list of servers")
    servers: dict[str, Server] = {}
    for i, entry in enumerate(doc["servers"]):
        server = _server(entry, f"{path}: servers[{i}]")
        if server.name in servers:
            raise ZooError(f"{path}: servers[{i}]: {server.name} is listed twice")
        missing = [p for p in server.packages if p not in family.packages]
        if missing:
            raise ZooError(f"{path}: servers[{i}] ({server.name}).packages: {', '.join(missing)} "
                           f"not in family.packages")
        servers[server.name] = server
    return Zoo(family, servers)


# -- running one -------------------------------------------------------------
def image(engine: Any, say: Any = print, run: str = "zoo", family: Any = None) -> str:
    """The zoo image for the current files (the family bootstrapped and the
    Dockerfile built when the engine lacks them); ``family`` defaults to
    zoo.yaml's."""
    from lab.run import images
    family = images.ensure_family(engine, family or load().family, say, run)
    build = images.Build(REPO, f"{REPO}:latest", CONTEXT, args={"ZOO_FAMILY": family})
    return images.ensure_build(engine, build, say, run)


def box(server: Server | str, image_tag: str, network: str, *, name: str, labels: dict[str, str]) -> Any:
    """The lab's box for a zoo server: user 10001, no capabilities, no new
    privileges, read-only root with a 16 MB /tmp, 256 tasks, 512 MB, an init
    (docker-init is PID 1, the server below it), no health check (its probe
    would be a process in the table a classifier reads).  ``server``: a
    Server or its name."""
    from lab.engine import NO_HEALTHCHECK, UnitSpec
    what = server if isinstance(server, str) else server.name
    return UnitSpec(
        service=f"zoo-{what}", name=name, image=image_tag, network=network,
        command=["zoo-serve", what], labels=dict(labels), aliases=("server",), user="10001:10001",
        read_only=True, tmpfs={"/tmp": "size=16m"}, cap_drop=("ALL",),
        security_opt=("no-new-privileges:true",), init=True, pids_limit=256, mem_limit="512m",
        ulimits={"nofile": (20000, 20000)}, log_driver="json-file",
        log_options={"max-size": "20m", "max-file": "2"}, stop_grace=5.0, healthcheck=NO_HEALTHCHECK)


# Something listens on 12345 (IPv4, or IPv6 with or without IPv4 mapped).
LISTENING = ["grep", "-qE", f":{PORT:04X} 0+:0000 0A", "/proc/net/tcp", "/proc/net/tcp6"]


def start(engine: Any, server: Server | str, image_tag: str, network: str, *, labels: dict[str, str],
          name: str | None = None, timeout: float = 30) -> Any:
    """Start ``server`` (a Server or its name) on ``network`` and wait (exec'ing grep on
    /proc/net/tcp every 0.2 s, at most ``timeout`` s) until it listens on
    12345; the unit (lab.engine.Unit).  On failure the container is removed
    and ZooError says why, with its last log lines."""
    what = server if isinstance(server, str) else server.name
    name = name or f"zoo-{what}-{os.getpid()}"
    unit = engine.start(box(server, image_tag, network, name=name, labels=labels))
    try:
        deadline = time.monotonic() + timeout
        while True:
            if not unit.alive():
                raise ZooError(f"{what} exited before listening: {engine.tail(unit)}")
            if unit.exec(LISTENING).exit_code == 0:
                return unit
            if time.monotonic() > deadline:
                raise ZooError(f"{what} was not listening on {PORT} within {timeout:.0f} s: "
                               f"{engine.tail(unit)}")
            time.sleep(0.2)
    except BaseException:
        unit.remove()
        raise


if __name__ == "__main__":  # python3 tests/zoo/zoo.py: check zoo.yaml and list it
    try:
        z = load(sys.argv[1] if len(sys.argv) > 1 else ZOO_YAML)
    except ZooError as exc:
        sys.exit(f"zoo.yaml: {exc}")
    for s in z.servers.values():
        t = s.truth
        print(f"{s.name:14} {s.protocol:8} {t.cls}{'' if t.n is None else f' n={t.n}'} bound={t.bound}")
