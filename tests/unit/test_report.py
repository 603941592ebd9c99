"""The compare report, rendered from a recorded run directory (no Docker):
every file is there, agrees with results.json, comes out byte for byte the
same every time, and never flatters: a figure of a model that served only
some of its connections is marked and never the best, a figure the load
generator or the host limited is marked and says why, each model's verdict
is beside its figures, and the HTML is well-formed and self-contained
(checked in Python: every tag closed and nested, every SVG valid XML, no
fetch from anywhere).

Fixtures: tests/fixtures/compare-run/ is a real `lab compare --checks
--client wrk` run (iolab.compare/2: the native ceiling, blocking, threads
and epoll, two repeats, one-second windows, c10k, wrk beside the swarm, and
checks.json); tests/fixtures/compare-run-v1/ is a real run of the first
schema, which `lab report` still renders.
"""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lab import report
from lab.compare.plan import Plan, pick_clients, pick_models
from lab.compare.repeat import swarm_command
from lab.compare.session import exit_status, workload_doc
from lab.compare.workloads import WORKLOADS, pick_workloads
from lab.compare.wrk import wrk_available, wrk_command
from lab.plan.commands import duplicated, with_flags
from lab.report import baseline, c10k, csvfile, data, plots, results, tables

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "compare-run"
FIXTURE_V1 = ROOT / "tests" / "fixtures" / "compare-run-v1"
OUTPUTS = ("results.csv", "report.html", "report.md")


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a recorded run, without any rendered file."""
    shutil.copytree(source, target)
    for name in OUTPUTS:
        (target / name).unlink(missing_ok=True)
    shutil.rmtree(target / "plots", ignore_errors=True)
    return target


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return copy_run(FIXTURE, tmp_path / "run")


@pytest.fixture(scope="module")
def results_doc() -> dict:
    return json.loads((FIXTURE / "results.json").read_text())


def every_file(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def edit(run_dir: Path, change: Any) -> dict:
    doc = json.loads((run_dir / "results.json").read_text())
    change(doc)
    (run_dir / "results.json").write_text(json.dumps(doc))
    return doc


def cells(t: tables.Table, model: str, column: str, workload: str | None = None) -> list[str]:
    i = t.columns.index(column)
    return [row[i] for row in t.rows if row[0].split(" (")[0] == model and (workload is None or workload in row)]


# -- wrk's report, as wrk prints it -------------------------------------------------------

WRK_OUTPUT = """Running 1s test @ http://{model}:12345/xxx
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms  412.50us   9.87ms   81.23%
    Req/Sec    20.51k     1.02k   22.10k    70.00%
  Latency Distribution
     50%    1.15ms
     75%    1.38ms
     90%    1.66ms
     99%    2.54ms
  {requests} requests in 1.00s, 9.34MB read
{errors}Requests/sec:  {rps}
Transfer/sec:      4.67MB
"""


_rendered: dict[Path, dict[str, bytes]] = {}


def rendered(source: Path) -> dict[str, bytes]:
    """The report of a run that no test changes, rendered once (matplotlib
    takes seconds per figure on a busy host)."""
    if source not in _rendered:
        _rendered[source] = report.render_run(source)
    return _rendered[source]


# -- the fixtures themselves ------------------------------------------------------------

def test_the_fixtures_are_small_and_real_compare_runs(results_doc: dict) -> None:
    for root in (FIXTURE, FIXTURE_V1):
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        assert size < 500_000, f"{root.name} is {size} bytes"
    assert results_doc["schema"] == "iolab.compare/2" and results_doc["params"]["checks"] is True
    assert set(results_doc["models"]) >= {"native", "blocking", "threads", "epoll"}
    assert results_doc["params"]["reference"] == "native" and results_doc["params"]["clients"] == ["swarm", "wrk"]
    assert {w["kind"] for w in results_doc["workloads"]} >= {"timeline", "closed", "open", "c10k"}
    assert all(len(m["repeats"]) >= 2 for m in results_doc["models"].values())
    assert json.loads((FIXTURE / "checks.json").read_text())["checks"]
    assert json.loads((FIXTURE_V1 / "results.json").read_text())["schema"] == "iolab.compare/1"


# -- rendering --------------------------------------------------------------------------

def test_lab_report_writes_every_file(run_dir: Path, results_doc: dict) -> None:
    done = lab("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "report.html" in done.stdout
    for name in OUTPUTS:
        assert (run_dir / name).stat().st_size > 0, name
    plotted = sorted(p.name for p in (run_dir / "plots").glob("*.svg"))
    timelines = [f"timeline-{w['name']}.svg" for w in results_doc["workloads"] if w["kind"] == "timeline"]
    assert plotted == sorted(timelines + ["c10k.svg", "latency.svg", "resources.svg", "throughput.svg"])
    for svg in (run_dir / "plots").glob("*.svg"):
        assert "<dc:date>" not in svg.read_text(), "a render time would make every rendering differ"


SOURCES = {"v2": FIXTURE, "v1": FIXTURE_V1}


@pytest.mark.parametrize("which", ["v2", "v1"])
def test_rendering_twice_gives_the_same_bytes(which: str, tmp_path: Path) -> None:
    """Once by `lab report` in its own process, once here: the same bytes."""
    source = SOURCES[which]
    out = tmp_path / "out"
    done = lab("report", str(source), "--out", str(out))
    assert done.returncode == 0, done.stderr
    written = every_file(out)
    assert sorted(written) == sorted(rendered(source))
    different = [name for name in written if written[name] != rendered(source)[name]]
    assert not different, f"differ between two renderings: {different}"


def test_a_v1_run_still_renders_and_says_what_it_lacks() -> None:
    run_v1 = FIXTURE_V1
    page = rendered(run_v1)["report.html"].decode()
    assert "iolab.compare/1" in page and "Throughput" in page and "C10K" in page
    assert "have the check&#x27;s figures only" in page or "have the check's figures only" in page
    run = data.load(run_v1)
    assert data.limit_of(run, "epoll", "pingpong").by is not None  # the rule from the swarm's own CPU


def test_results_csv_has_one_row_per_model_workload_and_repeat(run_dir: Path, results_doc: dict) -> None:
    run = data.load(run_dir)
    rows = list(csv.DictReader(io.StringIO(rendered(FIXTURE)["results.csv"].decode())))
    expected = [(m, w["name"], rep["repeat"]) for m in results_doc["params"]["models"]
                for rep in results_doc["models"][m]["repeats"] for w in results_doc["workloads"]]
    assert sorted((r["model"], r["workload"], int(r["repeat"])) for r in rows) == sorted(expected)
    for r in rows:
        rec = next(rep for rep in results_doc["models"][r["model"]]["repeats"]
                   if rep["repeat"] == int(r["repeat"]))["workloads"][r["workload"]]
        summary = rec["swarm"]["summary"]
        assert float(r["replies_per_s"]) == summary["replies_per_s"]
        if summary["latency"]["count"]:
            assert float(r["p99_ms"]) == pytest.approx(summary["latency"]["p99_us"] / 1000)
        if r["workload"] != "c10k":
            per = rec["replies_per_client"]
            assert r["served_all"] == str(all(per)), r
            assert r["limited_by"] == (data.limit(rec["limit_inputs"]).by or "")
            assert float(r["swarm_cores"]) == rec["swarm"]["cpu"]["per_s"]
        assert r["promise"] == data.promise(run, r["model"]).state


# -- the HTML, validated strictly in Python -------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Strict(HTMLParser):
    """Every element closed, in order; every URL local (a fragment or data:)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.problems: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "poster") and value is not None \
                    and not value.startswith(("#", "data:")):
                self.problems.append(f"line {self.getpos()[0]}: <{tag} {name}={value[:60]!r}>: not local")
            if name == "id" and value:
                self.ids.add(value)
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        if tag in ("script", "link", "iframe", "object"):
            self.problems.append(f"line {self.getpos()[0]}: <{tag}> in a self-contained report")
        if tag not in VOID:
            self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.problems.append(f"line {self.getpos()[0]}: </{tag}> closes a void element")
        elif not self.stack or self.stack[-1][0] != tag:
            self.problems.append(f"line {self.getpos()[0]}: </{tag}> but the open element is "
                                 f"{self.stack[-1] if self.stack else 'none'}")
        else:
            self.stack.pop()


