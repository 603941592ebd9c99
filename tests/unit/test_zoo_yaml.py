"""tests/zoo/zoo.yaml is well formed and complete (no Docker).

Every server has every key, a class from lab.plan.models.CLASSES, a size exactly
where the class has one, a per-connection growth exactly where the class has
one, a bound that agrees with the class, its table for K = 1, 2, 4, 8, and
a table that agrees with the truth it is the evidence for.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from lab.run.images import FAMILIES
from lab.plan.models import CLASSES

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"


def _zoo_module():
    spec = importlib.util.spec_from_file_location("zoo_yaml_loader", ZOO_DIR / "zoo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


zoo = _zoo_module()
ZOO = zoo.load()
SERVERS = sorted(ZOO.servers)


def test_enough_servers_none_of_the_labs_own():
    assert len(ZOO.servers) >= 10
    own = {"apache2", "nginx", "postgresql-15", "redis-server", "memcached"}
    for server in ZOO.servers.values():
        assert not own & set(server.packages), server.name
    assert ZOO.family.name not in FAMILIES  # its own family, not one of the lab's


def test_the_classes_are_covered():
    seen = {s.truth.cls for s in ZOO.servers.values()}
    assert seen == set(CLASSES)
    assert {s.protocol for s in ZOO.servers.values()} >= {"http", "line", "postgres"}
    assert any(s.banner for s in ZOO.servers.values())
    assert any(s.closes_after_response for s in ZOO.servers.values())


def test_every_launcher_name_is_in_the_zoo_and_back():
    text = (ZOO_DIR / "image" / "zoo-serve").read_text()
    for name in ZOO.servers:
        assert f"\n{name})" in text, f"zoo-serve has no case for {name}"


@pytest.mark.parametrize("name", SERVERS)
def test_table_agrees_with_truth(name):
    s = ZOO.servers[name]
    t = s.truth
    base = s.verified["baseline"]
    held = s.verified["held"]
    assert [h["k"] for h in held] == list(zoo.KS)
    for h in held:
        grown_p = h["processes"] - base["processes"]
        grown_t = h["threads"] - base["threads"]
        if t.cls != "one-at-a-time":  # up to 8, only pydoc's listen queue (5) was ever full
            assert h["connected"] == h["k"], (name, h)
        if t.cls in zoo.PER_CONNECTION:
            assert grown_p == t.per_connection["processes"] * h["connected"], (name, h)
            assert grown_t == t.per_connection["threads"] * h["connected"], (name, h)
        else:  # pools and loops: nothing grows with held connections
            assert (grown_p, grown_t) == (0, 0), (name, h)
        served_all = t.bound == zoo.UNBOUNDED or h["connected"] < t.bound
        assert h["answered"] is served_all, (name, h)
        if h["answered"]:
            assert h["ms"] is not None and h["ms"] < 2000, (name, h)


@pytest.mark.parametrize("name", SERVERS)
def test_server_fields(name):
    s = ZOO.servers[name]
    assert s.truth.cls in CLASSES
    assert s.request and s.partial and s.reply
    assert s.request != s.partial
    assert s.idle_timeout is None or s.idle_timeout <= s.idle_checked
    assert s.serve() == ["zoo-serve", name]
    if s.truth.hybrid:
        assert s.truth.cls in zoo.SIZED


def _doc():
    import yaml
    return yaml.safe_load((ZOO_DIR / "zoo.yaml").read_text())


def _load(tmp_path, doc):
    import yaml
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(doc))
    return zoo.load(path)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("truth"), "missing truth"),
    (lambda s: s.update(colour="red"), "unknown key colour"),
    (lambda s: s["truth"].update({"class": "actor-model"}), "is not one of"),
    (lambda s: s.update(protocol="gopher"), "not one the swarm speaks"),
    (lambda s: s["verified"]["held"].pop(), "steps for K"),
    (lambda s: s["verified"]["held"][0].update(answered="yes"), "true or false"),
    (lambda s: s.update(packages={"no-such-package": "1.0"}), "not in family.packages"),
])
def test_errors_name_the_server_and_key(tmp_path, change, message):
    doc = _doc()
    change(doc["servers"][0])
    with pytest.raises(zoo.ZooError) as err:
        _load(tmp_path, doc)
    assert message in str(err.value)
    assert doc["servers"][0]["name"] in str(err.value)


def test_sizes_consistent_with_class(tmp_path):
    doc = _doc()
    pool = next(s for s in doc["servers"] if s["truth"]["class"] == "process-pool")
    pool["truth"]["n"] = None
    with pytest.raises(zoo.ZooError, match="whole number"):
        _load(tmp_path, doc)
    doc = _doc()
    loop = next(s for s in doc["servers"] if s["truth"]["class"] == "event-loop")
    loop["truth"]["n"] = 3
    with pytest.raises(zoo.ZooError, match="has no size"):
        _load(tmp_path, doc)
    doc = _doc()
    pool = next(s for s in doc["servers"] if s["truth"]["class"] == "thread-pool")
    pool["truth"]["bound"] = zoo.UNBOUNDED
    with pytest.raises(zoo.ZooError, match="serves"):
        _load(tmp_path, doc)
    doc = _doc()
    per = next(s for s in doc["servers"] if s["truth"]["class"] == "process-per-connection")
    per["truth"]["per_connection"] = None
    with pytest.raises(zoo.ZooError, match="per_connection"):
        _load(tmp_path, doc)


def test_unreadable_file_is_one_clear_error(tmp_path):
    with pytest.raises(zoo.ZooError, match="cannot read"):
        zoo.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("servers: [\n")
    with pytest.raises(zoo.ZooError, match="cannot read"):
        zoo.load(tmp_path / "bad.yaml")


def test_family_may_not_take_a_labs_name():
    from lab.run import images
    from lab.errors import UsageError
    with pytest.raises(UsageError, match="one of the lab's own"):
        images.ensure_family(None, images.Family("tools", ("cowsay",)), print)  # type: ignore[arg-type]


def test_a_family_from_elsewhere_is_made_like_the_labs_own():
    from lab.run import images

    class Engine:  # has every image already: nothing is bootstrapped
        lab = "iolabtest"

        def image_exists(self, name):
            return True

    assert images.ensure_family(Engine(), ZOO.family, print) == images.family_tag(ZOO.family)  # type: ignore[arg-type]
    assert images.family_tag(ZOO.family).startswith("iolab/zoo:")
