"""The tour without Docker: its words complete in both languages, choosing
steps, what a step may say from its verdicts, the transcript, and the
proof that its verdicts come from `lab check`'s own judging."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.checks import Verdict
from lab.errors import UsageError
from lab.tour import lesson, runner, steps as tour_steps, transcript
from lab.tour.steps import LANGUAGES, PARTS, completeness, fill, load_steps, narration, select, tidy

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "compare-run" / "results.json"


# -- the words ----------------------------------------------------------------------

def test_every_step_has_every_part_in_both_languages() -> None:
    assert completeness(load_steps()) == []
    for lang in LANGUAGES:
        words = narration(lang)
        for s in load_steps():
            assert all(str(words["steps"][s.id][p]).strip() for p in PARTS), (lang, s.id)


def test_a_missing_part_an_unknown_step_and_a_wrong_figure_are_found(tmp_path: Path) -> None:
    for f in tour_steps.HERE.glob("narration-*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    zh = tmp_path / "narration-zh.yaml"
    text = zh.read_text()
    text = re.sub(r"\n    lesson: \"阻塞调用.*\"\n", "\n", text, count=1)  # blocking's lesson, gone
    text = text.replace("{threads.threads.peak}", "{threads.thread_count.peak}")  # a key the step does not judge
    zh.write_text(text + "\n  no-such-step:\n    title: x\n")
    found = completeness(load_steps(), tmp_path)
    assert "narration-zh.yaml: step 'blocking' has no lesson" in found
    assert "narration-zh.yaml: a step steps.yaml does not have: 'no-such-step'" in found
    assert any("names threads.thread_count, which the step does not judge" in p for p in found)
    assert any("the answers name different figures in different languages" in p for p in found)


def sentences(text: str, lang: str) -> int:
    ends = r"[。？！]" if lang == "zh" else r"[.?!](?:\s|$)"
    return len(re.findall(ends, tidy(text)))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_question_is_two_or_three_sentences_and_a_lesson_one_line(lang: str) -> None:
    words = narration(lang)["steps"]
    for s in load_steps():
        assert 2 <= sentences(words[s.id]["question"], lang) <= 3, (lang, s.id, words[s.id]["question"])
        assert "\n" not in words[s.id]["lesson"].strip(), (lang, s.id)


def test_chinese_is_written_without_the_spaces_folding_puts_between_characters() -> None:
    assert tidy("三个客户端同时连上来，\n它一次能服务几个？") == "三个客户端同时连上来，它一次能服务几个？"
    assert tidy("再对拿到的客户端调用\nrecv()，每个") == "再对拿到的客户端调用 recv()，每个"
    assert tidy("two  spaces\nand a fold") == "two spaces and a fold"


def test_the_article_order_and_the_fourth_corner_last() -> None:
    """The article's order; a later step (slow clients) may come in before the fourth corner."""
    ids = [s.id for s in load_steps()]
    article = ["blocking", "eagain", "busypoll", "readiness", "triggering", "forking", "prefork", "threads",
               "gil", "shared-state", "cooperative", "uring"]
    assert [i for i in ids if i in article] == article and ids[-1] == "uring"
    assert [s.n for s in load_steps()] == list(range(1, len(ids) + 1))


# -- choosing steps -----------------------------------------------------------------

def test_step_and_from_choose_steps() -> None:
    all_steps = load_steps()
    n = len(all_steps)
    assert [s.n for s in select(all_steps)] == list(range(1, n + 1))
    assert [s.n for s in select(all_steps, step=8)] == [8]
    assert [s.n for s in select(all_steps, start=n - 2)] == [n - 2, n - 1, n]
    with pytest.raises(UsageError, match=f"there is no step {n + 1}: the tour has steps 1 to {n}"):
        select(all_steps, step=n + 1)
    with pytest.raises(UsageError, match="give one"):
        select(all_steps, step=2, start=3)
    with pytest.raises(UsageError, match="no narration in 'fr'"):
        narration("fr")


# -- what a step may say ------------------------------------------------------------

