"""The tour's steps and their words, as data: steps.yaml and narration-<lang>.yaml.

    steps = load_steps()                    # [Step], in the article's order, numbered from 1
    words = narration("zh")                 # the labels and each step's parts in Chinese
    chosen = select(steps, step=3)          # --step 3; select(steps, start=5): --from 5
    problems = completeness(steps)          # what a narration file lacks (a unit test wants none)
    text = fill(template, verdicts)         # an answer with the verdicts' figures in it

Pure: files in, data out.  Nothing here runs a container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError

HERE = Path(__file__).resolve().parent
STEPS = HERE / "steps.yaml"
LANGUAGES = ("en", "zh")
PARTS = ("title", "question", "watch", "answer", "lesson")  # every step, in every language
LABELS = ("title", "subtitle", "step", "question", "watch", "experiment", "answer", "evidence", "lesson",
          "instead", "instead_note", "not_judged", "not_judged_note", "expected", "observed", "result",
          "model", "check", "held", "failed", "unjudged", "running", "against", "next", "wall", "plot",
          "colon", "meta", "transcript", "written")
# {MODEL.KEY.FIGURE} or {MODEL.KEY.FIGURE|max}: a figure of the verdict on KEY for MODEL
PLACEHOLDER = re.compile(r"\{([a-z0-9][a-z0-9-]*)\.([a-z_]+)\.([a-z_]+)(?:\|(max|len|count))?\}")


@dataclass(frozen=True)
class Experiment:
    model: str
    scenarios: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    n: int  # 1-based, in the article's order
    id: str
    run: tuple[Experiment, ...]
    plot: str  # SCENARIO or SCENARIO/PROBE

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(e.model for e in self.run))

    @property
    def plot_probe(self) -> tuple[str, str]:
        scenario, _, probe = self.plot.partition("/")
        return scenario, probe or "main"

    @property
    def folder(self) -> str:
        """Where its probes' files go in the run directory."""
        return f"steps/{self.n:02d}-{self.id}"


def load_steps(path: Path = STEPS) -> list[Step]:
    doc = yaml.safe_load(path.read_text()) or {}
    steps = []
    for n, s in enumerate(doc.get("steps") or [], 1):
        run = tuple(Experiment(str(e["model"]), tuple(str(x) for x in e["scenarios"])) for e in s["run"])
        steps.append(Step(n, str(s["id"]), run, str(s.get("plot") or run[0].scenarios[0])))
    return steps


def narration(lang: str, folder: Path = HERE) -> dict[str, Any]:
    """narration-<lang>.yaml: {"language", "labels": {...}, "steps": {id: {part: text}}}."""
    if lang not in LANGUAGES:
        raise UsageError(f"no narration in '{lang}': choose one of {', '.join(LANGUAGES)}")
    doc = yaml.safe_load((folder / f"narration-{lang}.yaml").read_text()) or {}
    return {"language": doc.get("language", lang), "labels": doc.get("labels") or {},
            "steps": doc.get("steps") or {}}


def select(steps: list[Step], step: int | None = None, start: int | None = None) -> list[Step]:
    """--step N (that one), --from N (it and the rest), or all; a UsageError naming the range."""
    if step is not None and start is not None:
        raise UsageError("--step and --from choose differently: give one")
    wanted = step if step is not None else start
    if wanted is None:
        return list(steps)
    if not 1 <= wanted <= len(steps):
        raise UsageError(f"there is no step {wanted}: the tour has steps 1 to {len(steps)} (`lab tour --list`)")
    return [steps[wanted - 1]] if step is not None else steps[wanted - 1:]


def completeness(steps: list[Step], folder: Path = HERE) -> list[str]:
    """Everything a narration file lacks or has too much of: every step has
    every part in every language, every label is there, and an answer names
    only figures of verdicts its step gives (a model it runs, a key one of its
    scenarios judges and its model declares), the same ones in every language."""
    from ..plan import models, scenarios as catalogue  # only the check needs the keys each model declares
    problems: list[str] = []
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        problems.append(f"steps.yaml: an id is used twice: {ids}")
    used: dict[str, dict[str, set[str]]] = {}
    declared, found_scenarios = models.all_models(), catalogue.all_scenarios()  # read once: YAML is slow
    judged = {s.id: {(e.model, k) for e in s.run for name in e.scenarios
                     for k in catalogue.judged_keys(declared[e.model], found_scenarios[name])} for s in steps}
    for lang in LANGUAGES:
        words = narration(lang, folder)
        problems += [f"narration-{lang}.yaml: no label '{k}'" for k in LABELS if not words["labels"].get(k)]
        problems += [f"narration-{lang}.yaml: a step steps.yaml does not have: '{k}'"
                     for k in words["steps"] if k not in ids]
        for s in steps:
            parts = words["steps"].get(s.id) or {}
            problems += [f"narration-{lang}.yaml: step '{s.id}' has no {p}" for p in PARTS
                         if not str(parts.get(p) or "").strip()]
            problems += [f"narration-{lang}.yaml: step '{s.id}' has a part no step has: {p}"
                         for p in parts if p not in PARTS]
            found = PLACEHOLDER.findall(str(parts.get("answer") or ""))
            used.setdefault(s.id, {})[lang] = {f"{m}.{k}.{f}" for m, k, f, _ in found}
            problems += [f"narration-{lang}.yaml: step '{s.id}' answer names {m}.{k}, which the step does not judge"
                         for m, k, _, _ in found if (m, k) not in judged[s.id]]
            stray = re.sub(PLACEHOLDER, "", str(parts.get("answer") or ""))
            if re.search(r"\{[^}]*\}", stray):
                problems.append(f"narration-{lang}.yaml: step '{s.id}' answer has a placeholder not of the "
                                "form {MODEL.KEY.FIGURE}")
    for sid, by_lang in used.items():
        if len({frozenset(v) for v in by_lang.values()}) > 1:
            problems.append(f"step '{sid}': the answers name different figures in different languages: {by_lang}")
    return problems


# CJK ideographs and full-width punctuation: a space YAML's folding put between two of them goes
_WIDE = "\u3000-\u303f\u3400-\u9fff\uff00-\uffef\u2014\u201c\u201d"
_WIDE_GAP = re.compile(f"(?<=[{_WIDE}]) (?=[{_WIDE}])")


def tidy(text: str) -> str:
    """One paragraph: runs of white space made one space, as YAML folds
    English; none between two Chinese characters, as Chinese is written."""
    return _WIDE_GAP.sub("", " ".join(str(text).split()))


def _value(v: Any, how: str | None) -> Any:
    if how == "max":
        return max(v) if isinstance(v, (list, tuple)) and v else None
    if how == "len":
        return len(v) if isinstance(v, (list, tuple, dict)) else None
    if how == "count":
        values = v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else None
        return None if values is None else sum(1 for x in values if x)
    return v


def number(v: Any) -> str:
    """A figure as a sentence shows it: whole numbers whole, small ones to two places."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def fill(template: str, verdicts: list[dict[str, Any]]) -> str | None:
    """The answer with each {MODEL.KEY.FIGURE} replaced by that verdict's
    figure; None if one is missing (the transcript then shows the evidence alone)."""
    by = {(v["model"], v["expect"]): v for v in verdicts}
    missing: list[str] = []

    def one(m: re.Match[str]) -> str:
        model, key, figure, how = m.groups()
        v = by.get((model, key))
        value = _value((v.get("figures") or {}).get(figure), how) if v is not None else None
        if value is None:
            missing.append(m.group(0))
            return ""
        return number(value)

    text = PLACEHOLDER.sub(one, tidy(template))
    return None if missing else text
