"""Which image each compose.yaml service runs, how family images are named,
and the one-line refusals (no mmdebstrap; a model whose base lacks a module).
No engine here: a fake one answers the few questions the code asks."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab import config
from lab.engine import EngineError, Gone
from lab.errors import EnvironmentProblem, UsageError
from lab.plan import compose
from lab.run import images

ROOT = Path(__file__).resolve().parents[2]


class FakeEngine:
    """Answers the image questions of lab.engine.Engine for the names it holds, and nothing else."""

    lab = "iolabtest"

    def __init__(self, held: dict[str, dict[str, str]]) -> None:
        self.held = held

    def image_exists(self, name: str) -> bool:
        return name in self.held

    def image_id(self, name: str) -> str:
        if name not in self.held:
            raise Gone(f"no such image: {name}")
        return f"sha256:{abs(hash(name))}"

    def image_labels(self, name: str) -> dict[str, str]:
        if name not in self.held:
            raise Gone(f"no such image: {name}")
        return self.held[name]

    def pull_image(self, name: str) -> None:
        self.pulled = name
        raise EngineError("lookup registry-1.docker.io: no such host")


@pytest.fixture
def topology() -> compose.Topology:
    return compose.load_topology(ROOT / "compose.yaml", env={})


def test_a_family_image_is_named_by_its_suite_and_a_hash_of_its_recipe(monkeypatch) -> None:
    tools = images.FAMILIES["tools"]
    tag = images.family_tag(tools)
    assert tag.startswith("iolab/tools:bookworm-") and tag == images.family_tag(tools)
    assert images.family_tag(images.Family("tools", (*tools.packages, "strace"))) != tag
    monkeypatch.setenv("LAB_BOOTSTRAP_SUITE", "trixie")
    assert images.family_tag(tools).startswith("iolab/tools:trixie-")


@pytest.mark.parametrize("name, family", [
    ("iolab/tools:bookworm", "tools"), ("iolab/base:bookworm-0123456789", "base"), ("iolab/servers", "servers"),
    ("iolab/app:latest", None), ("python:3.11-slim", None), ("localhost:5000/iolab/tools:1", None),
])
def test_an_image_name_tells_its_family(name: str, family: str | None) -> None:
    found = images.family_of(name)
    assert (found.name if found else None) == family


def test_the_families_carry_what_the_lab_needs() -> None:
    base, tools = images.FAMILIES["base"], images.FAMILIES["tools"]
    assert {"python3", "procps", "python3-gevent", "python3-uvloop"} <= set(base.packages)
    assert base.modules == ("gevent", "uvloop")
    assert {"netcat-openbsd", "curl", "wrk", "hey", "apache2-utils", "gcc", "libc6-dev"} <= set(tools.packages)
    assert {"apache2", "nginx", "postgresql-15", "redis-server", "memcached"} <= set(images.FAMILIES["servers"].packages)


def test_every_app_service_builds_the_same_image_as_ensure_app(topology) -> None:
    """LiveRun.start (per service) and ensure_app (compare, bench, tests)
    must agree, or one run would build two app images."""
    app = images.app_build()
    for name in ("threads", "epoll", "swarm"):
        build = images.build_of(topology.service(name))
        assert build is not None
        assert (build.repo, build.context, build.dockerfile, build.target, set(build.args)) == \
               (app.repo, app.context, app.dockerfile, app.target, set(app.args)), name


def test_native_is_built_from_its_folder_with_the_tools_and_the_base(topology) -> None:
    build = images.build_of(topology.service("native"))
    assert build is not None and build.repo == "iolab/native" and build.role == "native"
    assert build.context == (ROOT / "services" / "native").resolve()
    assert images.family_of(build.args["TOOLS_IMAGE"]) is images.FAMILIES["tools"]
    assert "BASE_IMAGE" in build.args


def test_tools_is_a_family_image_with_no_build_so_compose_never_builds_it(topology) -> None:
    tools = topology.service("tools")
    assert images.build_of(tools) is None
    assert images.family_of(tools.spec["image"]) is images.FAMILIES["tools"]
    assert tools.profiles == ["tools"]


def test_the_app_builds_on_the_base_when_the_tools_image_cannot_be_made(monkeypatch) -> None:
    """No mmdebstrap where a registry answers: the app image still builds,
    without the swarm's fast path (its Dockerfile compiles only where gcc
    is); the native reference, which is nothing without its compiler, fails."""
    def no_tools(eng: Any, name: str, *a: Any) -> str:
        raise images.EnvironmentProblem("mmdebstrap is missing: install it (sudo apt-get install mmdebstrap)")

    said: list[str] = []
    monkeypatch.setattr(images, "ensure_base", lambda *a: "python:3.11-slim")
    monkeypatch.setattr(images, "ensure_family", no_tools)
    app = images._resolve_args(FakeEngine({}), images.app_build(), said.append, "r")  # type: ignore[arg-type]
    assert app == {"BASE_IMAGE": "python:3.11-slim", "TOOLS_IMAGE": "python:3.11-slim"}
    assert len(said) == 1 and "the swarm runs its Python loop" in said[0] and "mmdebstrap is missing" in said[0]
    native = images.Build("iolab/native", "iolab/native:latest", ROOT, args={
        "BASE_IMAGE": "python:3.11-slim", "TOOLS_IMAGE": "iolab/tools:bookworm"})
    with pytest.raises(images.EnvironmentProblem, match="mmdebstrap is missing"):
        images._resolve_args(FakeEngine({}), native, said.append, "r")  # type: ignore[arg-type]


def test_build_arguments_are_the_labs_own_images(monkeypatch) -> None:
    monkeypatch.setattr(images, "ensure_base", lambda *a: "iolab/base:bookworm-aaaa")
    monkeypatch.setattr(images, "ensure_family", lambda eng, name, *a: f"iolab/{name}:bookworm-bbbb")
    build = images.Build("iolab/native", "iolab/native:latest", ROOT, args={
        "BASE_IMAGE": "python:3.11-slim", "TOOLS_IMAGE": "iolab/tools:bookworm", "OTHER": "kept"})
    assert images._resolve_args(FakeEngine({}), build, print, "r") == {  # type: ignore[arg-type]
        "BASE_IMAGE": "iolab/base:bookworm-aaaa", "TOOLS_IMAGE": "iolab/tools:bookworm-bbbb", "OTHER": "kept"}


def _model_with_needs(tmp_path: Path, needs: Any) -> Path:
    folder = tmp_path / "greenlets"
    folder.mkdir()
    text = (ROOT / "services" / "threads" / "model.yaml").read_text().replace("name: threads", "name: greenlets")
    (folder / "model.yaml").write_text(text + f"needs: {needs}\n")
    return tmp_path


def test_a_model_refuses_a_base_without_the_modules_it_needs(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(config, "SERVICES", _model_with_needs(tmp_path, "[gevent, uvloop]"))
    monkeypatch.delenv("LAB_BASE_IMAGE", raising=False)
    engine = FakeEngine({"plain": {}, "half": {images.MODULES: "gevent"},
                         "full": {images.MODULES: "gevent,uvloop"}})
    with pytest.raises(EnvironmentProblem) as plain:
        images.check_needs(engine, "plain", "greenlets")  # type: ignore[arg-type]
    line = str(plain.value)
    assert "\n" not in line and "greenlets needs gevent, uvloop" in line
    assert "LAB_BASE_IMAGE=iolab/base:bookworm" in line
    with pytest.raises(EnvironmentProblem, match="greenlets needs uvloop,"):
        images.check_needs(engine, "half", "greenlets")  # type: ignore[arg-type]
    images.check_needs(engine, "full", "greenlets")  # type: ignore[arg-type]
    images.check_needs(engine, "plain", "no-such-model")  # type: ignore[arg-type]  # swarm, native...


def test_needs_must_be_a_list_of_module_names(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(config, "SERVICES", _model_with_needs(tmp_path, "gevent"))
    with pytest.raises(UsageError, match="needs must be a list of Python module names"):
        images.needs_of("greenlets")


def test_no_mmdebstrap_and_no_root_is_one_line_on_what_to_do(monkeypatch) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match=r"^mmdebstrap is missing: install it \(sudo apt-get install mmdebstrap\)$"):
        images._mmdebstrap(print)


def test_a_failed_bootstrap_names_mmdebstrap_and_its_last_line(monkeypatch) -> None:
    ran: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "I: something\nE: cannot find suite nowhere\n")

    monkeypatch.setattr(images, "_mmdebstrap", lambda say: "/usr/bin/mmdebstrap")
    monkeypatch.setattr(images.subprocess, "run", fake_run)
    family = images.FAMILIES["tools"]
    with pytest.raises(EnvironmentProblem, match=r"^mmdebstrap exited 1: E: cannot find suite nowhere$"):
        images._bootstrap(FakeEngine({}), family, images.family_tag(family), print, "r")  # type: ignore[arg-type]
    cmd = ran[0]
    assert "--variant=essential" in cmd and f"--include={','.join(family.packages)}" in cmd
    assert any(c.startswith("--customize-hook=rm -rf") and '"$1"/usr/share/doc/*' in c for c in cmd)
    assert cmd[-2] == "bookworm"


@pytest.mark.parametrize("configured, held, want, pulled", [
    (None, ["python:3.11-slim"], "python:3.11-slim", False),     # the default, when the engine has it
    (None, ["FAMILY"], "FAMILY", False),                         # else the lab's base, made before
    (None, [], "FAMILY", True),                                  # else a pull, which fails: bootstrap
    ("iolab/base:bookworm", ["python:3.11-slim"], "FAMILY", False),  # the lab's base, asked by name
    ("mine:1", ["mine:1", "FAMILY"], "mine:1", False),           # an image of your own
])
def test_the_base_is_found_in_order(monkeypatch, configured, held, want, pulled) -> None:
    family = images.family_tag(images.FAMILIES["base"])
    engine = FakeEngine({family if h == "FAMILY" else h: {} for h in held})
    made: list[str] = []
    monkeypatch.setattr(images, "_bootstrap", lambda eng, fam, tag, say, run: made.append(tag) or 0.0)
    if configured:
        monkeypatch.setenv("LAB_BASE_IMAGE", configured)
    else:
        monkeypatch.delenv("LAB_BASE_IMAGE", raising=False)
    got = images.ensure_base(engine, lambda line: None)  # type: ignore[arg-type]
    assert got == (family if want == "FAMILY" else want)
    assert hasattr(engine, "pulled") == pulled
    assert made == ([family] if want == "FAMILY" and "FAMILY" not in held else [])
