"""What a reply costs, without Docker: strace's summary, /proc's switch counters,
the tracing sidecar's spec and where it is refused.  The judge itself is in
test_judges.py's tables (syscalls), with its absurd evidence."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lab.engine.local import create_kwargs
from lab.engine.spec import UnitSpec
from lab.engine.swarmmode_spec import service_create
from lab.errors import UsageError
from lab.measure import strace, switches
from lab.plan import scenarios
from lab.run import tracer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "strace"


def test_a_real_strace_summary_is_read_whole() -> None:
    """Captured from the sidecar on the epoll model: 8 clients ping-pong beside 64 idle ones."""
    counts = strace.parse_summary((FIXTURES / "epoll-traced-idle.txt").read_text())
    assert counts.calls["recvfrom"] == 13465 and counts.calls["sendto"] == 13401
    assert counts.calls["epoll_wait"] == 1710 and counts.errors == {"accept4": 1}
    assert counts.total == 29089  # the sum of the rows, as its total row says
    groups = strace.grouped(counts)
    assert groups["recv"] == 13465 and groups["accept"] == 73 and groups["eagain"] == 1
    assert groups["select"] == groups["poll"] == groups["io_uring_enter"] == 0


def test_an_older_total_row_and_blank_errors_are_read() -> None:
    text = ("strace: Process 9 attached\n"
            "% time     seconds  usecs/call     calls    errors syscall\n"
            "------ ----------- ----------- --------- --------- ----------------\n"
            " 90.00    0.000900          10        90        40 recvfrom\n"
            " 10.00    0.000100          10        10           select\n"
            "------ ----------- ----------- --------- --------- ----------------\n"
            "100.00    0.001000                   100        40 total\n")
    counts = strace.parse_summary(text)
    assert counts.calls == {"recvfrom": 90, "select": 10} and counts.errors == {"recvfrom": 40}
    assert strace.per_reply(counts, 10)["eagain"] == 4.0


@pytest.mark.parametrize("text", ["", "strace: attach: ptrace(PTRACE_SEIZE, 8): Operation not permitted\n"])
def test_no_table_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        strace.parse_summary(text)


@pytest.mark.parametrize("replies", [0, -1, math.nan, math.inf, True, None, "10"])
def test_an_impossible_denominator_is_refused(replies: object) -> None:
    with pytest.raises(ValueError):
        strace.per_reply(strace.SyscallCounts({"read": 10}), replies)  # type: ignore[arg-type]


STATUS = """/proc/7/task/7/status:Name:\tpython3
/proc/7/task/7/status:voluntary_ctxt_switches:\t10
/proc/7/task/7/status:nonvoluntary_ctxt_switches:\t2
/proc/7/task/9/status:Name:\tpython3
/proc/7/task/9/status:voluntary_ctxt_switches:\t5
/proc/7/task/9/status:nonvoluntary_ctxt_switches:\t1
/proc/1/task/1/status:Name:\tdocker-init
/proc/1/task/1/status:voluntary_ctxt_switches:\t3
/proc/1/task/1/status:nonvoluntary_ctxt_switches:\t0
/proc/8/task/8/status:voluntary_ctxt_switches:\t4
"""


def test_switch_counters_by_task_leave_out_the_init_and_half_read_tasks() -> None:
    assert switches.parse_status(STATUS) == {7: (10, 2), 9: (5, 1)}


def test_a_window_counts_each_task_from_its_first_sample_to_its_last() -> None:
    samples = [(0.0, {7: (0, 0)}), (1.0, {7: (10, 1), 9: (100, 0)}), (2.0, {7: (20, 2)}), (3.0, {7: (99, 9)})]
    got = switches.in_window(samples, 0.5, 2.5)
    assert got is not None
    # task 7: 10 -> 20; task 9 appears once (it ended: its counters went with it) and adds nothing
    assert (got.voluntary, got.involuntary, got.seconds, got.tasks, got.samples) == (10, 1, 1.0, 2, 2)
    assert switches.in_window(samples, 0.5, 1.5) is None  # one sample is no window


def spec(**changes: object) -> UnitSpec:
    return UnitSpec("tools", "lab-x-tracer", "iolab/tools:bookworm", "lab-x", cap_drop=("ALL",),
                    aliases=("tools",)).but(**changes)


class FakeServer:
    id = "0123abcd"


def test_the_sidecar_holds_only_ptrace_joins_no_network_and_shares_the_servers_pids() -> None:
    kw = create_kwargs(spec(**tracer.sidecar_changes(FakeServer())))  # type: ignore[arg-type]
    assert kw["cap_add"] == ["SYS_PTRACE"] and kw["cap_drop"] == ["ALL"]
    assert kw["network_mode"] == "none" and "network" not in kw and "networking_config" not in kw
    assert kw["pid_mode"] == "container:0123abcd" and kw["init"] is False


def test_an_ordinary_unit_keeps_its_network_and_pid_namespace() -> None:
    kw = create_kwargs(spec())
    assert kw["network"] == "lab-x" and "pid_mode" not in kw and "network_mode" not in kw


def test_swarm_mode_refuses_the_sidecar_in_one_line() -> None:
    with pytest.raises(UsageError, match="--orchestrator local"):
        service_create(spec(**tracer.sidecar_changes(FakeServer())), "net", [])  # type: ignore[arg-type]
    syscalls = scenarios.get("syscalls")
    assert scenarios.traced(syscalls) and not scenarios.traced(scenarios.get("stalls"))
    with pytest.raises(UsageError, match="Swarm mode") as got:
        scenarios.traceable("swarm", [syscalls])
    assert "\n" not in str(got.value)
    scenarios.traceable("local", [syscalls])


# -- the report's "cost per reply" section ---------------------------------------------

COMPARE_RUN = Path(__file__).resolve().parent.parent / "fixtures" / "compare-run"


def with_cost(tmp_path: Path) -> Path:
    """The recorded compare run, with a syscalls workload added to each model's first repeat."""
    import json
    import shutil
    run_dir = tmp_path / "run"
    shutil.copytree(COMPARE_RUN, run_dir)
    doc = json.loads((run_dir / "results.json").read_text())
    doc["workloads"].append({"name": "syscalls", "title": "cost per reply", "kind": "cost", "about": "a",
                             "warmup_s": 0.0, "measure_s": 2.0, "flags": {}, "scenario": "syscalls",
                             "server_flags": ["--trace=off"]})
    for i, model in enumerate(doc["models"].values()):
        calls = {"recv": 1.0, "send": 1.0, "eagain": 0.1 * i, "epoll_wait": 0.2, "io_uring_enter": 0.0}
        model["repeats"][0]["workloads"]["syscalls"] = {
            "error": None, "server": None,
            "cost": {"calls_per_reply": calls, "switches_per_reply": {"voluntary": 0.5, "involuntary": 0.1},
                     "missing": [], "verdicts": [{"expect": "eagain_per_reply", "expected": "few",
                                                  "observed": "0.1 per reply", "ok": True}]}}
    (run_dir / "results.json").write_text(json.dumps(doc))
    return run_dir


