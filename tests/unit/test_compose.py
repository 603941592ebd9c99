"""compose.yaml as the lab reads it: interpolation, translation, errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import config
from lab.engine.local import create_kwargs
from lab.errors import UsageError
from lab.plan import compose


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "compose.yaml"
    f.write_text(text)
    return f


def test_the_real_topology_loads_with_every_model_and_the_swarm() -> None:
    topo = compose.load_topology(config.compose_file(), env={})
    models = {p.parent.name for p in config.SERVICES.glob("*/model.yaml")}
    assert models <= set(topo.services)
    assert "swarm" in topo.services
    for name, svc in topo.services.items():
        if name != "swarm":
            assert svc.profiles == [name], f"{name} must be selected by its own profile"


@pytest.mark.parametrize("service", ["threads", "swarm"])
def test_every_container_is_boxed(service: str) -> None:
    topo = compose.load_topology(config.compose_file(), env={})
    kw = create_kwargs(compose.unit_spec(topo.service(service), image="i", name="n", network="net",
                                         labels={"x": "y"}))
    assert kw["user"] == "10001:10001"
    assert kw["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in kw["security_opt"]
    assert kw["read_only"] is True and "/tmp" in kw["tmpfs"]
    assert kw["mem_limit"] and kw["nano_cpus"] > 0 and kw["pids_limit"] > 0
    assert {u["Name"] for u in kw["ulimits"]} == {"nofile"}
    assert "ports" not in kw  # nothing published unless asked
    assert not any("docker.sock" in v for v in kw.get("volumes", {}))
    assert kw["labels"]["x"] == "y" and kw["labels"]["org.iolab.lab"]


def test_publishing_binds_loopback_only() -> None:
    topo = compose.load_topology(config.compose_file(), env={})
    kw = create_kwargs(compose.unit_spec(topo.service("threads"), image="i", name="n", network="net",
                                         labels={}, publish=True))
    assert kw["ports"] == {"12345/tcp": ("127.0.0.1", None)}


def test_interpolation_follows_compose_rules(tmp_path: Path) -> None:
    f = write(tmp_path, "services:\n  a:\n    image: ${IMG:-base}\n    command: [x, '$$HOME', '${N-7}', $M]\n")
    topo = compose.load_topology(f, env={"IMG": "", "M": "m"})
    assert topo.service("a").spec["image"] == "base"
    assert topo.service("a").spec["command"] == ["x", "$HOME", "7", "m"]
    topo = compose.load_topology(f, env={"IMG": "mine", "N": ""})
    assert topo.service("a").spec["image"] == "mine"
    assert topo.service("a").spec["command"][2] == ""


def test_required_variable_names_its_line(tmp_path: Path) -> None:
    f = write(tmp_path, "services:\n  a:\n    image: ${IMG:?set IMG}\n")
    with pytest.raises(UsageError, match=r"compose.yaml:3: \$\{IMG\} must be set: set IMG"):
        compose.load_topology(f, env={})


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    f = write(tmp_path, "services:\n  a:\n    image: x\n   bad: [\n")
    with pytest.raises(UsageError, match=r"compose.yaml:4:\d+: "):
        compose.load_topology(f, env={})


def test_unknown_key_names_its_line(tmp_path: Path) -> None:
    f = write(tmp_path, "services:\n  a:\n    image: x\n    privileged: true\n")
    with pytest.raises(UsageError, match=r"compose.yaml:4: service 'a' uses 'privileged'"):
        compose.load_topology(f, env={})


def test_duplicate_key_is_an_error_but_merge_overrides_are_not(tmp_path: Path) -> None:
    f = write(tmp_path, "x-a: &a\n  image: one\nservices:\n  s:\n    <<: *a\n    image: two\n")
    assert compose.load_topology(f, env={}).service("s").spec["image"] == "two"
    f = write(tmp_path, "services:\n  s:\n    image: one\n    image: two\n")
    with pytest.raises(UsageError, match=r":4:5: duplicate key 'image' \(first on line 3\)"):
        compose.load_topology(f, env={})


def test_durations() -> None:
    assert compose.seconds("250ms", "x") == 0.25
    assert compose.seconds("1m30s", "x") == 90
    with pytest.raises(UsageError):
        compose.seconds("soon", "x")