def validate(page: str, files: dict[str, bytes]) -> list[str]:
    """Every problem with report.html (none, for a good page)."""
    parser = Strict()
    parser.feed(page)
    parser.close()
    problems = list(parser.problems)
    problems += [f"<{tag}> from line {line} never closed" for tag, line in parser.stack]
    if not page.startswith("<!DOCTYPE html>"):
        problems.append("no doctype")
    if re.search(r"@import|url\(\s*['\"]?(https?:)?//", page):
        problems.append("the style sheet fetches something")
    for href in parser.links:
        if href.startswith("#") and href[1:] not in parser.ids:
            problems.append(f"a link to #{href[1:]}, which is not on the page")
    plotted = {name: svg for name, svg in files.items() if name.startswith("plots/")}
    inlined = []
    for src in parser.images:
        if not src.startswith("data:image/svg+xml;base64,"):
            problems.append(f"an image that is not inline SVG: {src[:40]}")
            continue
        svg = base64.b64decode(src.split(",", 1)[1])
        inlined.append(svg)
        try:
            root = ET.fromstring(svg)
        except ET.ParseError as exc:
            problems.append(f"an inline SVG is not XML: {exc}")
            continue
        for el in root.iter():
            for name, value in el.attrib.items():
                if name.endswith("href") and not value.startswith(("#", "data:")):
                    problems.append(f"an inline SVG links {value[:60]}")
    for name, svg in plotted.items():
        if svg not in inlined:
            problems.append(f"{name} is not on the page")
    return problems


