"""Drawing a Screen (state.py) with rich: the lanes, served at once, the
server's processes and threads, its CPU, the last events.

A lane per client while they fit; past ``max_lanes`` the clients are grouped,
a row per group with a glyph per client, so ten thousand clients still fit a
terminal.  Pure: a Screen in, a renderable out.
"""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .state import ACCEPTED, CLOSED, SERVED, STALLED, WAITING, LaneView, Screen, Tasks

STYLE = {SERVED: "green", STALLED: "yellow", WAITING: "red", ACCEPTED: "cyan", CLOSED: "dim"}
GLYPH = {SERVED: "█", STALLED: "▒", WAITING: "·", ACCEPTED: "○", CLOSED: " "}
HINT = {WAITING: "its requests wait, unread, in the kernel", ACCEPTED: "connected, has asked nothing yet"}
WORDS = {SERVED: "served", STALLED: "stalled", WAITING: "waiting", ACCEPTED: "accepted, idle", CLOSED: "closed"}
MAX_LANES = 12
GROUP_MIN = 10  # clients per row once they are grouped
STRIP = 50  # glyphs per group row at most
RANK = [WAITING, STALLED, ACCEPTED, SERVED, CLOSED]  # worst first: what a shared glyph shows


def served_line(s: Screen) -> Text:
    """The one figure the view is for: the served-at-once judge's, now."""
    if not s.of:
        return Text.assemble(("served at once: ", "bold"), ("0", "bold"), ("   (no client yet)", "dim"))
    colour = "green" if s.served == s.of else "red" if s.served <= 1 < s.of else "yellow"
    return Text.assemble(("served at once: ", "bold"), (f"{s.served} of {s.of}", f"bold {colour}"),
                         (f"   (at most {s.most} so far)", "dim"))


def tasks_lines(t: Tasks | None, cores: float | None) -> list[Text]:
    """The server's processes and threads, as the article counts them
    (`ps huH p PID | wc -l`: the threads of one process), and its CPU."""
    if t is None:
        lines = [Text("processes: (not read yet)", style="dim"), Text("threads: (not read yet)", style="dim")]
    else:
        shown = " ".join(str(n) for n in t.per_process[:16]) + (" …" if len(t.per_process) > 16 else "")
        lines = [Text(f"processes: {t.processes}"),
                 Text(f"threads: {t.threads}  (per process, ps huH p PID | wc -l: {shown or '-'})")]
    lines.append(Text("CPU: " + (f"{cores:.2f} cores" if cores is not None else "(not read yet)"),
                      style="" if cores is not None else "dim"))
    return lines


def lane_rows(lanes: list[LaneView], unseen: int, why: str) -> Table:
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col, justify in (("client", "left"), ("state", "left"), ("replies", "right"), ("waited", "right"),
                         ("", "left")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for lane in lanes:
        style = STYLE[lane.status]
        bar = "█" * min(30, lane.replies) if lane.status in (SERVED, STALLED) else HINT.get(lane.status, "")
        t.add_row(escape(lane.label), Text(WORDS[lane.status], style=style), str(lane.replies),
                  f"{lane.waited_s:.1f}s" if lane.status != CLOSED else "", Text(bar, style=style))
    if unseen:
        t.add_row(f"{unseen} more", Text("waiting", style="red"), "0", "", Text(why, style="dim"))
    return t


def grouped_rows(lanes: list[LaneView], unseen: int, why: str, max_rows: int) -> Table:
    """Clients in groups: each row a range of them, its counts and a glyph per client."""
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col in ("clients", "served", "waiting", "closed", "worst wait", ""):
        t.add_column(col, justify="left" if col in ("clients", "") else "right")
    size = max(GROUP_MIN, math.ceil(len(lanes) / max_rows))
    for i in range(0, len(lanes), size):
        part = lanes[i:i + size]
        n = {k: sum(1 for x in part if x.status == k) for k in STYLE}
        worst = max((x.waited_s for x in part if x.status != CLOSED), default=0.0)
        strip = Text()
        each = max(1, math.ceil(len(part) / STRIP))  # clients per glyph: the worst of them shown
        for j in range(0, len(part), each):
            worst_status = min((x.status for x in part[j:j + each]), key=RANK.index)
            strip.append(GLYPH[worst_status], style=STYLE[worst_status])
        t.add_row(f"{i + 1}–{i + len(part)}", str(n[SERVED] + n[STALLED]), str(n[WAITING] + n[ACCEPTED]),
                  str(n[CLOSED]), f"{worst:.1f}s", strip)
    if unseen:
        t.add_row(f"+{unseen}", "0", str(unseen), "0", "", Text(why, style="dim"))
    return t


def render(s: Screen, max_lanes: int = MAX_LANES) -> RenderableType:
    head = Text(s.title, style="bold") if s.title else Text("")
    parts: list[RenderableType] = [head]
    if s.note:
        parts.append(Text(s.note, style="dim"))
    parts.append(served_line(s))
    if len(s.lanes) + (1 if s.unseen else 0) <= max_lanes:
        parts.append(lane_rows(s.lanes, s.unseen, s.unseen_why))
    else:
        parts.append(grouped_rows(s.lanes, s.unseen, s.unseen_why, max_lanes))
    parts += tasks_lines(s.tasks, s.cores)
    parts.append(Text("last server events:", style="bold"))
    parts += [Text(line, style="dim", no_wrap=True, overflow="ellipsis") for line in s.events] or \
        [Text("(none yet)", style="dim")]
    return Group(*parts)
