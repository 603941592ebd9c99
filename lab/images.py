"""Images: a base with Python 3, and the lab's one application image on it.

The base is found in this order: the configured image (LAB_BASE_IMAGE,
default python:3.11-slim) if the engine has it; the lab's own Debian base if
it made one before; a pull of the configured image; and, when no registry
answers, a bootstrap: mmdebstrap builds a minimal Debian with python3 from
Debian's packages and `docker import` turns it into an image (about half a
minute).  The application image (every model and the swarm) is tagged with a
hash of services/ and the base, so an unchanged tree is never rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import docker.errors

from . import config
from .engine import IMAGE_LAB, IMAGE_RUN, ROLE, Engine
from .errors import EnvironmentProblem

Say = Callable[[str], None]
BOOTSTRAP_PACKAGES = "python3,procps"
BOOTSTRAP_SUITE = os.environ.get("LAB_BOOTSTRAP_SUITE", "bookworm")


def _exists(engine: Engine, name: str) -> bool:
    try:
        engine.client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base(engine: Engine, say: Say, run: str = "setup") -> str:
    """The name of a base image the engine has, obtaining one if needed."""
    wanted = config.base_image()
    if _exists(engine, wanted):
        return wanted
    if wanted == config.DEFAULT_BASE and _exists(engine, config.BOOTSTRAP_IMAGE):
        return config.BOOTSTRAP_IMAGE
    try:
        repo, _, tag = wanted.rpartition(":") if ":" in wanted.split("/")[-1] else (wanted, "", "latest")
        say(f"base image: pulling {wanted}")
        engine.client.images.pull(repo, tag=tag)
        return wanted
    except docker.errors.APIError as exc:
        pulled = (exc.explanation or str(exc)).splitlines()[0]
    say(f"base image: cannot pull {wanted} ({pulled}); bootstrapping a Debian base "
        f"with mmdebstrap instead (about half a minute, once)")
    try:
        bootstrap(engine, say, run)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(
            f"no base image: the pull of {wanted} failed ({pulled}) and the bootstrap failed "
            f"({exc}); or set LAB_BASE_IMAGE to a local image with python3") from None
    return config.BOOTSTRAP_IMAGE


def _mmdebstrap(say: Say) -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("base image: installing mmdebstrap with apt-get")
        done = subprocess.run(["apt-get", "install", "-y", "-q", "mmdebstrap"],
                              capture_output=True, text=True)
        if done.returncode == 0 and shutil.which("mmdebstrap"):
            return shutil.which("mmdebstrap") or "mmdebstrap"
        raise EnvironmentProblem(f"apt-get install mmdebstrap failed: {done.stderr.strip()[-200:]}")
    raise EnvironmentProblem("mmdebstrap is missing: install it (sudo apt-get install mmdebstrap)")


def bootstrap(engine: Engine, say: Say, run: str) -> None:
    """Build iolab/base:bookworm from Debian's packages, with no registry."""
    tool = _mmdebstrap(say)
    with tempfile.TemporaryDirectory(prefix="iolab-base-") as tmp:
        tar = Path(tmp) / "base.tar"
        cmd = [tool, "--variant=essential", f"--include={BOOTSTRAP_PACKAGES}",
               "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
               "--dpkgopt=path-exclude=/usr/share/locale/*", BOOTSTRAP_SUITE, str(tar)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise EnvironmentProblem(f"mmdebstrap exited {done.returncode}: {last}")
        repo, tag = config.BOOTSTRAP_IMAGE.split(":")
        changes = ['CMD ["python3"]', "ENV LANG=C.UTF-8",
                   f"LABEL {IMAGE_LAB}={engine.lab} {ROLE}=base {IMAGE_RUN}={run}"]
        try:
            engine.client.api.import_image_from_file(str(tar), repository=repo, tag=tag, changes=changes)
        except docker.errors.APIError as exc:
            raise EnvironmentProblem(f"docker import failed: {exc.explanation}") from None
    say(f"base image: {config.BOOTSTRAP_IMAGE} ready")


def tree_hash(root: Path, base_id: str) -> str:
    """A digest of every file the application image is built from."""
    h = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def ensure_app(engine: Engine, say: Say, run: str = "setup") -> str:
    """The application image for the current services/ tree, built if missing."""
    base = ensure_base(engine, say, run)
    base_id = engine.client.images.get(base).id
    tag = f"{config.APP_REPO}:{tree_hash(config.SERVICES, base_id)}"
    if _exists(engine, tag):
        return tag
    say(f"building {tag} on {base}")
    try:
        image, _ = engine.client.images.build(
            path=str(config.SERVICES), tag=tag, buildargs={"BASE_IMAGE": base},
            labels={IMAGE_LAB: engine.lab, ROLE: "app", IMAGE_RUN: run}, rm=True, forcerm=True, pull=False)
    except docker.errors.BuildError as exc:
        tail = [line.get("stream", line.get("error", "")).strip() for line in exc.build_log][-3:]
        raise EnvironmentProblem(f"building the image failed: {exc.msg}: {' | '.join(tail)}") from None
    except docker.errors.APIError as exc:
        raise EnvironmentProblem(f"building the image failed: {exc.explanation}") from None
    image.tag(config.APP_REPO, "latest")  # for plain `docker compose` users
    return tag
