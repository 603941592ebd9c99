"""uvloop: the asyncio model, word for word, on a different event loop.

asyncio's coroutines, streams and tasks do not wait for sockets themselves:
they ask the event loop, an object with one interface (add_reader,
call_later, create_server, ...) and replaceable insides.  The standard one
is written in Python over the selectors module.  uvloop implements the same
interface in Cython over libuv, the C event loop under Node.js: the epoll
calls, the timer heap, the transports' reads and writes and their buffers
are compiled code.  This file runs services/asyncio/server.py unchanged on
that loop, so whatever differs between the two models in a measurement is
the loop's implementation, and nothing else.

What to notice: everything asyncio promises holds here too (one thread,
every client at once, a SLEEP is a timer, no update lost between awaits),
and so does everything it costs: a coroutine that does not await (BLOCK,
WORK) holds the one thread, and a CRASH takes every connection.  What
changes is the price of each turn of the loop, which throughput and
latency show in `lab compare`.  And one behaviour: out of descriptors
(EMFILE), asyncio logs the error and pauses accepting for a second, while
libuv gives up a descriptor it keeps in reserve, accepts the waiting
connections and closes them at once.  Those clients see a reset, and
nothing reaches our trace: libuv does not tell the loop's error handler.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

try:
    from uvloop import new_event_loop
except ImportError as exc:
    print(f"uvloop: cannot import uvloop ({exc}); run it on the lab's Debian base image "
          "(LAB_BASE_IMAGE=iolab/base:bookworm, with python3-uvloop) or pip install uvloop",
          file=sys.stderr)
    sys.exit(2)

MODEL = "uvloop"


def asyncio_model() -> ModuleType:
    """services/asyncio/server.py, loaded from its file: a folder named
    asyncio cannot be imported by name, the standard library owns it."""
    path = Path(__file__).resolve().parent.parent / "asyncio" / "server.py"
    spec = importlib.util.spec_from_file_location("asyncio_model", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    asyncio_model().main(MODEL, __doc__, loop_factory=new_event_loop)


if __name__ == "__main__":
    main()
