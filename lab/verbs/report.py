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

from .. import config
from ..console import out
from ..errors import UsageError
from ..run import rundir as runs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render a compare run's report again from its directory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, or a run id (or unique prefix)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the report here instead of into RUN_DIR")
    p.add_argument("--baseline", default=None, metavar="OTHER_RUN",
                   help="another compare run (directory, id or prefix): show each figure's change against it")
    p.set_defaults(func=run)


def find_run(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        return path
    found = runs.find(text) if "/" not in text and text not in (".", "..") else None
    if found is None:
        raise UsageError(f"no run directory '{text}' (and no single run id under {config.runs_dir()} "
                         "starts with it)")
    return found


def run(args: argparse.Namespace) -> int:
    from .. import report
    from ..report import baseline, tables
    from ..report.terminal import print_table

    source = find_run(args.run_dir)
    other = find_run(args.baseline) if args.baseline else None
    if other is not None and other.resolve() == source.resolve():
        raise UsageError("--baseline names the run itself; give another compare run")
    this, before = report.load(source), report.load(other) if other else None
    files = report.render(this, before)
    target = Path(args.out) if args.out else source
    try:
        written = report.write_files(target, files)
    except OSError as exc:
        raise UsageError(f"cannot write the report into {target}: {exc.strerror}") from None
    if before is not None:
        out.print(baseline.about(this, before))
        print_table(out, tables.rich_table(baseline.table(this, before)))
    out.print(f"report: {target / 'report.html'} ({len(written)} files: "
              f"{', '.join(sorted({str(p.relative_to(target)).split('/')[0] for p in written}))})")
    return 0
