"""Images: Debian families made from Debian's packages, and images built on them.

There is no registry to lean on, so the lab makes its own images.  A family
is "a Debian suite carrying packages P": mmdebstrap installs them into a
tarball on the host and `docker import` turns it into an image (a minute or
two, once).  Containers never reach a package index: whatever a container
needs is put in here.

    base     python3, procps, python3-gevent, python3-uvloop: the models run on it
    tools    nc, curl, wrk, hey, ab (the real clients), gcc, libc6-dev (to
             compile the native reference in a build stage) and strace (the
             tracing sidecar that counts a server's system calls)
    servers  apache2, nginx, postgresql-15, redis-server, memcached (the real
             servers; made only when a service asks for it)

A family image is tagged iolab/FAMILY:SUITE-HASH (the hash of the suite, the
packages and the recipe, so a changed list makes a new image and an unchanged
one is reused) and also iolab/FAMILY:SUITE, the name compose.yaml uses, so
plain Compose runs from the images the lab made.

A compose.yaml service with `build:` (context, dockerfile, target, args) is
built with the engine's classic builder and tagged REPO:HASH, the hash of
every file in the context, the Dockerfile, the target and the images its
arguments name; and also under the `image:` name compose.yaml gives it.  The
arguments the lab fills: BASE_IMAGE is the base (below); any argument naming
a family (iolab/tools:...) is that family's current image.

The base: LAB_BASE_IMAGE (default python:3.11-slim) if the engine has it; the
lab's base family if made before; a pull; and, when no registry answers, the
base family is bootstrapped.  LAB_BASE_IMAGE=iolab/base:bookworm goes straight
to the family.

What a base offers beyond the standard library is the label
org.iolab.python-modules (the base family sets it: gevent,uvloop).  A model
whose model.yaml says `needs: [gevent]` refuses, in one line, an image
without those modules (python:3.11-slim has neither); a base of your own can
declare them with that label.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import config
from ..engine import IMAGE_LAB, IMAGE_RUN, ROLE, Engine, EngineError
from ..errors import EnvironmentProblem, UsageError
from ..plan.models import Model, load_model

Say = Callable[[str], None]
REPO = "iolab"  # family images are iolab/<family>
MODULES = f"{config.LABEL}.python-modules"  # image label: Python modules beyond the stdlib
RECIPE = 1  # bump when the bootstrap recipe changes: every family image is made again


@dataclass(frozen=True)
class Family:
    name: str
    packages: tuple[str, ...]
    modules: tuple[str, ...] = ()  # Python modules the packages add
    cmd: str = '["sh"]'


FAMILIES = {f.name: f for f in (
    Family("base", ("python3", "procps", "python3-gevent", "python3-uvloop"),
           modules=("gevent", "uvloop"), cmd='["python3"]'),
    Family("tools", ("netcat-openbsd", "curl", "wrk", "hey", "apache2-utils", "gcc", "libc6-dev", "strace")),
    Family("servers", ("apache2", "nginx", "postgresql-15", "redis-server", "memcached")),
)}
# Keep the image small: documentation, manuals and translations are never read.
# Removed once at the end (dpkg path-exclude would pipe every package through
# mmdebstrap's filter, about a third more CPU for the same result).
_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")


def suite() -> str:
    return os.environ.get("LAB_BOOTSTRAP_SUITE", "bookworm")


def family_of(image: str) -> Family | None:
    """The family an image name belongs to (iolab/tools:anything is tools)."""
    repo = _split(image)[0]
    if repo.startswith(REPO + "/"):
        return FAMILIES.get(repo[len(REPO) + 1:])
    return None


def family_tag(family: Family) -> str:
    recipe = json.dumps([RECIPE, suite(), sorted(family.packages), family.cmd, _EXCLUDES])
    return f"{REPO}/{family.name}:{suite()}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def _split(image: str) -> tuple[str, str]:
    """repository and tag (a registry's host:port is not a tag)."""
    if ":" in image.rsplit("/", 1)[-1]:
        repo, _, tag = image.rpartition(":")
        return repo, tag
    return image, "latest"


def _exists(engine: Engine, name: str) -> bool:
    return engine.image_exists(name)


@contextmanager
def _once(tag: str, say: Say) -> Iterator[None]:
    """One lab process on this host makes a given image; the others wait for
    it and then find it made."""
    path = Path(tempfile.gettempdir()) / ("iolab-image-" + re.sub(r"[^\w.-]", "_", tag) + ".lock")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    except OSError:
        yield  # no lock to be had: at worst the image is made twice
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another lab process making {tag}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- families: mmdebstrap and docker import ---------------------------------
def ensure_family(engine: Engine, name: str | Family, say: Say, run: str = "setup") -> str:
    """The current image of a family, bootstrapped if the engine lacks it.

    ``name`` is one of FAMILIES, or a Family defined elsewhere (the test zoo's
    package list lives beside its tests); such a family may not take the name
    of one of FAMILIES, whose iolab/NAME:SUITE tag compose.yaml relies on."""
    if isinstance(name, Family):
        family = name
        if FAMILIES.get(family.name, family) != family:
            raise UsageError(f"family {family.name!r} is one of the lab's own ({', '.join(FAMILIES)}): "
                             f"give yours another name")
        name = family.name
    else:
        family = FAMILIES[name]
    tag = family_tag(family)
    if _exists(engine, tag):
        return tag
    with _once(tag, say):
        if _exists(engine, tag):
            return tag
        say(f"{name} image: making {tag} from Debian's packages with mmdebstrap "
            f"({' '.join(family.packages)}); once, a minute or two")
        began = time.monotonic()
        imported = _bootstrap(engine, family, tag, say, run)
        say(f"{name} image: {tag} made in {time.monotonic() - began:.0f} s "
            f"(docker import {imported:.0f} s of it)")
    return tag


def _mmdebstrap(say: Say) -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EnvironmentProblem("mmdebstrap is missing: install it (sudo apt-get install mmdebstrap)")
    say("installing mmdebstrap with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "mmdebstrap"]
    done = subprocess.run(install, capture_output=True, text=True, env=env)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        done = subprocess.run(install, capture_output=True, text=True, env=env)
    found = shutil.which("mmdebstrap")
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentProblem(f"apt-get install mmdebstrap failed ({last}): install it yourself")
    return found


def _bootstrap(engine: Engine, family: Family, tag: str, say: Say, run: str) -> float:
    """mmdebstrap a tarball, import it; returns the seconds the import took."""
    tool = _mmdebstrap(say)
    with tempfile.TemporaryDirectory(prefix=f"iolab-{family.name}-") as tmp:
        tar = Path(tmp) / "image.tar"
        prune = "rm -rf " + " ".join(f'"$1"{p}' for p in _EXCLUDES)
        cmd = [tool, "--variant=essential", "--quiet", f"--include={','.join(family.packages)}",
               f"--customize-hook={prune}", suite(), str(tar)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise EnvironmentProblem(f"mmdebstrap exited {done.returncode}: {last}")
        labels = {IMAGE_LAB: engine.lab, ROLE: family.name, IMAGE_RUN: run,
                  f"{config.LABEL}.packages": " ".join(family.packages),
                  f"{config.LABEL}.suite": suite(), MODULES: ",".join(family.modules)}
        changes = [f"CMD {family.cmd}", "ENV LANG=C.UTF-8",
                   "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())]
        repo, version = _split(tag)
        began = time.monotonic()
        try:
            engine.import_image(str(tar), repo, version, changes)
            engine.tag_image(tag, repo, suite())  # the name compose.yaml uses
        except EngineError as exc:
            raise EnvironmentProblem(f"docker import failed: {exc.explanation}") from None
        return time.monotonic() - began


# -- the base ---------------------------------------------------------------
def ensure_base(engine: Engine, say: Say, run: str = "setup") -> str:
    """The name of a base image with python3 the engine has, obtaining one if needed."""
    wanted = config.base_image()
    if family_of(wanted) is FAMILIES["base"]:
        return ensure_family(engine, "base", say, run)
    if _exists(engine, wanted):
        return wanted
    if wanted == config.DEFAULT_BASE and _exists(engine, family_tag(FAMILIES["base"])):
        return family_tag(FAMILIES["base"])
    try:
        say(f"base image: pulling {wanted}")
        engine.pull_image(wanted)
        return wanted
    except EngineError as exc:
        pulled = (exc.explanation or str(exc)).splitlines()[0]
    say(f"base image: cannot pull {wanted} ({pulled}); making the lab's Debian base instead")
    try:
        return ensure_family(engine, "base", say, run)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(
            f"no base image: the pull of {wanted} failed ({pulled}) and the bootstrap failed "
            f"({exc}); or set LAB_BASE_IMAGE to a local image with python3") from None


# -- built images: compose.yaml's build: ------------------------------------
@dataclass(frozen=True)
class Build:
    repo: str  # iolab/app
    name: str  # the image name compose.yaml gives it (iolab/app:latest)
    context: Path
    dockerfile: str = "Dockerfile"
    target: str | None = None
    args: dict[str, str] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return self.repo.rsplit("/", 1)[-1]


def build_of(service: Any) -> Build | None:
    """The build a compose.yaml service declares (a lab.plan.compose.Service), if any."""
    spec = service.spec
    build = spec.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    if not isinstance(build, dict) or "context" not in build:
        raise UsageError(f"{service.where('build')}: build needs a context (a folder)")
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(a.split("=", 1) if "=" in a else (a, "") for a in map(str, args))
    name = str(spec.get("image") or f"{REPO}/{service.name}:latest")
    return Build(_split(name)[0], name, (service.file.parent / str(build["context"])).resolve(),
                 str(build.get("dockerfile", "Dockerfile")), build.get("target"),
                 {str(k): str(v) for k, v in args.items()})


def app_build() -> Build:
    """The application image: every model and the swarm (compose.yaml's x-app)."""
    return Build(config.APP_REPO, f"{config.APP_REPO}:latest", config.SERVICES,
                 args={"BASE_IMAGE": config.DEFAULT_BASE, "TOOLS_IMAGE": f"{REPO}/tools:{suite()}"})


def tree_hash(root: Path, extra: str) -> str:
    """A digest of every file under ``root`` (caches excluded) and ``extra``."""
    h = hashlib.sha256(extra.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


# Build arguments an image can do without: the app image compiles the swarm's
# fast path in the tools image when it can be made, else builds on the base
# (no compiler there: the swarm runs its Python loop).
OPTIONAL_ARGS = {(config.APP_REPO, "TOOLS_IMAGE")}


def _resolve_args(engine: Engine, build: Build, say: Say, run: str) -> dict[str, str]:
    """BASE_IMAGE is the lab's base; an argument naming a family is that family's image."""
    resolved = {}
    for key, value in build.args.items():
        if key == "BASE_IMAGE":
            value = ensure_base(engine, say, run)
        elif (family := family_of(value)) is not None:
            try:
                value = ensure_family(engine, family.name, say, run)
            except EnvironmentProblem as exc:
                if (build.repo, key) not in OPTIONAL_ARGS:
                    raise
                value = ensure_base(engine, say, run)
                say(f"{build.repo}: no {family.name} image ({exc}); building without the swarm's "
                    f"C fast path: the swarm runs its Python loop")
        resolved[key] = value
    return resolved


def ensure_build(engine: Engine, build: Build, say: Say, run: str = "setup") -> str:
    """The image of ``build`` for the current files, built if the engine lacks it."""
    if not (build.context / build.dockerfile).is_file():
        raise UsageError(f"cannot build {build.name}: no {build.dockerfile} in {build.context}")
    args = _resolve_args(engine, build, say, run)
    ids = {k: engine.image_id(v) if _exists(engine, v) else v for k, v in args.items()}
    tag = f"{build.repo}:{tree_hash(build.context, json.dumps([build.dockerfile, build.target, ids]))}"
    if _exists(engine, tag):
        return tag
    with _once(tag, say):
        if _exists(engine, tag):
            return tag
        say(f"building {tag}" + (f" on {args['BASE_IMAGE']}" if "BASE_IMAGE" in args else ""))
        began = time.monotonic()
        try:
            engine.build_image(context=str(build.context), dockerfile=build.dockerfile, target=build.target,
                               tag=tag, args=args, labels={IMAGE_LAB: engine.lab, ROLE: build.role, IMAGE_RUN: run})
            engine.tag_image(tag, *_split(build.name))  # the name compose.yaml gives it, for plain Compose
        except EngineError as exc:
            raise EnvironmentProblem(f"building {tag} failed: {exc.explanation}") from None
        say(f"built {tag} in {time.monotonic() - began:.0f} s")
    return tag


def ensure_app(engine: Engine, say: Say, run: str = "setup") -> str:
    return ensure_build(engine, app_build(), say, run)


# -- one compose.yaml service ------------------------------------------------
def for_service(engine: Engine, service: Any, say: Say, run: str = "setup") -> str:
    """The image a compose.yaml service (a lab.plan.compose.Service) runs, made if
    need be, and checked against what its model.yaml needs."""
    build = build_of(service)
    image = str(service.spec.get("image", ""))
    if build is not None:
        tag = ensure_build(engine, build, say, run)
    elif family_of(image) is not None:
        tag = ensure_family(engine, family_of(image).name, say, run)  # type: ignore[union-attr]
    elif image and _exists(engine, image):
        tag = image
    elif image:
        raise EnvironmentProblem(f"{service.where('image')}: the engine has no image {image} and "
                                 f"the lab cannot make it (no build:); build or load it first")
    else:
        raise UsageError(f"{service.where()}: service {service.name} needs an image or a build")
    check_needs(engine, tag, service.name)
    return tag


def needs_of(name: str) -> list[str]:
    """The Python modules a model's model.yaml says it needs (`needs: [gevent]`)."""
    file = config.SERVICES / name / "model.yaml"
    if not file.is_file():
        return []
    model = load_model(file)
    needs = model.spec.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise UsageError(f"{file}: needs must be a list of Python module names, e.g. [gevent]")
    return needs


def check_needs(engine: Engine, image: str, name: str) -> None:
    """One line, exit 2, when ``image`` lacks a module the model needs."""
    missing = _missing(engine, image, needs_of(name))
    if missing:
        raise EnvironmentProblem(needs_line(name, missing))


def needs_line(name: str, missing: list[str]) -> str:
    return (f"{name} needs {', '.join(missing)}, which the base image {config.base_image()} lacks: "
            f"use the lab's Debian base (LAB_BASE_IMAGE={REPO}/base:{suite()}), or a base whose "
            f"label {MODULES} lists {','.join(missing)}")


def lacking(engine: Engine, names: list[str], say: Say) -> dict[str, list[str]]:
    """The models among ``names`` whose needs the base image lacks, and what
    each lacks: known before any of them runs (a pulled python:3.11-slim has
    neither gevent nor uvloop)."""
    wanted = {n: needs_of(n) for n in names}
    if not any(wanted.values()):
        return {}
    base = ensure_base(engine, say)
    found = {n: _missing(engine, base, need) for n, need in wanted.items()}
    return {n: missing for n, missing in found.items() if missing}


def runnable(engine: Engine, chosen: list[Model], explicit: bool, say: Say) -> list[Model]:
    """The models the base image can run.  One named that it cannot: exit 2
    before anything starts; otherwise (every model, by default) left out,
    with a line saying why."""
    missing_by_name = lacking(engine, [m.name for m in chosen], say)
    if missing_by_name and explicit:
        name, missing = next(iter(missing_by_name.items()))
        raise EnvironmentProblem(needs_line(name, missing))
    for name, missing in missing_by_name.items():
        say(f"left out: {needs_line(name, missing)}")
    return [m for m in chosen if m.name not in missing_by_name]


def _missing(engine: Engine, image: str, needs: list[str]) -> list[str]:
    if not needs:
        return []
    have = set(filter(None, engine.image_labels(image).get(MODULES, "").split(",")))
    return [n for n in needs if n not in have]