def verdict(model: str, expect: str, ok: bool | None, **figures: Any) -> dict[str, Any]:
    check = {"peak_served": "served-at-once", "threads": "growth"}.get(expect, expect)
    return Verdict(model, check, expect, "claim", f"{expect}: x",
                   ("not judged: host busy (0.4 cores free, 1.5 needed)" if ok is None else "observed"),
                   ok, figures).as_dict()


THREADS = narration("en")["steps"]["threads"]


def test_held_gives_the_answer_with_its_figures_and_the_lesson() -> None:
    said = lesson.conclude([verdict("threads", "threads", True, before=1, peak=7, after=1, clients=6),
                            verdict("threads", "peak_served", True, peak=3, clients=3)], THREADS)
    assert said.kind == "held"
    assert said.answer == ("The server's threads went 1 → 7 → 1 for 6 clients, and 3 of 3 were served at once.")
    assert said.lesson == tidy(THREADS["lesson"])


def test_a_contradicted_step_says_what_was_measured_and_never_its_lesson() -> None:
    failed = verdict("threads", "peak_served", False, peak=1, clients=3)
    said = lesson.conclude([verdict("threads", "threads", True, before=1, peak=7, after=1, clients=6), failed],
                           THREADS)
    assert said.kind == "failed" and said.lesson is None and said.answer is None
    assert said.instead == [failed]


def test_not_judged_says_why_and_marks_the_lesson_unproven() -> None:
    said = lesson.conclude([verdict("threads", "peak_served", None)], THREADS)
    assert said.kind == "not judged" and said.answer is None
    assert said.why == ["threads served-at-once: host busy (0.4 cores free, 1.5 needed)"]
    assert lesson.conclude([], THREADS, ["threads: io_uring refused"]).why == ["threads: io_uring refused"]


def test_fill_reads_figures_and_leaves_no_placeholder() -> None:
    vs = [verdict("threads", "lost_updates", True, counts=[3000, 6001, 2], total=12000),
          verdict("forking", "crash_takes", True, others_served_after={"2": True, "3": False})]
    assert fill("{threads.lost_updates.counts|max} of {threads.lost_updates.total}", vs) == "6001 of 12000"
    assert fill("{forking.crash_takes.others_served_after|count}/"
                "{forking.crash_takes.others_served_after|len}", vs) == "1/2"
    assert fill("{threads.lost_updates.nothing}", vs) is None
    assert fill("{epoll.idle_cpu.cores}", [verdict("epoll", "idle_cpu", True, cores=0.0012)]) == "0.00"


# -- the transcript ---------------------------------------------------------------------

def swarm_doc() -> dict[str, Any]:
    doc = json.loads(FIXTURE.read_text())
    return doc["models"]["epoll"]["repeats"][0]["workloads"]["classic"]["swarm"]


def record(tmp_path: Path) -> dict[str, Any]:
    """A two-step tour's record: blocking held, threads contradicted."""
    folder = tmp_path / "steps" / "01-blocking" / "blocking"
    folder.mkdir(parents=True)
    (folder / "served-at-once-main.results.json").write_text(json.dumps(swarm_doc()))
    return {"schema": runner.SCHEMA, "run": "20260101-tour-x", "lang": "en", "wall_s": 83.4, "host": {"cpus": 2},
            "steps": [
                {"n": 1, "id": "blocking", "verdicts": [verdict("blocking", "peak_served", True, peak=1, clients=3)],
                 "errors": [], "plot": {"scenario": "served-at-once", "probe": "main",
                                        "files": {"blocking": "steps/01-blocking/blocking/served-at-once-main"
                                                              ".results.json"}}},
                {"n": 8, "id": "threads", "verdicts": [verdict("threads", "peak_served", False, peak=1, clients=3)],
                 "errors": [], "plot": {"scenario": "served-at-once", "probe": "main", "files": {}}}]}