def test_the_report_has_a_cost_per_reply_section(tmp_path: Path) -> None:
    from lab.report import data, render, schema
    run_dir = with_cost(tmp_path)
    schema.read(run_dir / "results.json", schema.COMPARE)  # the record is within results.json's schema
    files = render(data.load(run_dir))
    md = files["report.md"].decode()
    assert "Cost per reply: system calls and context switches" in md
    assert "plots/syscalls.svg" in md and files["plots/syscalls.svg"].startswith(b"<?xml")
    assert "eagain_per_reply held" in md


def test_a_negative_cost_figure_is_refused_by_the_schema(tmp_path: Path) -> None:
    import json
    from lab.report import schema
    run_dir = with_cost(tmp_path)
    doc = json.loads((run_dir / "results.json").read_text())
    next(iter(doc["models"].values()))["repeats"][0]["workloads"]["syscalls"]["cost"]["calls_per_reply"]["recv"] = -1
    (run_dir / "results.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="recv"):
        schema.read(run_dir / "results.json", schema.COMPARE)


def test_uring_is_drawn_beside_epoll() -> None:
    from lab.report import cost

    class FakeRun:
        models = ["native", "blocking", "epoll", "epoll-edge", "uring", "threads"]

    assert cost.ordered(FakeRun()) == ["native", "blocking", "epoll", "uring", "epoll-edge", "threads"]  # type: ignore[arg-type]


def test_a_probe_runs_only_for_a_model_that_declares_what_it_measures(tmp_path: Path) -> None:
    probes = scenarios.get("syscalls").probes
    assert probes["idle"].runs_for({"scan_cost": "per-ready"}) and not probes["idle"].runs_for({"threads": "fixed"})
    assert probes["main"].runs_for({})  # no `only:`: every model
    bad = (Path(__file__).resolve().parents[2] / "scenarios" / "syscalls.yaml").read_text().replace(
        "only: [scan_cost]", "only: [no_such_key]")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(UsageError, match="'only' is a list of model.yaml expectations"):
        scenarios.load_scenario(tmp_path / "bad.yaml")


def test_compare_says_a_cost_record_in_one_line_without_a_speed() -> None:
    from lab.report.terminal import one_line
    got = {"error": None, "cost": {"verdicts": [{"expect": "uring_enter_per_reply", "observed": "0.21 per reply",
                                                 "ok": True}]}}
    assert one_line("uring", 1, "syscalls", got) == "uring 1 syscalls: uring_enter_per_reply 0.21 per reply"
