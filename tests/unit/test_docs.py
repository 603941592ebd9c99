"""The docs stay true, cheaply: README.md fits a first screen and starts with
the two commands; every relative link in README.md and docs/*.md reaches a
file (and a heading, when it names one); every path of the lab's named there
exists; every verb `lab --help` lists has its section in docs/cli.md, and
every flag of that verb is named in it."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from lab.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 200
FIRST_COMMANDS = ("make lab-up MODEL=threads", "make test")

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A path of the lab's: a top folder of the repository, then a name; not part of
# a longer word or path (iolab/app, ../tests/x), and not a placeholder (services/<name>/).
PATH = re.compile(r"(?<![\w./-])((?:lab|services|tests|scenarios|docs)/[\w./-]*)(?![\w<{*])")
CODE_FENCE = re.compile(r"^```")


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, markup and
    punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(page: Path) -> list[str]:
    found, fenced = [], False
    for line in page.read_text().splitlines():
        if CODE_FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.+)", line)):
            found.append(m.group(1))
    return found


def test_readme_fits_a_first_screen_and_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: the reference belongs in docs/"
    first_block = []
    fence = next(i for i, line in enumerate(lines) if CODE_FENCE.match(line))
    assert not any(line.startswith("## ") for line in lines[:fence]), "the two commands come before any section"
    for line in lines[fence + 1:]:
        if CODE_FENCE.match(line):
            break
        first_block.append(line.split("#")[0].strip())
    assert [c for c in first_block if c] == list(FIRST_COMMANDS)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_relative_link_reaches_a_file_and_its_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in {slug(h) for h in headings(dest)}:
            broken.append(f"{target}: no heading with that anchor in {dest.name}")
    assert not broken, f"{_id(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_path_named_exists(page: Path) -> None:
    missing = sorted({p for p in (m.rstrip(".") for m in PATH.findall(page.read_text()))
                      if not (ROOT / p).exists()})
    assert not missing, f"{_id(page)} names paths that do not exist: {', '.join(missing)}"


def _verbs() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _sections(page: Path) -> dict[str, str]:
    """Each `## ` section's text, by its heading."""
    found: dict[str, list[str]] = {}
    current = None
    for line in page.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {k: "\n".join(v) for k, v in found.items()}


def test_every_verb_has_its_section_in_cli_md_naming_every_flag() -> None:
    sections = _sections(ROOT / "docs" / "cli.md")
    gaps = []
    for verb, parser in _verbs().items():
        text = sections.get(f"lab {verb}")
        if text is None:
            gaps.append(f"no section '## lab {verb}'")
            continue
        flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
        unnamed = sorted(f for f in flags if not re.search(re.escape(f) + r"(?![\w-])", text))
        if unnamed:
            gaps.append(f"'## lab {verb}' does not name {', '.join(unnamed)}")
    assert not gaps, "docs/cli.md: " + "; ".join(gaps)


def test_the_common_flags_are_in_cli_md() -> None:
    text = _sections(ROOT / "docs" / "cli.md").get("Common flags", "")
    top = {s for a in build_parser()._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
    assert top and all(f in text for f in top), f"docs/cli.md 'Common flags' names {sorted(top)}"
