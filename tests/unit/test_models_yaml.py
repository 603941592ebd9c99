"""model.yaml: every model declares what it should do, and bad files say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import config
from lab.errors import UsageError
from lab.plan import models


def test_every_model_folder_is_a_valid_model() -> None:
    found = models.all_models()
    assert {"blocking", "threads"} <= set(found)
    for name, m in found.items():
        if m.kind == "model":  # a Python model; references and servers are built otherwise
            assert (config.SERVICES / name / "server.py").exists()
        assert m.summary and len(m.description) > 80


def test_unknown_model_lists_the_real_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown model 'nope'; the models are: .*blocking.*threads"):
        models.get("nope")


@pytest.mark.parametrize("text, message", [
    ("name: m\nsummary: s\ndescription: d\n", r"model.yaml:1: model.yaml needs 'expect'"),
    ("name: other\nsummary: s\ndescription: d\nexpect: {}\n", r":1: name 'other' must match"),
    ("name: m\nsummary: s\ndescription: d\nexpect:\n  peak_served: some\n",
     r"model.yaml:5: expect needs 'threads'|model.yaml:5: expect.peak_served is 'some'"),
    ("name: m\nkind: server\nsummary: s\ndescription: d\nexpect:\nworkers: 4\nworkers_step: 3\n",
     r"model.yaml:7: workers_step is a whole number >= 1 that divides workers"),
    ("name: m\nkind: server\nsummary: s\ndescription: d\nexpect:\nworkers_step: 2\n",
     r"model.yaml:6: workers_step is a whole number >= 1 that divides workers"),
])
def test_bad_model_yaml_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.yaml").write_text(text)
    with pytest.raises(UsageError, match=message):
        models.all_models(tmp_path)


REFERENCE = """name: ref
kind: reference
summary: s
description: d
protocol: line
port: 7000
expect:
  sleep_stalls_others: false
"""


def write_model(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).mkdir()
    (tmp_path / name / "model.yaml").write_text(text)


def test_a_reference_declares_only_what_it_supports(tmp_path: Path) -> None:
    write_model(tmp_path, "ref", REFERENCE)
    write_model(tmp_path, "redis", "name: redis\nkind: server\nsummary: s\ndescription: d\nprotocol: redis\n"
                                   "port: 6379\nexpect:\n")
    found = models.all_models(tmp_path)
    ref, redis = found["ref"], found["redis"]
    assert (ref.kind, ref.protocol, ref.port, ref.expect) == ("reference", "line", 7000, {"sleep_stalls_others": False})
    assert (redis.kind, redis.protocol, redis.port, redis.expect) == ("server", "redis", 6379, {})


def test_a_model_is_a_line_server_on_12345_unless_it_says_otherwise() -> None:
    for m in models.all_models().values():
        if m.kind == "model":
            assert (m.protocol, m.port) == ("line", 12345)


@pytest.mark.parametrize("change, message", [
    (("kind: reference", "kind: robot"), r"model.yaml:2: kind is 'robot'; allowed: model \| reference \| server"),
    (("protocol: line", "protocol: smtp"), r"model.yaml:5: protocol is 'smtp'"),
    (("port: 7000", "port: 70000"), r"model.yaml:6: port must be a whole number from 1 to 65535"),
    (("sleep_stalls_others: false", "sleep_stalls_others: maybe"), r"model.yaml:8: expect.sleep_stalls_others"),
    (("kind: reference", "kind: model"), r"expect needs 'peak_served'"),  # a model declares every key
])
def test_bad_kinds_protocols_and_ports_name_the_line(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    write_model(tmp_path, "ref", REFERENCE.replace(*change))
    with pytest.raises(UsageError, match=message):
        models.all_models(tmp_path)


MODEL = "name: m\nkind: server\nsummary: s\ndescription: d\nexpect:\n  peak_served: 1\n"


@pytest.mark.parametrize("extra, message", [
    ("workers: true\n", r"model.yaml:7: workers must be a whole number from 1 to 1024"),
    ("workers: 1e9\n", r"model.yaml:7: workers must be a whole number"),
    ("workers: 100000\n", r"model.yaml:7: workers must be a whole number from 1 to 1024"),
    ("workers: .nan\n", r"model.yaml:7: workers must be a whole number"),
    ("slow: {request: x, ms: 100000000}\n", r"model.yaml:7: slow is \{request: one line of text, ms: a whole number"),
    ("  thread_count: true\n", r"model.yaml:7: expect.thread_count is True; allowed"),
    ("  thread_count: .nan\n", r"model.yaml:7: expect.thread_count is nan; allowed"),
    ("  thread_count: 0\n", r"model.yaml:7: expect.thread_count is 0; it must be from 1"),
    ("  fd_limit: 99999999999\n", r"model.yaml:7: expect.fd_limit is 99999999999; it must be from 1 to"),
    ("tolerances: {stall_ms_min: .nan}\n", r"model.yaml:7: tolerance stall_ms_min must be a finite number"),
    ("tolerances: {stall_ms_min: 1e999}\n", r"model.yaml:7: tolerance stall_ms_min must be a finite number"),
    ("tolerances: {patience: 3}\n", r"model.yaml:7: unknown tolerance 'patience'"),
])
def test_model_yaml_numbers_have_ranges(tmp_path: Path, extra: str, message: str) -> None:
    write_model(tmp_path, "m", MODEL + extra)
    with pytest.raises(UsageError, match=message):
        models.all_models(tmp_path)


def test_a_model_yaml_that_is_not_utf8_says_where(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.yaml").write_bytes(MODEL.replace("description: d", "description: \xe9").encode("latin-1"))
    with pytest.raises(UsageError, match=r"m/model.yaml:4: not UTF-8 text"):
        models.all_models(tmp_path)


@pytest.mark.parametrize("text", ["thread_count=true", "thread_count=.nan", "fd_limit=-1"])
def test_expect_overrides_have_the_same_ranges(text: str) -> None:
    with pytest.raises(UsageError, match=r"--expect .*: expect\.(thread_count|fd_limit) is"):
        models.parse_expect([text])
