"""Where things are and what they are called, from the environment.

LAB_HOME       the lab's folder (services/, scenarios/, compose.yaml); found
               by itself in a clone, see find_root(); set to anything else, an
               error (require_root)
LAB_NAME       the lab's name in every label (default "iolab"); tests use their
               own so they never touch a user's runs
LAB_RUNS_DIR   where run directories go (default ./runs in the lab's folder)
LAB_BASE_IMAGE the base image to build on (default python:3.11-slim)
LAB_COMPOSE    the topology file (default compose.yaml in the lab's folder)
DOCKER_HOST    the engine to talk to (the Docker SDK reads it, and contexts)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import EnvironmentProblem, UsageError

PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def _is_root(path: Path) -> bool:
    return (path / "services").is_dir() and (path / "scenarios").is_dir() and (path / "compose.yaml").is_file()


def candidates() -> list[Path]:
    """Where the lab's folder may be, in order: LAB_HOME; the folder the
    `lab` package sits in (a clone, or an editable install); the current
    directory and its parents (a wheel installed with `pip install .`, run
    from inside a clone)."""
    found = [Path(os.environ["LAB_HOME"]).expanduser()] if os.environ.get("LAB_HOME") else []
    cwd = Path.cwd().resolve()
    return found + [PACKAGE_PARENT, cwd, *cwd.parents]


def find_root() -> Path | None:
    return next((p for p in candidates() if _is_root(p)), None)


_found = find_root()
ROOT = _found or PACKAGE_PARENT
SERVICES = ROOT / "services"
LABEL = "org.iolab"  # label prefix: org.iolab.lab, org.iolab.run, ...
DEFAULT_BASE = "python:3.11-slim"
BOOTSTRAP_IMAGE = "iolab/base:bookworm"
APP_REPO = "iolab/app"


def require_root() -> None:
    """Every verb needs services/, scenarios/ and compose.yaml: say where
    they were looked for when they are nowhere.  A LAB_HOME that is not the
    lab's folder is a mistake to say, not a hint to pass over."""
    home = os.environ.get("LAB_HOME")
    if home and not _is_root(Path(home).expanduser()):
        raise EnvironmentProblem(
            f"LAB_HOME={home} is not the lab's folder (it holds no services/, scenarios/ and compose.yaml): "
            f"point it at a clone of the lab, or unset it")
    if _found is None:
        looked = ", ".join(dict.fromkeys(str(p) for p in candidates()[:4]))
        raise EnvironmentProblem(
            f"cannot find the lab's services/ folder (with scenarios/ and compose.yaml); looked in "
            f"{looked} and the parents of the current directory: run lab from a clone of the lab, "
            f"or set LAB_HOME to one")


def lab_name() -> str:
    name = os.environ.get("LAB_NAME", "iolab")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,39}", name):
        raise UsageError(f"LAB_NAME '{name}' must be lower-case letters, digits, '.', '_' or '-'")
    return name


def compose_file() -> Path:
    return Path(os.environ.get("LAB_COMPOSE", ROOT / "compose.yaml"))


def runs_dir() -> Path:
    return Path(os.environ.get("LAB_RUNS_DIR", ROOT / "runs"))


def base_image() -> str:
    return os.environ.get("LAB_BASE_IMAGE", DEFAULT_BASE)
