"""The compare report, rendered from a recorded run directory (no Docker):
every file is there, agrees with results.json, and comes out byte for byte
the same every time; the HTML is self-contained and renders in Chromium.

The fixture tests/fixtures/compare-run/ is a real `lab compare` run
(blocking, threads and epoll, two repeats, one-second windows, and c10k),
its logs left out.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab import report
from lab.report import data, tables
from lab.verbs import compare

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "compare-run"
OUTPUTS = ("results.csv", "report.html", "report.md")


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A copy of the recorded run, without any rendered file."""
    target = tmp_path / "run"
    shutil.copytree(FIXTURE, target)
    for name in OUTPUTS:
        (target / name).unlink(missing_ok=True)
    shutil.rmtree(target / "plots", ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads((FIXTURE / "results.json").read_text())


def every_file(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- the fixture itself ---------------------------------------------------------------

def test_the_fixture_is_small_and_a_real_compare_run(results: dict) -> None:
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size < 500_000, f"the fixture is {size} bytes"
    assert results["schema"] == "iolab.compare/1"
    assert set(results["models"]) >= {"blocking", "threads"}
    assert {w["kind"] for w in results["workloads"]} >= {"timeline", "closed", "open", "c10k"}
    assert all(len(m["repeats"]) >= 2 for m in results["models"].values())


# -- rendering --------------------------------------------------------------------------

def test_lab_report_writes_every_file(run_dir: Path, results: dict) -> None:
    done = lab("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "report.html" in done.stdout
    for name in OUTPUTS:
        assert (run_dir / name).stat().st_size > 0, name
    plots = sorted(p.name for p in (run_dir / "plots").glob("*.svg"))
    timelines = [f"timeline-{w['name']}.svg" for w in results["workloads"] if w["kind"] == "timeline"]
    assert plots == sorted(timelines + ["c10k.svg", "latency.svg", "resources.svg", "throughput.svg"])
    for svg in (run_dir / "plots").glob("*.svg"):
        text = svg.read_text()
        assert text.lstrip().startswith("<?xml") and "</svg>" in text
        assert "<dc:date>" not in text, "a render time would make every rendering differ"


def test_rendering_twice_gives_the_same_bytes(run_dir: Path, tmp_path: Path) -> None:
    assert lab("report", str(run_dir)).returncode == 0
    first = every_file(run_dir)
    again = tmp_path / "again"
    done = lab("report", str(run_dir), "--out", str(again))
    assert done.returncode == 0, done.stderr
    second = every_file(again)
    rendered = {k: v for k, v in first.items() if k in second}
    assert sorted(rendered) == sorted(second)
    different = [name for name in second if second[name] != rendered[name]]
    assert not different, f"differ between two renderings: {different}"
    assert report.render_run(run_dir) == {k: v for k, v in second.items()}  # in-process too


def test_results_csv_has_one_row_per_model_workload_and_repeat(run_dir: Path, results: dict) -> None:
    files = report.render_run(run_dir)
    rows = list(csv.DictReader(io.StringIO(files["results.csv"].decode())))
    expected = [(m, w["name"], rep["repeat"]) for m in results["params"]["models"]
                for rep in results["models"][m]["repeats"] for w in results["workloads"]]
    assert sorted((r["model"], r["workload"], int(r["repeat"])) for r in rows) == sorted(expected)
    for r in rows:
        rec = next(rep for rep in results["models"][r["model"]]["repeats"]
                   if rep["repeat"] == int(r["repeat"]))["workloads"][r["workload"]]
        summary = rec["swarm"]["summary"]
        assert float(r["replies_per_s"]) == summary["replies_per_s"]
        assert int(r["unanswered"]) == summary["unanswered"]
        if summary["latency"]["count"]:
            assert float(r["p99_ms"]) == pytest.approx(summary["latency"]["p99_us"] / 1000)
        assert float(r["server_cores"]) == rec["server_cpu"]["cores"]
        assert float(r["swarm_cores"]) == rec["swarm"]["cpu"]["per_s"]


def test_html_is_self_contained_and_shows_the_figures(run_dir: Path, results: dict) -> None:
    files = report.render_run(run_dir)
    page = files["report.html"].decode()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "a network fetch"
    assert "<script" not in page and "<link" not in page and "@import" not in page
    plots = [k for k in files if k.startswith("plots/")]
    assert page.count('src="data:image/svg+xml;base64,') == len(plots) == 5
    for section in ("At a glance", "Timeline", "Throughput", "Latency", "Resources", "C10K", "Environment"):
        assert section in page, section
    assert "Behaviour checks" not in page  # no checks.json in this run
    for model in results["models"]:
        assert f"<td class=\"l\">{model}</td>" in page
    env = results["environment"]
    for fact in (env["engine"]["version"], env["engine"]["kernel"], env["host"]["python"]):
        assert fact in page, fact


def test_throughput_and_latency_tables_match_results(run_dir: Path, results: dict) -> None:
    run = data.load(run_dir)
    closed = run.of_kind("closed")[0].name
    page = report.render_run(run_dir)["report.html"].decode()
    for m in run.models:
        values = [rep["workloads"][closed]["swarm"]["summary"]["replies_per_s"]
                  for rep in results["models"][m]["repeats"]]
        spread = run.spread(m, closed, data.replies_per_s)
        assert spread is not None and sorted(spread.values) == sorted(values)
        assert f">{tables.num(spread.median)}</td>" in page
        assert tables.num(min(values)) in page and tables.num(max(values)) in page


def test_markdown_shows_the_same_and_links_plots_that_exist(run_dir: Path) -> None:
    files = report.render_run(run_dir)
    md = files["report.md"].decode()
    links = re.findall(r"!\[[^\]]*\]\((plots/[^)]+)\)", md)
    assert sorted(links) == sorted(k for k in files if k.startswith("plots/"))
    assert md.startswith("# I/O models compared")
    assert "| model |" in md


def test_timeline_shows_blocking_serialised_and_threads_overlapping(run_dir: Path) -> None:
    run = data.load(run_dir)
    name = run.of_kind("timeline")[0].name
    blocking, _ = run.timeline("blocking", name)
    threads, _ = run.timeline("threads", name)
    assert data.peak_served(blocking) == 1 and data.overlapping_pairs(blocking) == 0
    assert sum(1 for c in blocking if c.answered) == 1, "blocking answered more than one client"
    assert data.peak_served(threads) == len(threads) == 3
    assert data.overlapping_pairs(threads) == 3


def test_checks_section_appears_only_with_checks_json(run_dir: Path) -> None:
    (run_dir / "checks.json").write_text(json.dumps({"schema": "iolab.checks/1", "checks": [
        {"model": "blocking", "check": "peak_served", "claim": "serves one client at a time",
         "expected": 1, "observed": 1, "ok": True, "figures": {"peak": 1}},
        {"model": "threads", "check": "idle_cpu", "claim": "idle when no client is connected",
         "expected": "idle", "observed": "0.31 cores", "ok": False, "figures": {"cores": 0.31}},
    ]}))
    files = report.render_run(run_dir)
    page = files["report.html"].decode()
    assert "6. Behaviour checks" in page and "7. Environment" in page
    assert '<tr class="fail">' in page and "serves one client at a time" in page
    assert "1 of 2 checks held." in page
    assert "Behaviour checks" in files["report.md"].decode()


def c10k_records(results: dict) -> list[tuple[str, dict]]:
    return [(m, rep["workloads"]["c10k"]) for m in results["params"]["models"]
            for rep in results["models"][m]["repeats"]]


def test_the_c10k_section_shows_the_checks_figures_per_model(run_dir: Path, results: dict) -> None:
    run = data.load(run_dir)
    (w,) = run.of_kind("c10k")
    connections, costs = tables.c10k(run, w)
    assert [row[0] for row in connections.rows] == [row[0] for row in costs.rows] == run.models

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        half = len(ordered) // 2
        return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2

    for conns_row, costs_row in zip(connections.rows, costs.rows):
        model = conns_row[0]
        recs = [rec for m, rec in c10k_records(results) if m == model]
        figures = [rec["check"]["figures"] for rec in recs]
        cells = {**dict(zip(connections.columns, conns_row)), **dict(zip(costs.columns, costs_row))}
        assert cells["accepted of 10,000"].startswith(tables.num(median([f["accepted"] for f in figures])))
        assert cells["kept"].startswith(tables.num(median([f["kept_to_the_end"] for f in figures])))
        assert cells["busy p99 ms"].startswith(tables.ms(median([f["latency_us"]["p99_us"] / 1000 for f in figures])))
        for kind, column in (("pss", "PSS KiB/conn"), ("uss", "USS KiB/conn"), ("cgroup", "cgroup KiB/conn")):
            per = median([f["memory_per_connection"][kind] / 1024 for f in figures])
            assert cells[column].startswith(tables.kib(per)), (model, column)
        assert cells["threads at peak"].startswith(tables.num(median([r["check"]["peak_threads"] for r in recs])))
        assert cells["processes at peak"].startswith(tables.num(median([r["check"]["peak_processes"] for r in recs])))
        overflows = [f["listen_queue"]["ListenOverflows"] for f in figures]
        assert ("overflows" in cells["listen queue"]) == any(overflows), (model, cells["listen queue"])
        assert cells["model.yaml"].startswith(results["models"][model]["expect"]["c10k"] + ":")
        assert cells["busy answered"] == f"{median([f['active_answered'] for f in figures]):.0f}/100"
    by_model = {row[0]: dict(zip(connections.columns, row)) for row in connections.rows}
    assert by_model["epoll"]["kept"] == "10,000" and by_model["threads"]["kept"] == "10,000"
    assert "10,000" not in by_model["blocking"]["kept"]  # a few served, the rest waited or gave up
    page = report.render_run(run_dir)["report.html"].decode()
    assert "C10K: 10,000 connections, 100 of them busy" in page and "plots/c10k.svg" in page
    assert "Settings in force: server flags --backlog=4096" in page


def test_c10k_is_not_in_the_resource_figures_of_the_swarm_workloads(run_dir: Path, results: dict) -> None:
    run = data.load(run_dir)
    assert "c10k" not in {w.name for w in run.sampled}
    assert {row[1] for row in tables.resources(run).rows} == {w["name"] for w in results["workloads"]} - {"c10k"}
    rows = [r for r in csv.DictReader(io.StringIO(report.render_run(run_dir)["results.csv"].decode()))
            if r["workload"] == "c10k"]
    assert len(rows) == len(c10k_records(results))
    for r, (m, rec) in zip(rows, c10k_records(results)):
        f = rec["check"]["figures"]
        assert (r["model"], int(r["accepted"]), int(r["kept"])) == (m, f["accepted"], f["kept_to_the_end"])
        assert float(r["cgroup_per_conn_kib"]) == round(f["memory_per_connection"]["cgroup"] / 1024, 2)
        assert r["pss_kib"] == "" and r["check_held"] == str(rec["check"]["ok"])


def test_a_run_without_c10k_has_no_c10k_section(run_dir: Path) -> None:
    doc = json.loads((run_dir / "results.json").read_text())
    doc["workloads"] = [w for w in doc["workloads"] if w["name"] != "c10k"]
    doc["params"]["scenarios"].remove("c10k")
    for m in doc["models"].values():
        for rep in m["repeats"]:
            del rep["workloads"]["c10k"]
    (run_dir / "results.json").write_text(json.dumps(doc))
    files = report.render_run(run_dir)
    page = files["report.html"].decode()
    assert "C10K" not in page and "plots/c10k.svg" not in files and "4. Resources" in page
    assert "5. Environment" in page and "c10k" not in files["results.csv"].decode()


def test_a_wrong_schema_or_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"schema": "iolab.swarm/1"}))
    done = lab("report", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "iolab.compare/1" in done.stderr
    done = lab("report", str(tmp_path / "nothing-here"))
    assert done.returncode == 2 and "no run directory" in done.stderr


# -- the HTML in a real browser -----------------------------------------------------------

def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_html_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI needs chromium to render the report (.ci/run installs it)")
        pytest.skip("no chromium here (apt-get install chromium)")
    assert lab("report", str(run_dir)).returncode == 0
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,4000",
         (run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists(), f"no screenshot: {done.stderr[-2000:]}"
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(str(shot))
    assert pixels.shape[0] == 4000 and pixels.shape[1] == 1280
    rgb = (pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb[:: 7], axis=0)
    assert len(colours) > 50, f"the page looks blank: {len(colours)} colours"
    ink = np.mean(np.any(rgb < 200, axis=1))
    assert ink > 0.02, f"hardly anything drawn: {ink:.1%} of the pixels"
    # the figures are drawn too: the timeline's teal bars are on the page
    teal = np.all(np.abs(rgb.astype(int) - [0x1B, 0x7F, 0x79]) < 12, axis=1)
    assert teal.sum() > 500, "the timeline's bars are not on the screenshot"


# -- compare's own pieces, without Docker ----------------------------------------------------

def test_the_workload_table_is_well_formed() -> None:
    names = [w.name for w in compare.WORKLOADS]
    assert len(names) == len(set(names))
    assert {w.kind for w in compare.WORKLOADS} <= {"timeline", "closed", "open", "c10k"}
    assert [w.name for w in compare.pick_workloads("rate,classic")] == ["rate", "classic"]
    assert "c10k" not in [w.name for w in compare.pick_workloads(None)]  # too long for every compare


def test_the_c10k_workload_comes_from_its_scenario_file() -> None:
    from lab import scenarios

    scenario = scenarios.get("c10k")
    probe = scenario.probes["main"]
    (w,) = compare.pick_workloads("c10k")
    assert w.scenario == "c10k" and w.about == scenario.claim
    assert w.flags == {k: v for k, v in probe.values.items() if k not in scenarios.OPTIONS}
    assert w.warmup == probe.values["warmup"] and w.warmup + w.measure == probe.values["duration"]
    plan = compare.Plan(["epoll"], [w], 1, duration=1.0)
    assert plan.measure(w) == w.measure  # --duration leaves a scenario's own length alone
    doc = compare.workload_doc(w, plan)
    assert doc["server_flags"] == scenario.server and doc["scenario"] == "c10k"


@pytest.mark.parametrize("args, says", [
    (["--models", "blocking,nosuch"], "unknown model 'nosuch'; the models are: "),
    (["--scenario", "c20k"], "unknown scenario 'c20k'; the scenarios are: classic"),
    (["--repeat", "0"], "too small"),
    (["--duration", "soon"], "not a number"),
])
def test_compare_refuses_bad_input_before_touching_docker(args: list[str], says: str) -> None:
    done = lab("compare", *args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], done.stderr


def test_a_failed_measurement_is_reported_not_fatal(run_dir: Path) -> None:
    doc = json.loads((run_dir / "results.json").read_text())
    doc["models"]["epoll"]["repeats"][1]["workloads"]["pingpong"] = {"error": "the swarm left no results.json"}
    doc["models"]["threads"]["repeats"] = [{"repeat": 1, "error": "threads was not healthy within 60s",
                                            "workloads": {}}]
    doc["errors"] = ["epoll repeat 2 pingpong: the swarm left no results.json",
                     "threads repeat 1: threads was not healthy within 60s"]
    (run_dir / "results.json").write_text(json.dumps(doc))
    files = report.render_run(run_dir)
    page = files["report.html"].decode()
    assert "threads was not healthy within 60s" in page and "<strong>Problems:</strong>" in page
    rows = list(csv.DictReader(io.StringIO(files["results.csv"].decode())))
    failed = [r for r in rows if r["error"]]
    assert [(r["model"], r["workload"], r["repeat"]) for r in failed] == [("epoll", "pingpong", "2")]
    assert not any(r["model"] == "threads" for r in rows)