def test_the_transcript_in_both_languages_with_each_steps_timeline(tmp_path: Path) -> None:
    files = transcript.render(record(tmp_path), tmp_path, LANGUAGES)
    assert set(files) == {*transcript.names(LANGUAGES), "plots/step-01.svg"}
    en, zh = files["transcript.en.md"].decode(), files["transcript.zh.md"].decode()
    words = {lang: narration(lang)["steps"] for lang in LANGUAGES}
    for lang, text in (("en", en), ("zh", zh)):
        assert tidy(words[lang]["blocking"]["question"]) in text
        assert tidy(words[lang]["blocking"]["lesson"]) in text
        assert tidy(words[lang]["threads"]["lesson"]) not in text  # contradicted: never said
        assert narration(lang)["labels"]["instead"] in text
        assert "![" in text and "plots/step-01.svg" in text
    assert "1 min 23 s" in en
    html = files["transcript.en.html"].decode()
    assert 'src="data:image/svg+xml;base64,' in html and "<html lang=\"en\">" in html
    assert "http" not in html.replace("http://www.w3.org", "")  # self-contained: nothing fetched
    assert b"served at once" in files["plots/step-01.svg"]


# -- the verdicts are `lab check`'s --------------------------------------------------------

def test_the_tour_judges_with_the_very_function_lab_check_runs() -> None:
    from lab.checks import runner as checks_runner, session
    assert runner.run_model is checks_runner.run_model is session.run_model


class FakeEngine:
    swarm_by_exec = True


class FakeLive:
    """What ShownBench asks of a live run: start the swarm, discard it."""

    def __init__(self) -> None:
        self.engine = FakeEngine()
        self.started: list[str] = []
        self.discarded: list[str] = []

    def start(self, service: str, **kw: Any) -> Any:
        self.started.append(service)
        return type("Unit", (), {"id": "u1", "name": service})()

    def discard(self, unit: Any, log_name: str) -> None:
        self.discarded.append(log_name)


class Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: True


def test_a_step_passes_run_models_verdicts_through_unchanged_and_removes_its_swarm(monkeypatch) -> None:
    calls: list[tuple[str, list[str]]] = []
    given = {"threads": [Verdict("threads", "growth", "threads", "c", "e", "1 -> 7 -> 1", True, {"peak": 7})]}

    def fake_run_model(bench: Any, model: Any, found: list[Any], progress: Any) -> list[Verdict]:
        assert isinstance(bench, runner.Bench)  # lab/run's Bench: the probes lab check makes
        calls.append((model.name, [s.name for s in found]))
        progress(model.name, found[0].name, None)
        return given[model.name]

    monkeypatch.setattr(runner, "run_model", fake_run_model)
    live = FakeLive()
    step = next(s for s in load_steps() if s.id == "threads")
    done, verdicts = runner.run_step(live, step, Quiet())  # type: ignore[arg-type]
    assert calls == [("threads", ["growth", "served-at-once"])]
    assert verdicts == given["threads"] and done["verdicts"] == [v.as_dict() for v in given["threads"]]
    assert done["outcome"] == "held"
    assert live.started == ["swarm"] and live.discarded == ["steps/08-threads/swarm"]


def test_a_server_that_cannot_start_leaves_its_keys_not_judged_and_the_tour_goes_on(monkeypatch) -> None:
    from lab.errors import EnvironmentProblem

    def refused(bench: Any, model: Any, found: list[Any], progress: Any) -> list[Verdict]:
        raise EnvironmentProblem("uring did not start listening: io_uring_setup: EPERM")

    monkeypatch.setattr(runner, "run_model", refused)
    step = next(s for s in load_steps() if s.id == "uring")
    done, verdicts = runner.run_step(FakeLive(), step, Quiet())  # type: ignore[arg-type]
    assert done["outcome"] == "not judged"
    assert {v.expect for v in verdicts} == {"idle_cpu", "peak_served", "thread_count"}
    assert all(v.ok is None and "io_uring_setup: EPERM" in v.observed for v in verdicts)
    assert done["errors"] == ["uring: uring did not start listening: io_uring_setup: EPERM"]


def test_overlapping_answered_requests_are_drawn_as_one_bar() -> None:
    pairs = [[0.0, 0.5], [0.1, 0.6], [0.2, 0.3], [1.0, 1.1], [1.2, None]]
    assert transcript.merged(pairs) == [[0.0, 0.6], [1.0, 1.1], [1.2, None]]
