"""What the person taking the tour sees: each step's words, its experiment in
the live view (lab/watch), its answer, and a pause before the next.

On a terminal the experiment runs in the live view of `lab watch`; off one
(a pipe, a log, a test) the same words come as plain lines and the view is
left out.  The answer is said by lesson.conclude, as the transcript says it.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape

from ..run.probe import Target
from ..watch.live import REFRESH_PER_S, Watcher
from ..watch.state import Board
from .lesson import FAILED, HELD, conclude
from .steps import Step, tidy

MARK = {True: "[green]held[/]", False: "[red]did not hold[/]", None: "[yellow]not judged[/]"}


class Narrator:
    def __init__(self, console: Console, words: dict[str, Any], pause: bool, live_view: bool) -> None:
        self.console = console
        self.words = words
        self.labels = words["labels"]
        self.pausing = pause
        self.live_view = live_view
        self.watcher: Watcher | None = None
        self.live: Live | None = None
        self.board_title = ""

    def parts(self, step: Step) -> dict[str, Any]:
        return self.words["steps"].get(step.id, {})

    # -- a step --------------------------------------------------------------------
    def begin(self, step: Step, of: int) -> None:
        p, L = self.parts(step), self.labels
        self.console.rule(f"[bold]{L['step']} {step.n}/{of}: {escape(tidy(p.get('title', step.id)))}[/]")
        self.console.print(f"[bold]{L['question']}{L['colon'].rstrip()}[/] {escape(tidy(p.get('question', '')))}")
        self.console.print(f"[bold]{L['watch']}{L['colon'].rstrip()}[/] {escape(tidy(p.get('watch', '')))}")
        self.console.print(f"[bold]{L['experiment']}{L['colon'].rstrip()}[/] " + ", ".join(
            f"{' + '.join(e.scenarios)} {L['against']} {e.model}" for e in step.run))
        if self.live_view:
            self.watcher = Watcher(Board(""))
            self.live = Live(get_renderable=self._frame, console=self.console, refresh_per_second=REFRESH_PER_S,
                             transient=False, redirect_stdout=False, redirect_stderr=False)
            self.live.start()

    def _frame(self) -> Any:
        assert self.watcher is not None
        return self.watcher.frame(max(4, self.console.size.height - 18))

    def running(self, model: str, scenario: str) -> None:
        self.board_title = f"{self.labels['running']} {scenario} {self.labels['against']} {model}"
        if self.watcher is not None:
            with self.watcher.lock:
                self.watcher.board.reset(self.board_title, note="")
        else:
            self.console.print(f"  {self.board_title}", markup=False)

    def attach(self, target: Target) -> None:
        """A new server is up: the view follows its events, processes and CPU."""
        if self.watcher is None:
            return
        self.watcher.stop()
        self.watcher = Watcher(Board(self.board_title))
        self.watcher.follow_stream(target.events)
        self.watcher.read(target.container)

    def probe(self, title: str, clients: int | None) -> None:
        if self.watcher is not None:
            with self.watcher.lock:
                self.watcher.board.reset(f"{self.board_title} · {title}", clients)

    def close(self) -> None:
        """The live view stopped (also on Ctrl-C or an error: the cursor comes back)."""
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def end(self, step: Step, record: dict[str, Any]) -> None:
        self.close()
        L = self.labels
        for v in record["verdicts"]:
            self.console.print(f"  {escape(v['model'])} {escape(v['check'])}: {escape(v['observed'])} "
                               f"({L['expected']} {escape(v['expected'])}): {MARK[v['ok']]}")
        said = conclude(record["verdicts"], self.parts(step), record.get("errors"))
        if said.kind == HELD:
            if said.answer:
                self.console.print(f"[bold]{L['answer']}{L['colon'].rstrip()}[/] {escape(said.answer)}")
            self.console.print(f"[bold green]{L['lesson']}{L['colon'].rstrip()}[/] {escape(said.lesson or '')}")
        elif said.kind == FAILED:
            self.console.print(f"[bold red]{L['instead']}{L['colon'].rstrip()}[/] " + "; ".join(
                f"{escape(v['model'])} {escape(v['check'])}: {escape(v['observed'])}" for v in said.instead))
            self.console.print(escape(L["instead_note"]))
        else:
            self.console.print(f"[bold yellow]{L['not_judged']}{L['colon'].rstrip()}[/] " + escape("; ".join(said.why)))
            self.console.print(f"{escape(L['not_judged_note'])} {escape(said.lesson or '')}")

    def pause(self) -> bool:
        """Wait for Enter between steps on a terminal (q stops); straight on otherwise."""
        if not self.pausing or not sys.stdin.isatty():
            return True
        answer = self.console.input(f"[dim]{escape(self.labels['next'])}[/] ")
        return answer.strip().lower() not in ("q", "quit")