def test_the_validator_catches_what_it_should() -> None:
    files = {"plots/a.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>'}
    good = ('<!DOCTYPE html><html><body><p id="x"><a href="#x">x</a><img src="data:image/svg+xml;base64,'
            + base64.b64encode(files["plots/a.svg"]).decode() + '"></p></body></html>')
    assert validate(good, files) == []
    assert validate(good.replace("</p>", ""), files)  # unclosed
    assert validate(good.replace("<p id", "<div id"), files)  # misnested
    assert validate(good.replace('href="#x"', 'href="https://example.org/"'), files)  # a fetch
    assert validate(good.replace('href="#x"', 'href="#nowhere"'), files)
    assert validate(good, {**files, "plots/b.svg": b"<svg/>"})  # a plot missing from the page
    broken = base64.b64encode(b"<svg><g></svg>").decode()
    assert validate(re.sub(r"base64,[^\"]+", f"base64,{broken}", good), files)  # not XML


@pytest.mark.parametrize("which", ["v2", "v1"])
def test_the_html_is_well_formed_self_contained_and_shows_every_plot(which: str) -> None:
    files = rendered(SOURCES[which])
    page = files["report.html"].decode()
    assert validate(page, files) == []
    assert page.count('src="data:image/svg+xml;base64,') == len([f for f in files if f.startswith("plots/")]) == 5
    for section in ("At a glance", "Timeline", "Throughput", "Latency", "Resources", "C10K", "Environment"):
        assert section in page, section


def test_the_html_shows_the_models_and_the_environment(results_doc: dict) -> None:
    page = rendered(FIXTURE)["report.html"].decode()
    for model in results_doc["models"]:
        assert f'<td class="l">{model}</td>' in page
    env = results_doc["environment"]
    for fact in (env["engine"]["version"], env["engine"]["kernel"], env["host"]["python"]):
        assert fact in page, fact


def test_throughput_and_latency_tables_match_results(run_dir: Path, results_doc: dict) -> None:
    run = data.load(run_dir)
    closed = run.of_kind("closed")[0].name
    page = rendered(FIXTURE)["report.html"].decode()
    for m in run.models:
        values = [rep["workloads"][closed]["swarm"]["summary"]["replies_per_s"]
                  for rep in results_doc["models"][m]["repeats"]]
        spread = run.spread(m, closed, data.replies_per_s)
        assert spread is not None and sorted(spread.values) == sorted(values)
        assert re.search(rf">{re.escape(tables.num(spread.median))}( [†‡]+)?</td>", page), m
        assert tables.num(min(values)) in page and tables.num(max(values)) in page


def test_markdown_shows_the_same_and_links_plots_that_exist() -> None:
    files = rendered(FIXTURE)
    md = files["report.md"].decode()
    links = re.findall(r"!\[[^\]]*\]\((plots/[^)]+)\)", md)
    assert sorted(links) == sorted(k for k in files if k.startswith("plots/"))
    assert md.startswith("# I/O models compared") and "| model |" in md


def test_timeline_shows_blocking_serialised_and_threads_overlapping(run_dir: Path) -> None:
    run = data.load(run_dir)
    name = run.of_kind("timeline")[0].name
    blocking, _ = run.timeline("blocking", name)
    threads, _ = run.timeline("threads", name)
    assert data.peak_served(blocking) == 1 and data.overlapping_pairs(blocking) == 0
    assert sum(1 for c in blocking if c.answered) == 1, "blocking answered more than one client"
    assert data.peak_served(threads) == len(threads) == 3
    assert data.overlapping_pairs(threads) == 3


# -- never flattering ----------------------------------------------------------------------

def test_a_model_that_served_one_connection_is_marked_everywhere(run_dir: Path) -> None:
    run = data.load(run_dir)
    assert data.served_of(run, "blocking", "pingpong") == data.Served(1, 50)
    assert not data.partial(run, "epoll", "pingpong") and not data.partial(run, "threads", "pingpong")
    summary = tables.summary(run)
    for column in ("pingpong replies/s", "pipelined replies/s", "pingpong p99 ms", "rate p99 ms"):
        (cell,) = cells(summary, "blocking", column)
        assert data.PARTIAL in cell, (column, cell)
        assert data.PARTIAL not in cells(summary, "epoll", column)[0]
    throughput = tables.throughput(run)
    assert all(data.PARTIAL in c for c in cells(throughput, "blocking", "replies/s (median)"))
    latency = tables.latency(run)
    assert all(data.PARTIAL in c for c in cells(latency, "blocking", "p99 ms"))
    assert all(data.PARTIAL in c for c in cells(tables.resources(run), "blocking", "workload")
               if not c.startswith("classic"))
    assert "1 of 50 served" in plots.throughput_note(run, "blocking", "pingpong")
    rows = csv.DictReader(io.StringIO(rendered(FIXTURE)["results.csv"].decode()))
    assert {r["served_all"] for r in rows if r["model"] == "blocking" and r["workload"] == "pingpong"} == {"False"}
    for t in (summary, throughput, latency):
        assert "served only some of its connections" in " ".join(t.notes)


def best_rows(t: tables.Table) -> list[tuple[str, str]]:
    return [(t.rows[r][0], t.columns[c]) for (r, c), cls in t.cell_class.items() if cls == "best"]


def test_a_partial_figure_is_never_the_best_though_it_is_the_lowest(run_dir: Path) -> None:
    run = data.load(run_dir)
    latency = tables.latency(run)
    p99 = {(row[0], row[1]): float(row[latency.columns.index("p99 ms")].split()[0].replace(",", ""))
           for row in latency.rows}
    assert p99[("blocking", "pingpong")] < min(p99[(m, "pingpong")] for m in ("epoll", "threads")), \
        "the fixture no longer shows blocking's flattering p99"
    best = [(latency.rows[r][0], latency.rows[r][1]) for (r, c), cls in latency.cell_class.items() if cls == "best"]
    assert ("blocking", "pingpong") not in best
    assert (min(("epoll", "threads"), key=lambda m: p99[(m, "pingpong")]), "pingpong") in best
    for t in (tables.summary(run), tables.throughput(run), latency):
        assert not [b for b in best_rows(t) if b[0] == "blocking"], t.columns


def test_a_figure_the_swarm_limited_is_marked_and_never_the_best(run_dir: Path) -> None:
    def swarm_bound(doc: dict) -> None:  # epoll's swarm at 1.9 of its 2 workers' cores
        for rep in doc["models"]["epoll"]["repeats"]:
            for rec in rep["workloads"].values():
                if rec.get("limit_inputs"):
                    rec["limit_inputs"].update(swarm_cores=1.9, swarm_workers=2, host_cores=None,
                                               server_cores=0.05)
    edit(run_dir, swarm_bound)
    run = data.load(run_dir)
    t = tables.throughput(run)
    for cell in cells(t, "epoll", "limited by"):
        assert cell.startswith("swarm: the swarm used 1.90 of the 2 cores"), cell
    assert all(c.endswith(data.LIMITED) for c in cells(t, "epoll", "replies/s (median)"))
    assert not [b for b in best_rows(t) if b[0] == "epoll"]
    assert not [b for b in best_rows(tables.summary(run)) if b[0] == "epoll" and "replies/s" in b[1]]


def test_the_limit_rule() -> None:
    def inputs(**kw: Any) -> dict:
        return {**results.limit_inputs(0.3, 0.4, "cgroup", 2, 2.0, 2, None), **kw}
    assert data.limit(inputs()).by == "server"
    assert data.limit(inputs(swarm_cores=1.8)).by == "swarm"
    assert data.limit(inputs(swarm_workers=1, swarm_cores=0.9)).by == "swarm"  # one worker: one core
    assert data.limit(inputs(server_cores=1.0, swarm_cores=0.8)).by == "host"
    assert data.limit(inputs(host_cores=1.95)).by == "host"
    assert "everything on the machine" in data.limit(inputs(host_cores=1.95)).why
    assert data.limit(inputs(swarm_cores=None)).by is None
    assert data.limit(inputs(server_cores=None)).by is None
    assert data.limit(inputs(engine_cpus=None)).by is None
    assert data.limit(inputs(swarm_cores=None, host_cores=None), "wrk").why.startswith("not judged: the wrk")
    assert data.limit(inputs(swarm_cores=None, host_cores=1.9), "wrk").by == "host"  # full, whoever's CPU it was


def test_every_limit_is_said_with_its_inputs(run_dir: Path) -> None:
    run = data.load(run_dir)
    t = tables.throughput(run)
    for m in run.models:
        for w in run.of_kind("closed"):
            lim = data.limit_of(run, m, w.name)
            (cell,) = cells(t, m, "limited by", w.name)
            assert cell == f"{lim.by or 'not judged'}: {lim.why}"
            (figure,) = cells(t, m, "replies/s (median)", w.name)
            assert figure.endswith(data.LIMITED) == (lim.by in ("swarm", "host"))
    recs = [rec for m in run.models for _, rec in run.records(m, "pingpong")]
    assert all(rec["limit_inputs"]["swarm_cores_source"] == "cgroup" for rec in recs)
    assert all(rec["limit_inputs"]["host_cores"] is not None for rec in recs)


# -- verdicts --------------------------------------------------------------------------------

def test_each_model_has_its_verdict_from_the_checks(run_dir: Path) -> None:
    run = data.load(run_dir)
    summary = tables.summary(run)
    col = summary.columns.index("model.yaml promises")
    for i, m in enumerate(run.models):
        found = data.verdicts(run, m)
        assert found, m
        promise = data.promise(run, m)
        expected = "failed" if any(ok is False for _, ok in found) else \
            "not judged" if any(ok is None for _, ok in found) else "held"
        assert promise.state == expected, (m, found)
        assert summary.rows[i][col] == promise.text
        assert summary.cell_class.get((i, col)) == tables.PROMISE_CLASS[expected]
    page = rendered(FIXTURE)["report.html"].decode()
    assert "Behaviour checks" in page


def test_verdicts_held_failed_not_judged_and_not_checked(run_dir: Path) -> None:
    (run_dir / "checks.json").write_text(json.dumps({"schema": "iolab.checks/1", "checks": [
        {"model": "blocking", "check": "served-at-once", "claim": "one at a time", "expected": 1,
         "observed": 1, "ok": True},
        {"model": "threads", "check": "idle-cpu", "claim": "idle", "expected": "idle", "observed": "0.31 cores",
         "ok": False},
        {"model": "epoll", "check": "gil", "claim": "one core", "expected": "one core",
         "observed": "not judged: the host was busy", "ok": None},
    ]}))
    edit(run_dir, lambda doc: [rec["check"].update(ok=True) for m in doc["models"].values()
                               for rep in m["repeats"] for rec in rep["workloads"].values() if rec.get("check")])
    run = data.load(run_dir)
    assert data.promise(run, "blocking").state == "held"
    assert data.promise(run, "threads").state == "failed" and "idle-cpu" in data.promise(run, "threads").text
    assert data.promise(run, "epoll").state == "not judged" and "gil" in data.promise(run, "epoll").text
    files = report.render_run(run_dir)
    page = files["report.html"].decode()
    assert '<td class="l unknown">not judged</td>' in page  # yellow, neither red nor green
    assert '<td class="l fail">FAILED</td>' in page and '<td class="l ok">held</td>' in page
    assert "1 of 3 checks held, 1 failed, 1 not judged" in page
    (run_dir / "checks.json").unlink()
    edit(run_dir, lambda doc: [rep["workloads"].pop("c10k") for m in doc["models"].values() for rep in m["repeats"]])
    assert data.promise(data.load(run_dir), "epoll").state == "not checked"


def test_a_checks_file_of_another_kind_is_one_line_and_exit_2(run_dir: Path) -> None:
    (run_dir / "checks.json").write_text(json.dumps({"schema": "iolab.swarm/1"}))
    done = lab("report", str(run_dir))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "checks.json" in done.stderr


# -- bad data: a user error, one line naming the file and the field, exit 2 ---------------------

PINGPONG = ("models", "epoll", "repeats", 0, "workloads", "pingpong")


def at(doc: Any, *path: Any) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_at(*path: Any, value: Any) -> Any:
    return lambda doc: at(doc, *path[:-1]).__setitem__(path[-1], value)


def drop_at(*path: Any) -> Any:
    return lambda doc: at(doc, *path[:-1]).pop(path[-1])


BAD_RESULTS = [
    (set_at(*PINGPONG, "swarm", "summary", "replies_per_s", value=float("nan")),
     "pingpong.swarm.summary.replies_per_s is nan: a figure must be a finite number"),
    (set_at(*PINGPONG, "swarm", "summary", "latency", "p99_us", value=float("inf")),
     "pingpong.swarm.summary.latency.p99_us is inf"),
    (set_at(*PINGPONG, "swarm", "summary", "replies_per_s", value=-3),
     "pingpong.swarm.summary.replies_per_s: -3 should be at least 0"),
    (set_at(*PINGPONG, "server_cpu", "cores", value=-0.5), "pingpong.server_cpu.cores: -0.5 should be at least 0"),
    (set_at(*PINGPONG, "replies_per_client", 3, value=-1), "pingpong.replies_per_client[3]: -1 should be at least 0"),
    (set_at(*PINGPONG, "swarm", "summary", "replies_per_s", value="fast"),
     'replies_per_s: "fast" should be a number or null'),
    (set_at(*PINGPONG, "swarm", "summary", "connections", "connected", value=2.5),
     "connections.connected: 2.5 should be a whole number or null"),
    (drop_at(*PINGPONG, "swarm", "summary", "latency"), "pingpong.swarm.summary.latency: missing"),
    (drop_at(*PINGPONG, "swarm", "summary", "latency", "p99_us"), "summary.latency.p99_us: missing"),
    (drop_at("workloads", 0, "measure_s"), "workloads[0].measure_s: missing"),
    (drop_at("params"), "results.json: params: missing"),
    (set_at("models", "epoll", "kind", value="alien"), 'models.epoll.kind: "alien" should be one of'),
    (drop_at(*PINGPONG, "swarm", "summary", "errors"), "pingpong.swarm.summary.errors: missing"),
    (set_at(*PINGPONG, "swarm", "summary", "latency", "p99_us", value=None),
     "summary.latency.p99_us: null should be a number"),  # 20,059 replies measured: a p99 there must be
    (set_at("models", "epoll", "repeats", 0, "workloads", "classic", "swarm", "duration_s", value=None),
     "classic.swarm.duration_s: null should be a number"),  # its timeline is drawn over it
    (set_at("workloads", 0, "warmup_s", value=None), "workloads[0].warmup_s: null should be a number"),
    (set_at("environment", "containers", "python", value="3.11"), 'containers.python: "3.11" should be a mapping'),
]


@pytest.mark.parametrize("change, says", BAD_RESULTS)
def test_bad_results_are_one_line_naming_the_field_and_exit_2(
        tmp_path: Path, results_doc: dict, capsys: pytest.CaptureFixture[str], change: Any, says: str) -> None:
    from lab import cli
    doc = copy.deepcopy(results_doc)
    change(doc)
    (tmp_path / "results.json").write_text(json.dumps(doc))  # NaN and Infinity as Python's json writes them
    assert cli.main(["report", str(tmp_path)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and f"{tmp_path / 'results.json'}:" in line and says in line, line
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("text, says", [
    ('{"schema": "iolab.checks/1", "checks": [{"model": "epoll", "check": "gil", "ok": true, '
     '"figures": {"cores": NaN}}]}', "checks[0].figures.cores is nan"),
    ('{"schema": "iolab.checks/1", "checks": [{"model": "epoll", "check": "gil", "ok": "yes"}]}',
     'checks[0].ok: "yes" should be true or false or null'),
    ('{"schema": "iolab.checks/1", "checks": [{"model": "epoll", "ok": true}]}', "checks[0].check: missing"),
    ('{"schema": "iolab.checks/1", "checks": [], "held": -1}', "held: -1 should be at least 0"),
])
def test_a_bad_checks_file_names_the_field(tmp_path: Path, results_doc: dict, capsys: pytest.CaptureFixture[str],
                                           text: str, says: str) -> None:
    from lab import cli
    (tmp_path / "results.json").write_text(json.dumps(results_doc))
    (tmp_path / "checks.json").write_text(text)
    assert cli.main(["report", str(tmp_path)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and f"{tmp_path / 'checks.json'}:" in line and says in line, line


def test_the_schemas_are_json_schema_read_as_jsonschema_reads_them(results_doc: dict) -> None:
    """lab/report/schema.py reads its schemas itself (fast); the general
    validator must agree: the schemas are valid JSON Schema, use only the
    keywords read, pass both fixtures and fail each bad document at the field named."""
    from jsonschema import Draft202012Validator
    from lab.report import schema
    for doc_schema in (schema.COMPARE, schema.CHECKS):
        Draft202012Validator.check_schema(doc_schema)
        assert schema.keywords(doc_schema) <= schema.KEYWORDS
    good = [(results_doc, schema.COMPARE), (json.loads((FIXTURE_V1 / "results.json").read_text()), schema.COMPARE),
            (json.loads((FIXTURE / "checks.json").read_text()), schema.CHECKS)]
    for doc, doc_schema in good:
        assert schema.violation(doc, doc_schema) is None
        assert Draft202012Validator(doc_schema).is_valid(doc)
    tiny = tiny_run(results_doc)  # each bad case on one model's record: jsonschema takes 90 ms a fixture
    for change, says in BAD_RESULTS:
        doc = copy.deepcopy(tiny)
        change(doc)
        if schema.first_non_finite(doc):
            continue  # JSON has no NaN: refused before the schema is read
        ours = schema.violation(doc, schema.COMPARE)
        theirs = [".".join(map(str, e.absolute_path)) for e in Draft202012Validator(schema.COMPARE).iter_errors(doc)]
        assert ours and theirs, says
        field = ours.split(": ")[0].replace("[", ".").replace("]", "")
        assert any(field.startswith(t) for t in theirs), (ours, theirs)


def test_the_lab_never_writes_a_figure_it_refuses_to_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.run import rundir
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    doc = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf"), "e": 2}}
    written = rundir.RunDir("r1", {}).write_json("x.json", doc).read_text()
    assert json.loads(written) == {"a": None, "b": [1.0, None], "c": {"d": None, "e": 2}}


# -- the ceiling row and wrk -------------------------------------------------------------------

def test_the_ceiling_row_comes_first_and_every_throughput_is_a_share_of_it() -> None:
    run = data.load(FIXTURE)
    assert run.reference == "native" and run.models[0] == "native" and "native" not in run.studied
    summary = tables.summary(run)
    assert summary.rows[0][0] == "native (ceiling)" and summary.row_class[0] == "ceiling"
    assert summary.rows[0][1] == data.promise(run, "native").text  # from what its model.yaml does declare
    for m in run.studied:
        share = data.fraction_of_reference(run, m, "pingpong", data.replies_per_s)
        if data.partial(run, m, "pingpong"):  # blocking: a figure of 1 of 50 connections is no share of anything
            assert share is None and "%" not in cells(summary, m, "pingpong replies/s")[0]
            continue
        mine = run.spread(m, "pingpong", data.replies_per_s).median
        assert share == pytest.approx(mine / run.spread("native", "pingpong", data.replies_per_s).median)
        assert f"({tables.pct(share)})" in cells(summary, m, "pingpong replies/s")[0]
    throughput = tables.throughput(run)
    assert set(cells(throughput, "native", "of the ceiling")) == {"ceiling"}
    for t in (summary, throughput, tables.latency(run)):
        assert not [b for b in best_rows(t) if b[0].startswith("native")]
    rows = list(csv.DictReader(io.StringIO(csvfile.csv_bytes(run).decode())))
    assert {r["model_kind"] for r in rows if r["model"] == "native"} == {"reference"}
    assert all(r["of_reference"] for r in rows if r["model"] != "native" and r["workload"] == "pingpong")
    assert "is the ceiling row" in rendered(FIXTURE)["report.html"].decode()
    over = [m for m in run.studied if (data.fraction_of_reference(run, m, "pipelined", data.replies_per_s) or 0) > 1]
    assert ("Above 100% of the ceiling" in summary.notes[0]) == bool(over)  # a ceiling held back says so


def test_a_workload_skipped_for_a_target_says_why(tmp_path: Path) -> None:
    """A target whose model.yaml makes no c10k: promise has no c10k check to
    run: its row says skipped, and why, and it is left out of the costs."""
    source = copy_run(FIXTURE, tmp_path / "run")
    why = "its model.yaml makes no `c10k:` promise for the check to judge"

    def skip(doc: dict) -> None:
        doc["models"]["native"]["skipped"]["c10k"] = why
        for rep in doc["models"]["native"]["repeats"]:
            del rep["workloads"]["c10k"]
    edit(source, skip)
    run = data.load(source)
    (w,) = run.of_kind("c10k")
    connections, busy, costs = c10k.c10k(run, w)
    for t in (connections, busy):  # a short cell, the reason under the table: it stays narrow
        assert t.rows[0][:2] == ["native (ceiling)", "skipped"] and f"native: skipped: {why}." in t.notes
    assert "native" not in [row[0] for row in costs.rows]
    assert cells(tables.summary(run), "native", "c10k open at peak") == ["skipped"]
    assert f"native c10k: {why}" in " ".join(tables.workloads(run).notes)


def test_wrk_figures_stand_beside_the_swarms() -> None:
    run = data.load(FIXTURE)
    t = tables.clients(run)
    assert t is not None
    (native,) = [row for row in t.rows if row[0].startswith("native")]
    assert native[t.columns.index("wrk requests/s")] == "skipped: " + run.skipped("native", "pingpong/wrk")
    for m in run.studied:
        records = data.wrk_records(run, m, "pingpong")
        assert len(records) == 2 and all(r["command"][0] == "wrk" for r in records)
        got = data.wrk_spread(run, m, "pingpong", lambda r: r["requests_per_s"])
        (cell,) = cells(t, m, "wrk requests/s")
        assert cell.startswith(tables.spread(got)), cell
        assert (data.PARTIAL in cell) == data.partial(run, m, "pingpong")
        (errors,) = cells(t, m, "wrk errors")
        assert errors == tables.num(sum(sum(r["errors"].values()) + r["non_2xx"] for r in records))
    assert not [b for b in best_rows(t) if b[0] in ("blocking", "native (ceiling)")]
    assert "Two clients: the swarm and wrk" in rendered(FIXTURE)["report.html"].decode()


def test_wrk_output_is_parsed() -> None:
    got = results.parse_wrk(WRK_OUTPUT.format(model="epoll", requests=81623, rps="40788.12",
                                              errors="  Socket errors: connect 1, read 2, write 3, timeout 4\n"
                                                     "  Non-2xx or 3xx responses: 5\n"))
    assert got["requests_per_s"] == 40788.12 and got["requests"] == 81623 and got["duration_s"] == 1.0
    assert got["latency_ms"] == {"mean": 1.21, "p50": 1.15, "p75": 1.38, "p90": 1.66, "p99": 2.54, "max": 9.87}
    assert got["errors"] == {"connect": 1, "read": 2, "write": 3, "timeout": 4} and got["non_2xx"] == 5
    assert (got["threads"], got["connections"]) == (2, 50)
    assert results.wrk_ms("412.50us") == pytest.approx(0.4125) and results.wrk_ms("2.00s") == 2000
    with pytest.raises(ValueError):
        results.parse_wrk("unable to connect to epoll:12345 Connection refused\n")


def test_the_wrk_command_is_the_http_twin_of_pingpong() -> None:
    (w,) = [w for w in WORKLOADS if w.wrk]
    plan = Plan(["epoll"], [w], 1, duration=0.5, wrk=True)
    command = wrk_command(plan, "epoll", w, 2)
    assert command[:2] == ["wrk", "--threads=2"] and "--connections=50" in command and "--latency" in command
    assert "--duration=1s" in command  # wrk takes whole seconds
    assert command[-1] == "http://epoll:12345/" + "x" * 63 and not duplicated(command)


def test_wrk_without_a_tools_container_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lab import config
    assert wrk_available() is None  # compose.yaml has the tools service
    without = tmp_path / "compose.yaml"  # a topology without the tools service (wrk's image)
    without.write_text(re.sub(r"\n  tools:\n(    .*\n|\n)*", "\n", (config.ROOT / "compose.yaml").read_text()))
    monkeypatch.setenv("LAB_COMPOSE", str(without))
    assert "needs compose.yaml's `tools` service" in wrk_available()
    assert pick_clients("wrk") == ["swarm", "wrk"] and pick_clients("swarm") == ["swarm"]
    with pytest.raises(Exception, match="unknown client 'ab'"):
        pick_clients("swarm,ab")


# -- before and after ---------------------------------------------------------------------------

def test_a_baseline_says_which_changes_are_beyond_the_noise(run_dir: Path, tmp_path: Path) -> None:
    after = copy_run(run_dir, tmp_path / "after")

    was = data.load(run_dir).spread("epoll", "pingpong", data.replies_per_s)
    factor = round(2 * was.max / was.min, 1)  # past the top of the old range: beyond any noise it showed

    def faster(doc: dict) -> None:  # epoll faster in pingpong, everything else as it was
        for rep in doc["models"]["epoll"]["repeats"]:
            rep["workloads"]["pingpong"]["swarm"]["summary"]["replies_per_s"] *= factor
        doc["run"]["id"] = "after"
    edit(after, faster)
    this, before = data.load(after), data.load(run_dir)
    t = baseline.table(this, before)
    row = {(r[0], r[1], r[2]): r for r in t.rows}
    assert row[("epoll", "pingpong", "replies/s")][5] == f"{factor - 1:+.0%}"
    assert row[("epoll", "pingpong", "replies/s")][6] == "better, beyond the noise"
    assert row[("threads", "pingpong", "replies/s")][6] == "within the noise"
    assert row[("threads", "pingpong", "replies/s")][5] == "+0%"
    done = lab("report", str(after), "--baseline", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "better, beyond the noise" in done.stdout
    page = (after / "report.html").read_text()
    assert "Against the baseline" in page and validate(page, every_file(after)) == []
    again = lab("report", str(after), "--baseline", str(run_dir), "--out", str(tmp_path / "again"))
    assert again.returncode == 0 and (tmp_path / "again" / "report.html").read_bytes() == page.encode()


def test_one_repeat_has_no_spread_to_judge_a_change_by() -> None:
    one, two = data.Spread((100.0,)), data.Spread((90.0, 110.0))
    assert baseline.verdict(one, two, "higher")[0] == "spread unknown (1 repeat)"
    assert baseline.verdict(two, data.Spread((200.0, 210.0)), "lower") == ("worse, beyond the noise", "fail")
    assert baseline.verdict(two, data.Spread((105.0, 120.0)), "higher") == ("within the noise", "")


def test_a_baseline_of_itself_or_of_nothing_is_refused(run_dir: Path, tmp_path: Path) -> None:
    done = lab("report", str(run_dir), "--baseline", str(run_dir))
    assert done.returncode == 2 and "names the run itself" in done.stderr
    done = lab("report", str(run_dir), "--baseline", str(tmp_path / "nothing"))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0


# -- report honesty: marks kept, no percentage of a partial figure, no negative size ---------------

def test_the_baseline_keeps_the_marks_and_gives_no_percentage_of_a_partial_figure(run_dir: Path,
                                                                                     tmp_path: Path) -> None:
    after = copy_run(run_dir, tmp_path / "after")

    def server_bound(doc: dict) -> None:  # after: epoll set its own pace (the fixture's host was full: ‡)
        doc["run"]["id"] = "after"
        for rep in doc["models"]["epoll"]["repeats"]:
            rep["workloads"]["pingpong"]["limit_inputs"].update(swarm_cores=0.2, server_cores=0.3, host_cores=0.6)
    edit(after, server_bound)
    t = baseline.table(data.load(after), data.load(run_dir))
    row = {(r[0], r[1], r[2]): r for r in t.rows}
    blocking = row[("blocking", "pingpong", "replies/s")]  # 1 of 50 connections served: †, in both runs
    assert data.PARTIAL in blocking[3].split()[-1] and data.PARTIAL in blocking[4].split()[-1]
    assert blocking[5] == tables.DASH
    assert row[("blocking", "pingpong", "p99 ms")][5] == tables.DASH
    epoll = row[("epoll", "pingpong", "replies/s")]
    assert epoll[3].endswith(data.LIMITED) and not epoll[4].endswith(data.LIMITED) and epoll[5].endswith("%")
    notes = " ".join(t.notes)
    assert "served only some of its connections" in notes and "did not set this pace" in notes


def test_identical_figures_are_never_worse_beyond_the_noise() -> None:
    two_places = lambda v: tables.num(v, 2)  # noqa: E731
    before, now = data.Spread((1.001, 1.002)), data.Spread((1.004, 1.005))  # apart, but both read 1.00
    assert baseline.verdict(before, now, "lower", two_places) == ("the same, as shown", "")
    assert baseline.verdict(before, data.Spread((1.04, 1.05)), "lower", two_places)[0] == "worse, beyond the noise"
    assert baseline.change(data.Spread((0.0, 0.0)), data.Spread((5.0, 6.0)), "") == tables.DASH  # from nothing
    assert baseline.change(data.Spread((-2.0, -1.0)), data.Spread((5.0, 6.0)), "") == tables.DASH


def test_no_share_of_the_ceiling_for_a_partial_figure(run_dir: Path) -> None:
    run = data.load(run_dir)
    assert data.partial(run, "blocking", "pingpong")
    assert data.fraction_of_reference(run, "blocking", "pingpong", data.replies_per_s) is None
    assert cells(tables.throughput(run), "blocking", "of the ceiling", "pingpong") == [tables.DASH]
    assert "%" not in cells(tables.summary(run), "blocking", "pingpong replies/s")[0]
    assert "of native" not in plots.throughput_note(run, "blocking", "pingpong")


def test_memory_per_connection_is_never_a_negative_size(run_dir: Path) -> None:
    assert tables.kib(-3.2) == tables.BELOW_IDLE and tables.kib(-3.2, whole=True) == tables.BELOW_IDLE
    assert tables.kib(-0.01) == "0.0" and tables.kib(12.4, whole=True) == "12" and tables.kib(0.7) == "0.7"

    def shrank(doc: dict) -> None:  # epoll's memory under load below its idle server's
        for rep in doc["models"]["epoll"]["repeats"]:
            for rec in rep["workloads"].values():
                if rec.get("load"):
                    rec["load"].update(pss_kib=1, uss_kib=1, rss_kib=1)
    edit(run_dir, shrank)
    run = data.load(run_dir)
    (w,) = run.of_kind("c10k")
    shown = [tables.summary(run), tables.resources(run), c10k.c10k_costs(run, w)]
    for t in shown:
        for row in t.rows:
            for col, cell in zip(t.columns, row):
                if "KiB/conn" in col:
                    assert not re.match(r"[-−]\d", cell), (col, cell)
    assert tables.BELOW_IDLE in cells(shown[0], "epoll", [c for c in shown[0].columns if "KiB/conn" in c][0])[0]
    assert any(tables.BELOW_IDLE in c for c in cells(shown[2], "blocking", "cgroup KiB/conn"))  # the fixture's own
    for t in shown:
        assert "never a negative size" in " ".join(t.notes), t.columns


def test_unanswered_says_what_it_counts() -> None:
    run = data.load(FIXTURE)
    said = 0
    for t in (tables.summary(run), tables.throughput(run), tables.latency(run), tables.timeline(run)):
        for col in [c for c in t.columns if "unanswered" in c]:
            assert "requests unanswered" in col, col
            assert "requests unanswered" in " ".join(t.notes) and "when the run ended" in " ".join(t.notes)
            said += 1
    assert said == 4


def test_each_c10k_table_fits_a_page(run_dir: Path) -> None:
    """As wide as the terminal's default off a tty (160 columns): abbreviated
    labels, each defined under its table."""
    from rich.console import Console
    from rich.measure import Measurement
    from lab.console import PIPE_WIDTH
    run = data.load(run_dir)
    (w,) = run.of_kind("c10k")
    console = Console(width=1000, color_system=None)
    for t in c10k.c10k(run, w):
        widest = Measurement.get(console, console.options, tables.rich_table(t).renderables[0]).maximum
        assert widest <= PIPE_WIDTH, (t.columns, widest)
        longest = max(len(c) for row in t.rows for c in row[1:])
        assert longest <= 30, longest


# -- commands and counters that agree with themselves --------------------------------------------

def test_no_command_in_the_results_repeats_a_flag(results_doc: dict) -> None:
    commands = [("server", m, c) for m, c in results_doc["params"]["server_commands"].items()]
    for m, entry in results_doc["models"].items():
        for rep in entry["repeats"]:
            for w, rec in rep["workloads"].items():
                commands.append((w, m, rec["swarm_command"]))
                if rec.get("server"):
                    commands.append((f"{w} server", m, rec["server"]["command"]))
    assert len(commands) > 20
    for what, model, argv in commands:
        assert not duplicated(argv), (what, model, argv)
    pingpong = results_doc["models"]["epoll"]["repeats"][0]["workloads"]["pingpong"]["swarm_command"]
    assert not any(a.startswith("--interval") for a in pingpong), "compose.yaml's classic flags rode along"


def test_with_flags_sets_each_flag_once_in_either_spelling() -> None:
    base = ["python3", "/srv/swarm/swarm.py", "--target=server:12345", "--clients", "3", "--interval=50"]
    got = with_flags(base, clients=50, target="epoll:12345", connect_timeout=2, interval=None)
    assert got == ["python3", "/srv/swarm/swarm.py", "--clients=50", "--target=epoll:12345", "--connect-timeout=2"]
    assert swarm_command(base, clients=1) == ["python3", "/srv/swarm/swarm.py", "--clients=1"]
    assert duplicated(["x", "--a=1", "--b", "--a=2"]) == ["--a"]


def test_the_c10k_counters_are_defined_once_and_agree(run_dir: Path, results_doc: dict) -> None:
    run = data.load(run_dir)
    (w,) = run.of_kind("c10k")
    connections, busy, costs = c10k.c10k(run, w)
    header = connections.columns
    for _, label in c10k.COUNTERS:
        assert header.count(label) == 1
        assert f"{label}:" in connections.notes[0], label  # each defined beside the table
    assert not [n for n in connections.notes if "disagree" in n]
    for m, entry in results_doc["models"].items():
        for rep in entry["repeats"]:
            c = rep["workloads"]["c10k"]["counters"]
            assert c["open_at_peak"] <= c["accepted"] <= c["connected"] <= c["asked"], (m, c)
            assert c["kept"] <= c["connected"] and c["waited_unaccepted"] == c["connected"] - c["accepted"]
    summary = tables.summary(run)
    assert "c10k open at peak" in summary.columns and not any("kept" in col for col in summary.columns)
    assert cells(summary, "epoll", "c10k open at peak") == ["10,000"]


def test_counters_that_disagree_are_said(run_dir: Path) -> None:
    edit(run_dir, lambda doc: [rep["workloads"]["c10k"]["counters"].update(open_at_peak=10**6)
                               for rep in doc["models"]["epoll"]["repeats"]])
    run = data.load(run_dir)
    (w,) = run.of_kind("c10k")
    notes = " ".join(c10k.c10k_connections(run, w).notes)
    assert "disagree" in notes and "epoll: open at peak 1,000,000 > accepted" in notes


def test_c10k_counters_from_events() -> None:
    events = [{"ev": "accept", "t": 1.0}, {"ev": "accept", "t": 2.0}, {"ev": "close", "t": 2.5},
              {"ev": "accept", "t": 3.0}, {"ev": "accept", "t": 12.0}]
    swarm = {"summary": {"clients": 5, "connections": {"connected": 4}}, "ended": {"monotonic": 10.0}}
    got = results.c10k_counters(events, swarm, peak_t=3.5, kept=4)
    assert got == {"asked": 5, "connected": 4, "accepted": 3, "accepted_after_end": 1, "open_at_peak": 2,
                   "kept": 4, "waited_unaccepted": 1}


# -- compare's own pieces, without Docker ------------------------------------------------------

def test_the_workload_table_is_well_formed() -> None:
    names = [w.name for w in WORKLOADS]
    assert len(names) == len(set(names))
    assert {w.kind for w in WORKLOADS} <= {"timeline", "closed", "open", "c10k", "cost"}
    assert [w.name for w in pick_workloads("rate,classic")] == ["rate", "classic"]
    assert "c10k" not in [w.name for w in pick_workloads(None)]  # too long for every compare
    assert "syscalls" not in [w.name for w in pick_workloads(None)]  # traced: no throughput figure
    plan = Plan(["native", "epoll"], list(WORKLOADS), 1, None, kinds={"native": "reference"},
                        declares={"native": {"peak_served"}, "epoll": {"peak_served", "c10k", "scan_cost"}})
    assert [w.name for w in WORKLOADS if plan.skipped("native", w)] == ["c10k", "syscalls"]
    assert not [w for w in WORKLOADS if plan.skipped("epoll", w)]


def test_the_reference_runs_first_unless_left_out() -> None:
    known = ["blocking", "epoll", "native", "threads"]
    assert pick_models(None, known, ["native"])[0] == "native"
    assert pick_models("epoll,blocking", known, ["native"]) == ["native", "epoll", "blocking"]
    assert pick_models("epoll", known, ["native"], with_references=False) == ["epoll"]
    assert "native" not in pick_models(None, known, ["native"], with_references=False)
    assert pick_models("native,epoll", known, ["native"], with_references=False) == ["native", "epoll"]


def test_the_c10k_workload_comes_from_its_scenario_file() -> None:
    from lab.plan import scenarios

    scenario = scenarios.get("c10k")
    probe = scenario.probes["main"]
    (w,) = pick_workloads("c10k")
    assert w.scenario == "c10k" and w.about == scenario.claim
    assert w.flags == {k: v for k, v in probe.values.items() if k not in scenarios.OPTIONS}
    assert w.warmup == probe.values["warmup"] and w.warmup + w.measure == probe.values["duration"]
    plan = Plan(["epoll"], [w], 1, duration=1.0)
    assert plan.measure(w) == w.measure  # --duration leaves a scenario's own length alone
    doc = workload_doc(w, plan)
    assert doc["server_flags"] == scenario.server and doc["scenario"] == "c10k"


@pytest.mark.parametrize("args, says", [
    (["--models", "blocking,nosuch"], "unknown model 'nosuch'; the models are: "),
    (["--scenario", "c20k"], "unknown scenario 'c20k'; the scenarios are: classic"),
    (["--repeat", "0"], "too small"),
    (["--duration", "soon"], "not a number"),
    (["--client", "ab"], "unknown client 'ab'; the clients are: swarm, wrk"),
])
def test_compare_refuses_bad_input_before_touching_docker(args: list[str], says: str) -> None:
    done = lab("compare", *args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], done.stderr


def test_the_exit_status_says_measured_failed_or_not_judged(results_doc: dict) -> None:
    doc = copy.deepcopy(results_doc)
    for m in doc["models"].values():
        for rep in m["repeats"]:
            rep["workloads"]["c10k"]["check"]["ok"] = True
    assert exit_status(doc, {"checks": [{"ok": True}]}) == 0
    assert exit_status(doc, {"checks": [{"ok": True}, {"ok": None}]}) == 3
    assert exit_status(doc, {"checks": [{"ok": False}, {"ok": None}]}) == 1
    doc["models"]["epoll"]["repeats"][0]["workloads"]["c10k"]["check"]["ok"] = None
    assert exit_status(doc, None) == 3
    doc["errors"] = ["epoll repeat 1 pingpong: no results"]
    assert exit_status(doc, None) == 1


def test_a_failed_measurement_is_reported_not_fatal(run_dir: Path) -> None:
    def fail(doc: dict) -> None:
        doc["models"]["epoll"]["repeats"][1]["workloads"]["pingpong"] = {"error": "the swarm left no results.json"}
        doc["models"]["threads"]["repeats"] = [{"repeat": 1, "error": "threads was not healthy within 60s",
                                                "workloads": {}}]
        doc["errors"] = ["epoll repeat 2 pingpong: the swarm left no results.json",
                         "threads repeat 1: threads was not healthy within 60s"]
    edit(run_dir, fail)
    files = report.render_run(run_dir)
    page = files["report.html"].decode()
    assert "threads was not healthy within 60s" in page and "<strong>Problems:</strong>" in page
    assert validate(page, files) == []
    rows = list(csv.DictReader(io.StringIO(files["results.csv"].decode())))
    failed = [r for r in rows if r["error"]]
    assert [(r["model"], r["workload"], r["repeat"]) for r in failed] == [("epoll", "pingpong", "2")]
    assert not any(r["model"] == "threads" for r in rows)


def test_a_run_without_c10k_has_no_c10k_section(run_dir: Path) -> None:
    def drop(doc: dict) -> None:
        doc["workloads"] = [w for w in doc["workloads"] if w["name"] != "c10k"]
        doc["params"]["scenarios"].remove("c10k")
        for m in doc["models"].values():
            for rep in m["repeats"]:
                del rep["workloads"]["c10k"]
    edit(run_dir, drop)
    files = report.render_run(run_dir)
    page = files["report.html"].decode()
    assert "C10K:" not in page and "plots/c10k.svg" not in files and "5. Resources" in page  # after Two clients
    assert "c10k" not in files["results.csv"].decode().split("\n", 1)[1]


def test_a_wrong_schema_or_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"schema": "iolab.swarm/1"}))
    done = lab("report", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "iolab.compare/2" in done.stderr
    done = lab("report", str(tmp_path / "nothing-here"))
    assert done.returncode == 2 and "no run directory" in done.stderr


def test_the_terminal_summary_carries_the_marks(run_dir: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=400, color_system=None)
    console.print(tables.rich_table(tables.summary(data.load(run_dir))))
    text = console.export_text()
    (blocking,) = [line for line in text.splitlines() if line.lstrip("│ ").startswith("blocking")]
    assert data.PARTIAL in blocking and "not checked" not in blocking
    assert "served only some of its connections" in text


def tiny_run(doc: dict) -> dict:
    """The fixture cut to one model, one repeat and two workloads (a timeline
    and a closed loop): every kind of record, rendered in milliseconds."""
    doc = copy.deepcopy(doc)
    keep = ("classic", "pingpong")
    doc["workloads"] = [w for w in doc["workloads"] if w["name"] in keep]
    doc["params"]["models"], doc["params"]["reference"] = ["epoll"], None
    epoll = doc["models"]["epoll"]
    epoll["repeats"] = epoll["repeats"][:1]
    epoll["repeats"][0]["workloads"] = {k: v for k, v in epoll["repeats"][0]["workloads"].items() if k in keep}
    for conn in epoll["repeats"][0]["workloads"]["classic"]["swarm"]["timeline"]["conns"]:
        conn["pairs"] = conn["pairs"][:4]
    doc["models"] = {"epoll": epoll}
    return doc


UNREAD = {"config", "environment", "timeline", "output", "command", "swarm_command", "server_command", "connect"}


def leaves(value: Any, path: tuple = ()) -> Any:
    """Every path to a field the report may read (lists: their first item only)."""
    items = value.items() if isinstance(value, dict) else enumerate(value[:1]) if isinstance(value, list) else ()
    for key, item in items:
        if key not in UNREAD:
            yield path + (key,)
            yield from leaves(item, path + (key,))


def test_whatever_the_schema_lets_through_the_report_renders(results_doc: dict) -> None:
    """Each field of a record dropped, nulled or made text: the schema
    refuses it (exit 2), or the report's tables and results.csv render it
    (never a KeyError or TypeError, exit 70)."""
    from lab.report import schema
    doc = tiny_run(results_doc)
    repeat = at(doc, "models", "epoll", "repeats", 0)
    tried = 0
    for path in list(leaves(repeat)):
        box, key = at(repeat, *path[:-1]), path[-1]
        for change in ("drop", "null", "text"):
            was = box[key]
            if change == "drop" and isinstance(box, dict):
                del box[key]
            else:
                box[key] = None if change == "null" else "x"
            try:
                if schema.first_error(repeat, schema.REPEAT, "") is None:
                    run = data.Run(doc, None, None)
                    for table in (tables.summary, tables.throughput, tables.latency, tables.resources,
                                  tables.timeline, tables.clients):
                        table(run)
                    csvfile.csv_bytes(run)
                    tried += 1
            finally:
                box[key] = was  # back in place (a dict keeps its new order: nothing reads it)
    assert tried > 50  # many changes the schema allows (an optional figure not measured) still render
