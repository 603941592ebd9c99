"""A worker's reading and writing: the reply step, refills, back-pressure,
the slow path and scripted actions.

The reply step (``Transfer.replied``) is what every reply of a pattern goes
through in Python, whichever way it was read: k replies arrived on a
connection at the turn's time; the Ledger (book.py) times and books them;
in ping-pong as many new requests are booked and leave in one write, else
the pattern hears of them (or the connection closes: budget spent, or the
server announced its close).  fastpath.c does the same step in C for the
one case it carries, and hands back what it booked.

How replies are read (``read``, one read into the worker's buffer):

- the fast path: the line protocol, replies not read as texts: the
  newlines in the buffer are counted;
- a codec (wire.py) counts the replies of other protocols and says when
  the handshake is done, when the server refused the session (a failed
  connection, kind "refused-by-server"), broke the protocol (that
  connection ends, kind "other") or announced its close;
- the slow path (``_read_texts``): replies read one by one as texts, while
  a scripted action waits for its reply or when every reply is traced.

Writes keep the wire in the ledger's order: bytes wait in ``Conn.out``
behind whatever waits already, and open-loop sends past OUT_CAP are owed
(counted, their intended times kept in the ledger) until the socket drains.
"""

from __future__ import annotations

from typing import Any, Callable

from ioproto import ProtocolViolation

from swarm.conn import OPEN, REFUSED_BY_SERVER, Conn
from swarm.owner import Owner
from swarm.patterns import Action
from swarm.wire import LineReader, Refused

BUFSIZE = 1 << 16  # one receive buffer per worker, reused for every read
# Open-loop sends stop queueing bytes once this much waits for a peer that
# does not read; they are owed and written once the socket drains, so
# memory stays bounded.
OUT_CAP = 1 << 20
PRECOMPUTED = 16  # request batches up to this many are prebuilt bytes
REPLY_PREVIEW = 2000  # characters of an action's reply kept in the results (a STATS fits)
EOF_DETAIL = "the server closed the connection"


