"""Serving one connection with blocking calls: recv, answer, sendall, repeat.

This is the loop of the classic blocking server.  The blocking model runs it
in its only thread, so while it waits in recv() for one client, nobody else
is served.  threads and threadpool run it in a thread each, forking and
prefork in a process each: the loop is the same, only what runs it differs.
"""

from __future__ import annotations

import socket
import time

from ioproto import NEED_DATA, SLEEP, Reject, Request, ServerConnection

from .effects import HandlerError, perform
from .server import BUFSIZE, Server, close_reason


def serve_connection(server: Server, sock: socket.socket, peer: str) -> None:
    """Serve ``peer`` until it leaves, then close ``sock``.  Never raises for
    anything the peer did; a RAISE drops only this connection."""
    trace, state = server.trace, server.state
    conn = ServerConnection(max_line=server.args.max_line)
    state.opened()
    reason, served = "eof", 0
    try:
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                data = sock.recv(BUFSIZE)  # blocks until the peer sends or closes
                trace.msg("recv", peer, data)
                reply = conn.quick_echo(data)
                if reply is not None:  # the common case: one whole line to echo
                    sock.sendall(reply)
                    trace.msg("send", peer, reply)
                    served += 1
                    continue
                conn.receive_data(data)
            elif isinstance(event, Request):
                if event.op == SLEEP:
                    time.sleep(event.arg / 1000)  # this thread waits; nothing else does
                out = conn.send(perform(event, state, on_crash=lambda: trace.event("crash", peer)))
                sock.sendall(out)  # blocks while the peer's window is full
                trace.msg("send", peer, out)
                served += 1
            else:
                if isinstance(event, Reject):
                    trace.event("error", peer, kind="protocol", detail=event.reason)
                    sock.sendall(event.data)
                reason = event.reason
                break
    except HandlerError as exc:
        reason = "raise"
        trace.event("error", peer, kind="handler", detail=str(exc))
    except OSError as exc:
        reason = close_reason(exc)
    finally:
        state.closed()
        sock.close()
        trace.conn("close", peer, reason=reason, requests=served)
