"""asyncio: one thread, one event loop, a coroutine per connection.

asyncio's loop owns the non-blocking listening socket and every client
socket, and waits for all of them at once (epoll, underneath).  Each client
gets a coroutine that reads like the blocking loop, recv, answer, send, but
every place where it would block is an ``await``: the coroutine is parked
and the loop runs whichever other coroutine has something to do.  SLEEP is
``await asyncio.sleep``: a timer, during which everyone else is served.

What to notice: all clients are served at once by a single thread, so
nothing grows per client but a coroutine and a buffer, and a coroutine is
never interrupted between two awaits (INCR loses no update, with no lock).
The multitasking is cooperative, though: a handler that does not await holds
the loop.  BLOCK is a real blocking call and WORK burns the CPU, and while
either runs no other client gets a byte.  A CRASH kills the only process,
and so every connection.  Accept errors (EMFILE) are handled inside asyncio,
which pauses accepting for a second; its exception handler is pointed at
our trace so that they are logged like every other model's.
"""

import asyncio
import errno
import signal
from typing import Callable, Optional

import iorun
from ioproto import NEED_DATA, SLEEP, Reject, Request, ServerConnection
from iorun.server import RESOURCE_ERRORS

MODEL = "asyncio"


def main(model: str = MODEL, description: str = __doc__,
         loop_factory: Optional[Callable[[], asyncio.AbstractEventLoop]] = None) -> None:
    """Serve until SIGTERM.  uvloop runs this same code with its own loop
    (``loop_factory``) and its own name in the traces and STATS."""
    server = iorun.Server(model, description)
    trace, state = server.trace, server.state

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = "%s:%d" % writer.get_extra_info("peername")[:2]
        state.accepted += 1  # asyncio accepted it; only this thread writes it
        trace.conn("accept", peer)
        conn = ServerConnection(max_line=server.args.max_line)
        state.opened()
        reason, served = "eof", 0
        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    data = await reader.read(iorun.BUFSIZE)  # other clients run meanwhile
                    trace.msg("recv", peer, data)
                    reply = conn.quick_echo(data)
                    if reply is not None:  # the common case: one whole line to echo
                        writer.write(reply)
                        await writer.drain()
                        trace.msg("send", peer, reply)
                        served += 1
                        continue
                    conn.receive_data(data)
                elif isinstance(event, Request):
                    if event.op == SLEEP:
                        await asyncio.sleep(event.arg / 1000)  # a timer: the loop goes on
                    out = conn.send(iorun.perform(event, state, on_crash=lambda: trace.event("crash", peer)))
                    writer.write(out)
                    await writer.drain()  # parked while the peer's window is full
                    trace.msg("send", peer, out)
                    served += 1
                else:
                    if isinstance(event, Reject):
                        trace.event("error", peer, kind="protocol", detail=event.reason)
                        writer.write(event.data)
                        await writer.drain()
                    reason = event.reason
                    break
        except iorun.HandlerError as exc:
            reason = "raise"
            trace.event("error", peer, kind="handler", detail=str(exc))
        except OSError as exc:
            reason = iorun.close_reason(exc)
        except asyncio.CancelledError:  # the server is stopping; ending here ends the task
            reason = "shutdown"
        finally:
            state.closed()
            writer.close()
            trace.conn("close", peer, reason=reason, requests=served)

    def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """Whatever asyncio would have printed goes to the trace instead."""
        exc = context.get("exception")
        # From its accept(); before CPython gh-151615 asyncio tries accept() again
        # up to backlog times in the same turn, so these come in bursts.
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRORS:
            trace.event("error", kind="accept", errno=errno.errorcode[exc.errno], detail=str(exc),
                        backoff=asyncio.constants.ACCEPT_RETRY_DELAY)
        else:
            trace.event("error", kind="loop", detail=context.get("message"), exception=repr(exc))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(on_loop_error)
        # Server.run's handler raises Shutdown wherever the thread is; inside a
        # coroutine, the task would catch it and the loop would run on.  So the
        # loop takes the signal itself, and this task raises Shutdown.
        stopping = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda name=sig.name: stopping.done() or stopping.set_result(name))
        # Passing our socket (and backlog: asyncio calls listen() again) means no
        # getaddrinfo(), which asyncio would run in a helper thread.
        listener = await asyncio.start_server(serve, sock=server.listen(blocking=False),
                                              backlog=server.args.backlog)
        reason = await stopping
        listener.close()  # then asyncio.run cancels every connection's coroutine
        raise iorun.Shutdown(reason)

    def serve_forever() -> None:
        with asyncio.Runner(loop_factory=loop_factory) as runner:  # asyncio.run(), with a choice of loop
            runner.run(run())

    server.run(serve_forever)


if __name__ == "__main__":
    main()
