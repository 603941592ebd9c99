"""lab tour: the article on blocking and non-blocking I/O, one live experiment at a time.

The steps, in the article's order: a blocking server, EAGAIN, busy
polling, select/poll/epoll, level and edge triggering, a process per
connection, prefork, a thread per client, the GIL, shared state, cooperative
multitasking, and io_uring.  Each step asks its question, says what to
watch, runs its experiment against real containers in the live view of `lab
watch`, and gives the measured answer with its evidence: the verdicts of the
same judges `lab check` uses.  The lesson is given only when the measurement
agrees; otherwise the step says what was measured instead (or that the host
was too busy to judge, and goes on).  Each step's containers are removed
before the next starts.

On a terminal it pauses between steps (Enter goes on, q stops).  The run
directory gets tour.json, checks.json (as `lab check` writes it) and the
transcript in English and Chinese, Markdown and a self-contained HTML page
with each step's timeline.  Exit 0 when every verdict held, 1 when one did
not, 3 when none failed but some were not judged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..checks.verdict import conclude
from ..config import runs_dir
from ..console import escape, out
from ..errors import UsageError
from ..run import rundir
from ..tour import transcript
from ..tour.runner import TourRequest, tour
from ..tour.show import Narrator
from ..tour.steps import LANGUAGES, load_steps, narration, tidy
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tour", help="the article's argument as live experiments, step by step",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--step", type=_args.number(int, 1), metavar="N", help="only step N")
    which.add_argument("--from", dest="start", type=_args.number(int, 1), metavar="N",
                       help="from step N to the end")
    p.add_argument("--no-pause", action="store_true", help="run straight through, no pause between steps")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="narrate in English (en) or Chinese (zh)")
    p.add_argument("--list", action="store_true", help="list the steps and exit")
    p.add_argument("--render", metavar="RUN", help="write a tour run's transcript again from its files "
                                                   "(a run directory, id or prefix); no containers")
    _args.orchestrator(p)
    p.set_defaults(func=run)


def list_steps(lang: str) -> int:
    words = narration(lang)["steps"]
    for s in load_steps():
        out.print(f"{s.n:2d}. {escape(tidy(words.get(s.id, {}).get('title', s.id)))}  [dim]({s.id})[/]")
    return 0


def render_again(wanted: str) -> int:
    folder = Path(wanted)
    if not folder.is_dir():
        hits = rundir.match(wanted, [p.name for p in runs_dir().glob("*-tour-*")])
        if len(hits) != 1:
            raise UsageError(f"no single tour run matches '{wanted}' under {runs_dir()}")
        folder = runs_dir() / hits[0]
    try:
        record = json.loads((folder / "tour.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder}/tour.json: not a tour run's record ({exc})") from None
    for name, data in transcript.render(record, folder, LANGUAGES).items():
        rundir.write_atomic(folder / name, data)
    out.print(f"written: {', '.join(transcript.names(LANGUAGES))} in {escape(str(folder))}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list:
        return list_steps(args.lang)
    if args.render:
        return render_again(args.render)
    terminal = out.is_terminal
    show = Narrator(out, narration(args.lang), pause=not args.no_pause and terminal and sys.stdin.isatty(),
                    live_view=terminal)
    done = tour(TourRequest(args.lang, args.step, args.start, args.orchestrator), show)
    labels = show.labels
    out.rule()
    out.print(transcript.summary(done.record, labels), markup=False)
    out.print(f"{labels['transcript']}: {done.run_dir}/transcript.{args.lang}.html "
              f"(.md beside it; {', '.join(LANGUAGES)})", markup=False)
    return conclude(done.verdicts, f"{done.run_dir}/transcript.{args.lang}.md")
