"""model.yaml: every model declares what it should do, and bad files say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import config, models
from lab.errors import UsageError


def test_every_model_folder_is_a_valid_model() -> None:
    found = models.all_models()
    assert {"blocking", "threads"} <= set(found)
    for name, m in found.items():
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
])
def test_bad_model_yaml_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.yaml").write_text(text)
    with pytest.raises(UsageError, match=message):
        models.all_models(tmp_path)
