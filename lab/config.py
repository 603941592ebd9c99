"""Where things are and what they are called, from the environment.

LAB_NAME       the lab's name in every label (default "iolab"); tests use their
               own so they never touch a user's runs
LAB_RUNS_DIR   where run directories go (default ./runs in the project)
LAB_BASE_IMAGE the base image to build on (default python:3.11-slim)
LAB_COMPOSE    the topology file (default compose.yaml in the project)
DOCKER_HOST    the engine to talk to (the Docker SDK reads it, and contexts)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "services"
LABEL = "org.iolab"  # label prefix: org.iolab.lab, org.iolab.run, ...
DEFAULT_BASE = "python:3.11-slim"
BOOTSTRAP_IMAGE = "iolab/base:bookworm"
APP_REPO = "iolab/app"


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
