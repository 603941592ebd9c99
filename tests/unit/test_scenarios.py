"""Scenario files: validated, and every error names the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import UsageError
from lab.plan import scenarios


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    return f


GOOD = """name: x
claim: c
judge: served_at_once
expect: peak_served
probes:
  main:
    clients: max(3, workers + 1)
    duration: 2
    at:
      - {t: 0.5, client: 1, send: "BLOCK 500"}
"""


def test_shipped_scenarios_load_and_cover_every_expectation() -> None:
    from lab.plan.models import EXPECT, OPTIONAL_EXPECT
    found = scenarios.all_scenarios()
    assert len(found) >= 11
    judged = {key for s in found.values() for key in s.judges}
    assert set(EXPECT) | set(OPTIONAL_EXPECT) <= judged


def test_flags_and_expressions(tmp_path: Path) -> None:
    s = scenarios.load_scenario(write(tmp_path, GOOD))
    assert s.probes["main"].flags(4) == ["--clients=5", "--duration=2", "--at=0.5:1:BLOCK 500"]
    assert s.probes["main"].flags(0) == ["--clients=3", "--duration=2", "--at=0.5:1:BLOCK 500"]


@pytest.mark.parametrize("change, message", [
    (("judge: served_at_once", "judge: nope"), r"s.yaml:3: unknown judge 'nope'"),
    (("    duration: 2\n", "    duration: 2\n    colour: red\n"), r"s.yaml:9: probe 'main' has unknown key 'colour'"),
    (("clients: max(3, workers + 1)", "clients: import os"), r"s.yaml:7: 'import os' is not a number"),
    (("    duration: 2\n", ""), r"s.yaml:6: probe 'main' needs a 'duration'"),
    (("{t: 0.5, client: 1, send: \"BLOCK 500\"}", "{t: -1, client: 1, send: x}"), r"s.yaml:10: t must be >= 0"),
    (("expect: peak_served", "expect: happiness"), r"s.yaml:4: 'happiness' is not a model.yaml expectation"),
    (("  main:\n", "  main: [\n"), r"s.yaml:\d+:\d+: "),
])
def test_bad_scenarios_name_file_and_line(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        scenarios.load_scenario(write(tmp_path, GOOD.replace(*change)))


def test_unknown_scenario_lists_the_real_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown scenario 'nope'; the scenarios are: .*served-at-once"):
        scenarios.get("nope")


def test_a_path_that_does_not_exist_is_no_such_file(tmp_path: Path) -> None:
    for given in (str(tmp_path / "nope.yaml"), "scenarios/nope.yml", "some/dir/gil"):
        with pytest.raises(UsageError, match=r": no such file"):
            scenarios.get(given)


def test_a_scenario_file_by_path(tmp_path: Path) -> None:
    assert scenarios.get(str(write(tmp_path, GOOD))).name == "x"


def test_a_scenario_expects_only_keys_its_judge_judges(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"s.yaml:4: judge 'served_at_once' does not judge 'threads' "
                                         r"\(it judges: peak_served, thread_count\)"):
        scenarios.load_scenario(write(tmp_path, GOOD.replace("expect: peak_served", "expect: threads")))


def test_scenarios_load_without_an_import_cycle() -> None:
    """checks <-> scenarios <-> judges: each imports cleanly on its own."""
    import subprocess
    import sys
    for module in ("lab.plan.scenarios", "lab.checks", "lab.checks.judges", "lab.checks.registry"):
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_every_judge_the_scenarios_know_is_registered_with_its_keys() -> None:
    """The scenarios' table of judges (name -> keys) and the registered judges are one list."""
    from lab.checks import runner  # noqa: F401  (importing the runner registers every judge)
    from lab.checks.registry import ENTRIES
    assert set(ENTRIES) == set(scenarios.JUDGE_KEYS)
    assert all(ENTRIES[name].keys == keys and ENTRIES[name].needs for name, keys in scenarios.JUDGE_KEYS.items())