class Transfer:
    """Reading and writing for one worker."""

    def __init__(self, worker: Owner) -> None:
        self.w = worker
        self.trace = worker.trace
        self.trace_msgs = worker.trace.msgs
        self.warm_end = worker.warm_end
        self.buf = bytearray(BUFSIZE)
        self.view = memoryview(self.buf)
        self.sent_measured = 0  # pattern requests intended after the warm-up (rate's achieved rate)

    # -- the reply step ---------------------------------------------------------------
    def replied(self, c: Conn, k: int, now: float, measure: bool) -> None:
        """``k`` pattern replies read on ``c`` at ``now``: book them; in
        ping-pong, book as many new requests and send them in one write;
        otherwise let the pattern go on, or end the connection."""
        codec = c.codec
        closing = codec is not None and codec.closing
        if c.refill and c.left >= k and not c.out and not c.owed and not closing:
            m = c.ledger.replied(k, now, measure, True)
            if m != k:
                c.unexpected += k - m  # more replies than requests: not our protocol
                if not m:
                    return
            c.left -= m
            self.write(c, c.msgs[m] if m <= PRECOMPUTED else c.msg * m, now)
            return
        m = c.ledger.replied(k, now, measure)
        c.unexpected += k - m
        if closing:
            self._closing(c, now)
        else:
            self._answered(c, m, now)

    def _answered(self, c: Conn, k: int, now: float) -> None:
        """After ``k`` pattern replies: close when the budget is spent and
        everything is answered, otherwise let the pattern go on."""
        if c.left == 0 and not c.owed and not c.ledger.inflight:
            self.w.close(c, c.pattern.done_reason, now)
        elif k:
            c.pattern.answered(self.w, c, k, now)

    def _closing(self, c: Conn, now: float) -> None:
        """The server said it closes after this reply: nothing more will be
        answered, so stop here (a spent budget ends as usual)."""
        if c.state != OPEN:
            return
        if c.left == 0 and not c.owed and not c.ledger.inflight and not c.ledger.actions:
            self.w.close(c, c.pattern.done_reason, now)
        else:
            self.w.lost(c, "eof", "the server announced that it closes the connection", now)

    @staticmethod
    def simple(c: Conn) -> bool:
        """Can the C loop carry this fast-path connection: ping-pong, one
        batch in flight, refilled whole by each reply batch, nothing else pending?"""
        lg = c.ledger
        return c.refill and c.ready and not lg.later and not lg.actions and lg.step == 0.0 \
            and 0 < lg.n < len(c.msgs)

    def _io(self, c: Conn, op: Callable[[Any], int], arg: Any, now: float) -> int | None:
        """One recv or send on the non-blocking socket: the bytes it moved, or
        None when there is nothing more to do now (it would block, or the
        connection broke, which is booked here)."""
        try:
            return op(arg)
        except BlockingIOError:
            return None
        except OSError as exc:
            self.w.broke(c, exc.errno, now)
            return None

    # -- reading ------------------------------------------------------------------------
    def read(self, c: Conn, now: float, measure: bool) -> None:
        """One read.  Without a reader (the line protocol, replies not read
        as texts: the fast path) the replies are the newlines, counted in
        the buffer; otherwise the codec or the slow path takes the bytes."""
        buf = self.buf
        n = self._io(c, c.recv_into, buf, now)
        if n is None:
            return
        if not n:
            self._eof(c, now)
            return
        c.bytes_in += n
        if c.reader is None:
            k = buf.count(b"\n", 0, n)
            if k:
                self.replied(c, k, now, measure)
        elif c.codec is not None:
            self._decode(c, self.view[:n].tobytes(), now)
        else:
            self._read_texts(c, self.view[:n].tobytes(), now)

    def _eof(self, c: Conn, now: float) -> None:
        detail = EOF_DETAIL
        if c.codec is not None:
            # EOF may complete a reply (an HTTP body read to the close)
            self._decode(c, b"", now)
            if c.codec.pending:
                detail += f" in the middle of a reply ({c.codec.pending} bytes of it)"
        self.w.lost(c, "eof", detail, now)

    def _decode(self, c: Conn, data: bytes, now: float) -> None:
        """Bytes (b"": EOF) of a connection with a codec: the handshake,
        then replies, counted (or read as texts on the slow path)."""
        codec = c.codec
        assert codec is not None and c.reader is not None
        try:
            if c.slow:
                self._read_texts(c, data, now)
                k = 0
            else:
                k = c.reader.count(data)
        except Refused as exc:
            self.w.lost(c, REFUSED_BY_SERVER, f"the server refused the session: {exc}", now)
            return
        except ProtocolViolation as exc:  # ioclient.ProtocolError included
            self.w.lost(c, "other", f"{codec.protocol} protocol error: {exc}", now)
            return
        if not c.ready:
            if codec.ready:
                self.w.connector.ready(c, now)
        elif k:
            self.replied(c, k, now, now >= self.warm_end)
        elif codec.closing:
            self._closing(c, now)

    def _read_texts(self, c: Conn, data: bytes, now: float) -> None:
        """Reply by reply: an action's reply text is kept, msg-level traces
        show every reply.  Counting stays exactly as on the fast path.  A
        codec's errors are the caller's (_decode) to handle."""
        assert c.reader is not None
        if c.codec is not None:
            texts = c.reader.texts(data)
        else:
            try:
                texts = c.reader.texts(data)
            except ProtocolViolation as exc:
                self.w.lost(c, "other", str(exc), now)
                return
        matched = 0
        for text in texts:
            matched += self._text(c, text, now)
        if not c.ledger.actions and not self.trace_msgs:
            self._go_fast(c)
        if texts:
            if c.codec is not None and c.codec.closing:
                self._closing(c, now)
            else:
                self._answered(c, matched, now)

    def _text(self, c: Conn, text: bytes, now: float) -> int:
        """One reply read as text: an action's, or a pattern reply (booked
        here, one by one, so that actions stay in their place); 1 if it was
        a pattern reply that matched a request."""
        ledger = c.ledger
        if ledger.action_next():
            self.action_outcome(ledger.take_action(), "reply", now, text)
            return 0
        sent_t = ledger.t if ledger.n else (ledger.later[0].t if ledger.later else None)
        m = ledger.replied(1, now, now >= self.warm_end)
        c.unexpected += 1 - m
        if self.trace_msgs:
            latency = None if sent_t is None else int((now - sent_t) * 1e6)
            self.trace.msg("reply", c.name, text, client=c.client, latency_us=latency)
        return m

    def go_slow(self, c: Conn) -> None:
        """Read ``c``'s replies as texts from now on."""
        if not c.slow:
            c.slow = True
            if c.codec is not None:
                c.codec.keep = True  # replies from here on come with their texts
            elif c.reader is None:
                c.reader = LineReader()
            self.w.table.settle(c)

    def _go_fast(self, c: Conn) -> None:
        """Back to counting replies, not reading them."""
        c.slow = False
        if c.codec is None:
            c.reader = None  # the line protocol counts newlines on the fast path
        else:
            c.codec.keep = False
        self.w.table.settle(c)

    # -- writing ------------------------------------------------------------------------
    def send_batch(self, c: Conn, n: int, t: float, step: float) -> int:
        """Send ``n`` pattern requests (fewer if the budget is short), the
        j-th intended at ``t + j*step``; returns how many were sent."""
        left = c.left
        if n > left:
            n = left
        if n <= 0 or c.state != OPEN:
            return 0
        c.left = left - n
        c.ledger.sent_batch(t, n, step)
        if t >= self.warm_end:
            self.sent_measured += n
        if c.out or c.owed:
            if len(c.out) < OUT_CAP and not c.owed:
                c.out += c.msg * n
            else:
                c.owed += n
        else:
            self.write(c, c.msgs[n] if n < len(c.msgs) else c.msg * n, t)
        return n

    def book_request(self, c: Conn, t: float) -> bytes:
        """One request booked as sent at ``t`` (its reply is matched to it),
        its bytes handed back to be written piece by piece (the slow
        pattern); until they are, they do not count as written."""
        if c.left <= 0 or c.state != OPEN:
            return b""
        c.left -= 1
        c.ledger.sent_batch(t, 1, 0.0)
        if t >= self.warm_end:
            self.sent_measured += 1
        c.extra_out -= len(c.msg)  # bytes_out counts booked requests whole: the pieces add back what left
        return c.msg

    def send_piece(self, c: Conn, data: bytes, now: float) -> None:
        """A piece of a booked request, behind whatever waits."""
        if c.state != OPEN:
            return
        c.extra_out += len(data)
        self.write(c, data, now)

    def write(self, c: Conn, data: bytes, now: float) -> None:
        """Write ``data`` now, or behind what already waits."""
        if c.out or c.owed:
            # behind what already waits, so that the wire order stays the
            # order of the ledger and replies match requests
            if c.owed:
                c.out += c.msg * c.owed
                c.owed = 0
            c.out += data
            return
        try:
            sent = c.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            c.extra_out -= len(data)  # it never left
            self.w.broke(c, exc.errno, now)
            return
        if sent < len(data):
            self.keep(c, data, sent)

    def keep(self, c: Conn, data: bytes, sent: int) -> None:
        """The socket took only ``sent`` bytes: keep the rest, watch EPOLLOUT."""
        c.out += memoryview(data)[sent:]
        self.w.table.settle(c)

    def writable(self, c: Conn, now: float) -> None:
        """EPOLLOUT: write what waits, then what the schedule owes."""
        out = c.out
        if out:
            sent = self._io(c, c.send, out, now)
            if sent is None:
                return
            del out[:sent]
        if not out and c.owed:
            # requests the schedule owed while the peer was not reading
            n = min(c.owed, OUT_CAP // len(c.msg) + 1)
            c.owed -= n
            out += c.msg * n
        if not out:
            self.w.table.settle(c)

    def goodbye(self, c: Conn) -> None:
        """Closing ``c`` ourselves: say so where the protocol has a word for
        it (postgres Terminate, so the backend ends quietly)."""
        goodbye = getattr(c.codec, "close", None)
        if goodbye is not None:
            try:
                c.extra_out += c.send(goodbye())
            except OSError:
                pass

    # -- scripted actions ---------------------------------------------------------------
    def fire_action(self, a: Action, now: float) -> None:
        """A scripted action's time has come: its client sends it, if ready."""
        c = self.w.table.by_client.get(a.client)
        if c is None or c.state != OPEN or not c.ready:
            a.outcome = "not-connected"
            self.trace.event("action", None, client=a.client, send=a.send, outcome=a.outcome)
            return
        if self.w.native is not None:
            self.w.native.take(c)
        self.go_slow(c)
        c.ledger.sent_action(a)
        a.sent_t = now
        a.conn = c.name
        self.trace.event("action", c.name, client=a.client, send=a.send, outcome="sent")
        line = a.line if c.codec is None else c.codec.request(a.send)
        c.extra_out += len(line)
        self.write(c, line, now)

    def action_outcome(self, a: Action, outcome: str, now: float, reply: bytes | None = None) -> None:
        a.outcome = outcome
        a.done_t = now
        if reply is not None:
            a.reply = reply[:REPLY_PREVIEW].decode("utf-8", "replace")
        latency = round((now - a.sent_t) * 1000, 3) if a.sent_t is not None else None
        self.trace.event("action", a.conn, client=a.client, send=a.send, outcome=outcome,
                         reply=a.reply, latency_ms=latency)
