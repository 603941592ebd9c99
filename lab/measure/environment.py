"""The environment a run was measured in: this machine, the engine's, the lab's version.

    host_environment()   this machine, for run.json
    environment(engine)  results.json's `environment`: host, engine, containers, lab, git commit
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

from .. import __version__, config
from ..engine import Engine, EngineError, Unit


def engine_cpu_model(unit: Unit) -> str | None:
    """The CPU of the machine the unit runs on (which need not be this one)."""
    try:
        done = unit.exec(["grep", "-m1", "^model name", "/proc/cpuinfo"])
        return done.output.decode(errors="replace").partition(":")[2].strip() or None
    except EngineError:
        return None


def host_cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def environment(eng: Engine) -> dict[str, Any]:
    """This machine, the engine and the lab (results.json's `environment`);
    the containers' part is filled in as they start."""
    host = host_environment()
    return {
        "host": {"python": host["python"], "platform": host["platform"], "machine": host["machine"],
                 "cpus": host["cpus"], "cpu_model": host_cpu_model()},
        "engine": eng.describe(),
        "containers": {"python": {}, "swarm_python": None, "image": None, "base_image": config.base_image()},
        "lab_version": __version__,
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(config.ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(config.ROOT), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def host_environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "git_commit": git_commit(),
        "argv": sys.argv,
    }
