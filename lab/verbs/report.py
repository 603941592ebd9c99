"""lab report RUN_DIR: render a compare run's report again, from its files alone.

RUN_DIR is a run directory (or a run id, or a unique prefix of one, under
LAB_RUNS_DIR).  Reads results.json (iolab.compare/2 or /1; and checks.json,
if `lab compare --checks` or `lab check` left one there) and writes
report.html (self-contained), report.md with plots/ beside it, and
results.csv.  No container is involved, and rendering the same run again
writes the same bytes.

--baseline OTHER_RUN adds a section setting each figure against the same
figure of another compare run (before and after a change), each with the
spread of its repeats, and says where a change is within the noise (the
two runs' ranges overlap).  It is printed on the terminal too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..console import out
from ..report import render_again
from ..report.baseline import about, table
from ..report.tables import rich_table
from ..report.terminal import print_table
from ..run.rundir import locate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render a compare run's report again from its directory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, or a run id (or unique prefix)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the report here instead of into RUN_DIR")
    p.add_argument("--baseline", default=None, metavar="OTHER_RUN",
                   help="another compare run (directory, id or prefix): show each figure's change against it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    done = render_again(locate(args.run_dir), Path(args.out) if args.out else None,
                        locate(args.baseline) if args.baseline else None)
    if done.baseline is not None:
        out.print(about(done.run, done.baseline))
        print_table(out, rich_table(table(done.run, done.baseline)))
    target = done.folder
    out.print(f"report: {target / 'report.html'} ({len(done.written)} files: "
              f"{', '.join(sorted({str(p.relative_to(target)).split('/')[0] for p in done.written}))})")
    return 0
