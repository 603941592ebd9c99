"""compose.yaml, read the way Compose reads it, turned into what an engine starts.

The lab never shells out to Compose: it loads the same file with PyYAML,
interpolates ${VARIABLES} as Compose does, and translates each service into
a UnitSpec (lab/engine/spec.py), which each orchestrator turns into its own
API's terms (a container, a Swarm service).  Only the keys listed in
SERVICE_KEYS are understood; any other key is an error naming its line, so a
setting can never be silently dropped between Compose and the lab.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..engine.spec import Mount, UnitSpec
from ..errors import UsageError
from ..yamlfile import LineDict, load, where

# Every service key the lab translates (build and profiles are read elsewhere).
SERVICE_KEYS = frozenset({
    "image", "build", "command", "environment", "user", "read_only", "tmpfs",
    "cap_drop", "cap_add", "security_opt", "init", "labels", "logging", "ulimits",
    "cpus", "mem_limit", "pids_limit", "stop_grace_period", "sysctls", "healthcheck",
    "networks", "volumes", "profiles", "ports", "working_dir",
})
TOP_KEYS = frozenset({"services", "networks", "volumes", "version", "name"})

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class Service:
    name: str
    spec: LineDict
    file: Path

    @property
    def profiles(self) -> list[str]:
        return list(self.spec.get("profiles", []))

    def where(self, key: str | None = None) -> str:
        return where(self.file, self.spec, key)


@dataclass
class Topology:
    file: Path
    services: dict[str, Service]
    networks: dict[str, Any]
    volumes: dict[str, Any]

    def service(self, name: str) -> Service:
        return self.services[name]


def interpolate(value: Any, env: Mapping[str, str], file: Path, line: int) -> Any:
    """Replace ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $VAR
    and $$ in every string, recursively, as Compose does."""
    if isinstance(value, LineDict):
        out = LineDict((k, interpolate(v, env, file, value.line_of(k))) for k, v in value.items())
        out.line, out.lines = value.line, value.lines
        return out
    if isinstance(value, list):
        return [interpolate(v, env, file, line) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else current
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise UsageError(f"{file}:{line}: ${{{name}}} must be set: {arg or 'it is required'}")
        return current or ""

    return _VAR.sub(substitute, value)


def load_topology(file: Path, env: Mapping[str, str] | None = None) -> Topology:
    """Load and check compose.yaml; every problem names the file and line."""
    raw = load(file)
    if not isinstance(raw, LineDict) or not isinstance(raw.get("services"), LineDict):
        raise UsageError(f"{file}: a compose file needs a top-level 'services' mapping")
    doc = interpolate(raw, os.environ if env is None else env, file, 1)
    for key in doc:
        if key not in TOP_KEYS and not str(key).startswith("x-"):
            raise UsageError(f"{where(file, doc, key)}: unknown top-level key '{key}'")
    services: dict[str, Service] = {}
    for name, spec in doc["services"].items():
        if not isinstance(spec, LineDict):
            raise UsageError(f"{where(file, doc['services'], name)}: service '{name}' must be a mapping")
        for key in spec:
            if key not in SERVICE_KEYS:
                raise UsageError(
                    f"{where(file, spec, key)}: service '{name}' uses '{key}', which the lab "
                    f"does not translate (known: {', '.join(sorted(SERVICE_KEYS))})")
        services[name] = Service(name, spec, file)
        unit_spec(services[name], image="check", name="check", network="check", labels={})
    return Topology(file, services, dict(doc.get("networks") or {}), dict(doc.get("volumes") or {}))


def seconds(text: Any, place: str) -> float:
    """A Compose duration ("250ms", "1m30s", 5) in seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    parts = _DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise UsageError(f"{place}: '{text}' is not a duration (e.g. 250ms, 5s, 1m30s)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _pairs(value: Any, place: str) -> dict[str, str]:
    """Compose accepts {"K": "v"} or ["K=v"] for labels and environment."""
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in map(str, value))
    raise UsageError(f"{place}: expected a mapping or a list of KEY=value")


