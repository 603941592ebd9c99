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


# -- numbers: each in its range, finite, of its type; every error at file:line -----------------

@pytest.mark.parametrize("change, message", [
    (("clients: max(3, workers + 1)", "clients: .nan"), r"s.yaml:7: clients must be a whole number from 1 to "),
    (("clients: max(3, workers + 1)", "clients: .inf"), r"s.yaml:7: clients must be a whole number"),
    (("clients: max(3, workers + 1)", "clients: 1e9"), r"s.yaml:7: clients is 1e\+09; it must be from 1 to 19936"),
    (("clients: max(3, workers + 1)", "clients: 1000000000"), r"s.yaml:7: clients is 1e\+09; it must be from 1 to"),
    (("clients: max(3, workers + 1)", "clients: 0"), r"s.yaml:7: clients is 0; it must be from 1"),
    (("clients: max(3, workers + 1)", "clients: 2.5"), r"s.yaml:7: clients must be a whole number"),
    (("clients: max(3, workers + 1)", "clients: true"), r"s.yaml:7: clients must be a whole number"),
    (("clients: max(3, workers + 1)", "clients: 12 // workers"), r"s.yaml:7: '12 // workers' is not a number"),
    (("    duration: 2\n", "    duration: 2\n    interval: 1e999\n"), r"s.yaml:9: interval must be a number"),
    (("    duration: 2\n", "    duration: 2\n    interval: .nan\n"), r"s.yaml:9: interval must be a number"),
    (("    duration: 2\n", "    duration: 2\n    interval: -5\n"), r"s.yaml:9: interval is -5; it must be from 0.1"),
    (("    duration: 2\n", "    duration: 1e999\n"), r"s.yaml:8: duration must be a number"),
    (("    duration: 2\n", "    duration: 2\n    warmup: 2\n"), r"s.yaml:9: probe 'main' warms up for 2 s of its 2"),
    (("    duration: 2\n", "    duration: 2\n    active: 9\n"), r"s.yaml:9: probe 'main' has 9 active of"),
    (("    duration: 2\n", "    duration: 2\n    slow-clients: 9\n"), r"s.yaml:9: probe 'main' has 9 slow-clients of"),
    (("    duration: 2\n", "    duration: 2\n    pace: 0\n"), r"s.yaml:9: pace is 0; it must be from 0.1"),
    (("    duration: 2\n", "    duration: 2\n    pace: -100\n"), r"s.yaml:9: pace is -100; it must be from 0.1"),
    (("    duration: 2\n", "    duration: 2\n    piece: 0\n"), r"s.yaml:9: piece is 0; it must be from 1"),
    (("    duration: 2\n", "    duration: 2\n    piece: 1.5\n"), r"s.yaml:9: piece must be a whole number"),
    (("{t: 0.5, client: 1, send: \"BLOCK 500\"}", "{t: 5, client: 1, send: x}"),
     r"s.yaml:10: probe 'main' sends at 5 s to client 1: outside its 2 s"),
    (("{t: 0.5, client: 1, send: \"BLOCK 500\"}", "{t: .nan, client: 1, send: x}"), r"s.yaml:10: t must be >= 0"),
    (("name: x\n", "name: x\norder: soon\n"), r"s.yaml:2: order must be a whole number from 0 to 10000, got 'soon'"),
    (("name: x\n", "name: x\norder: 1e999\n"), r"s.yaml:2: order must be a whole number"),
    (("name: x\n", "name: x\nidle: .inf\n"), r"s.yaml:2: idle must be a number"),
    (("name: x\n", "name: x\nfresh: sometimes\n"), r"s.yaml:2: fresh is true or false, got 'sometimes'"),
    (("name: x\n", "name: x\nsettings: {peak_within_s: .nan}\n"), r"s.yaml:2: peak_within_s must be a number"),
    (("name: x\n", "name: x\nsettings: {hurry: 1}\n"), r"s.yaml:2: unknown setting 'hurry'"),
])
def test_scenario_numbers_have_ranges(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        scenarios.load_scenario(write(tmp_path, GOOD.replace(*change)))


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_bytes(GOOD.replace("claim: c", "claim: caf\xe9").encode("latin-1"))
    with pytest.raises(UsageError, match=r"s.yaml:2: not UTF-8 text \(byte 0xe9\)"):
        scenarios.load_scenario(f)
    f.write_bytes(GOOD.replace("claim: c", "claim: a\x01b").encode())
    with pytest.raises(UsageError, match=r"s.yaml:2: a character YAML does not allow \(U\+0001\)"):
        scenarios.load_scenario(f)


@pytest.mark.parametrize("argv, message", [
    (["run", "{file}", "--model", "epoll"], "s.yaml:2: order must be a whole number from 0 to 10000, got 'soon'"),
    (["check", "epoll", "--scenario", "{file}"], "s.yaml:2: order must be a whole number"),
])
def test_a_bad_scenario_file_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 argv: list[str], message: str) -> None:
    from lab import cli
    f = write(tmp_path, GOOD.replace("name: x\n", "name: x\norder: soon\n"))
    assert cli.main([a.format(file=f) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_the_measurement_scenarios_load_and_are_not_checks() -> None:
    """scenarios/measure/ (the slow-clients timeouts of docs/checks.md) load as
    scenario files, and lab check, which reads scenarios/*.yaml, never runs them."""
    files = sorted((scenarios.SCENARIOS / "measure").glob("*.yaml"))
    names = {scenarios.load_scenario(f).name for f in files}
    assert names == {"slow-timeout", "slow-rate", "slow-long"}
    assert not names & set(scenarios.all_scenarios())