def unit_spec(service: Service, *, image: str, name: str, network: str,
              labels: Mapping[str, str], command: list[str] | None = None,
              volumes: Mapping[str, str] | None = None, publish: bool = False,
              environment: Mapping[str, str] | None = None) -> UnitSpec:
    """One service, for one run, in no orchestrator's words (lab/engine/spec.py).

    ``volumes`` maps the service's named volumes to the run's real volume
    names; ``publish`` binds the service's port 12345 to 127.0.0.1 only.
    """
    s = service.spec
    at = service.where
    kw = _settings(s, at)
    aliases: list[str] = []
    nets = s.get("networks", [])
    for net in nets:
        if isinstance(nets, dict) and isinstance(nets[net], dict):
            aliases += nets[net].get("aliases", [])
    mounts = _mounts(s, at, volumes)
    return UnitSpec(
        service=service.name, name=name, image=image, network=network,
        command=command if command is not None else s.get("command"),
        labels={**_pairs(s.get("labels", {}), at("labels")), **labels},
        environment={**_pairs(s.get("environment", {}), at("environment")), **(environment or {})},
        aliases=(service.name, *aliases), mounts=tuple(mounts), publish=publish,
        stop_grace=grace(service), **kw)


def _settings(s: LineDict, at: Callable[[str], str]) -> dict[str, Any]:
    """The UnitSpec fields a service sets as it is (limits, the box, logging, health)."""
    kw: dict[str, Any] = {}
    for key in ("user", "working_dir", "mem_limit"):
        if key in s:
            kw[key] = s[key]
    for key in ("read_only", "init"):
        if key in s:
            kw[key] = bool(s[key])
    for key in ("cap_drop", "cap_add", "security_opt"):
        if key in s:
            kw[key] = tuple(map(str, s[key]))
    if "pids_limit" in s:
        kw["pids_limit"] = int(s["pids_limit"])
    if "tmpfs" in s:
        tmpfs = [s["tmpfs"]] if isinstance(s["tmpfs"], str) else s["tmpfs"]
        kw["tmpfs"] = dict(m.split(":", 1) if ":" in m else (m, "") for m in tmpfs)
    if "cpus" in s:
        kw["nano_cpus"] = int(float(s["cpus"]) * 1e9)
    if "sysctls" in s:
        kw["sysctls"] = _pairs(s["sysctls"], at("sysctls"))
    if "logging" in s:
        log = s["logging"]
        kw["log_driver"] = log.get("driver", "json-file")
        kw["log_options"] = {k: str(v) for k, v in (log.get("options") or {}).items()}
    if "ulimits" in s:
        kw["ulimits"] = {k: (v, v) if isinstance(v, int) else (int(v["soft"]), int(v["hard"]))
                         for k, v in s["ulimits"].items()}
    if "healthcheck" in s:
        kw["healthcheck"] = _healthcheck(s["healthcheck"], at("healthcheck"))
    return kw


def _mounts(s: LineDict, at: Callable[[str], str], volumes: Mapping[str, str] | None) -> list[Mount]:
    """The service's named volumes, each as the run's real volume."""
    mounts: list[Mount] = []
    for spec in s.get("volumes", []):
        source, _, target = str(spec).partition(":")
        target, _, mode = target.partition(":")
        if not target:
            raise UsageError(f"{at('volumes')}: '{spec}' must be NAME:PATH")
        real = (volumes or {}).get(source)
        if real is None and volumes is not None:
            raise UsageError(f"{at('volumes')}: volume '{source}' is not declared at the top level")
        mounts.append(Mount(real or source, target, mode == "ro"))
    return mounts


def _healthcheck(h: Any, place: str) -> dict[str, Any]:
    if not isinstance(h, dict) or "test" not in h:
        raise UsageError(f"{place}: a healthcheck needs a 'test'")
    ns = 1_000_000_000
    out: dict[str, Any] = {"test": h["test"]}
    for key, sdk in (("interval", "interval"), ("timeout", "timeout"), ("start_period", "start_period")):
        if key in h:
            out[sdk] = int(seconds(h[key], place) * ns)
    if "retries" in h:
        out["retries"] = int(h["retries"])
    return out


DEFAULT_GRACE = 10.0  # seconds: Compose's default stop_grace_period


def grace(service: Service) -> float:
    """How long a container of ``service`` gets after SIGTERM before SIGKILL
    (stop_grace_period, as Compose honours it)."""
    return seconds(service.spec.get("stop_grace_period", DEFAULT_GRACE), service.where("stop_grace_period"))
