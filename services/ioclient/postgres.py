"""PostgreSQL's v3 wire protocol, client side: startup, then simple queries.

Rules:

- ``handshake()`` is a StartupMessage (protocol 3.0 = 196608) naming the
  user and the database.  No SSLRequest: the lab talks in the clear.
- Authentication: only trust (AuthenticationOk) is spoken.  Any other
  request (cleartext, MD5, SASL/SCRAM, GSS, ...) is a ProtocolError that
  names the method: the lab's servers are set to trust.
- Until the first ReadyForQuery the server may send ParameterStatus,
  BackendKeyData, NoticeResponse and NegotiateProtocolVersion; then
  ``ready`` is true.  An ErrorResponse before it (no such database, too
  many clients) raises Refused with the server's words: there is no
  session to send requests on.
- ``request(text)`` is a simple Query ('Q').  Its reply is every message
  up to and including ReadyForQuery: RowDescription, DataRow,
  CommandComplete, EmptyQueryResponse, ErrorResponse; NoticeResponse,
  ParameterStatus and NotificationResponse may come between them and are
  not part of it.  ``close()`` is Terminate ('X').
- Text of a reply, per statement: the rows when it returned rows (values
  joined by "|", rows by newlines, NULL as nothing: b"1" for SELECT 1,
  b"" for SELECT pg_sleep(0.5)), else the command tag (b"CREATE TABLE");
  statements joined by newlines.  An ErrorResponse makes the whole text
  b"<SEVERITY> <SQLSTATE>: <message>" and is an error reply.
- A FATAL or PANIC ErrorResponse after startup (the server shutting down,
  a terminated backend) completes the reply at once, since no
  ReadyForQuery follows it, and sets ``closing``.
- A message of an unknown type, one not allowed where it came (COPY,
  extended-protocol replies, a second authentication), a length under 4 or
  over ``max_reply``, or a body that does not parse is a ProtocolError.

Every message carries its length, so the buffer is walked message by
message (struct.unpack_from); a message still arriving is not looked at
again until all of it is there.
"""

from __future__ import annotations

import struct

from .base import MAX_REPLY, Buffer, ClientCodec, ProtocolError, Refused

PROTOCOL_3_0 = 196608
TERMINATE = b"X\x00\x00\x00\x04"
_INT32 = struct.Struct("!i")
_INT16 = struct.Struct("!h")
_AUTH_METHODS = {
    2: "Kerberos V5", 3: "cleartext password", 5: "MD5 password", 6: "SCM credentials",
    7: "GSSAPI", 8: "GSSAPI (continued)", 9: "SSPI", 10: "SASL",
    11: "SASL (continued)", 12: "SASL (final)",
}
_COPY = frozenset(b"GHWdc")
_EXTENDED = frozenset(b"123nst")


def _cstrings(buf: Buffer, start: int, end: int, what: str) -> list[bytes]:
    """The NUL-terminated strings filling buf[start:end] exactly."""
    if start == end or buf[end - 1] != 0:
        raise ProtocolError(f"postgres {what} is not NUL-terminated")
    return bytes(buf[start:end - 1]).split(b"\0")


def _error_text(buf: Buffer, start: int, end: int) -> tuple[bytes, bytes]:
    """(text, severity) of an ErrorResponse or NoticeResponse body."""
    fields: dict[int, bytes] = {}
    if end - start < 1 or buf[end - 1] != 0:
        raise ProtocolError("postgres error fields are not NUL-terminated")
    if end - start > 1:
        for field in _cstrings(buf, start, end - 1, "error field"):
            if not field:
                raise ProtocolError("postgres error field without a type")
            fields[field[0]] = field[1:]
    severity = fields.get(86) or fields.get(83) or b"ERROR"  # V (not localized), else S
    code = fields.get(67, b"?????")
    return b"%s %s: %s" % (severity, code, fields.get(77, b"")), severity


class PostgresClient(ClientCodec):
    protocol = "postgres"

    def __init__(self, *, user: str = "lab", database: str = "lab",
                 application_name: str = "iolab", keep: bool = True,
                 max_reply: int = MAX_REPLY) -> None:
        super().__init__(keep=keep, max_reply=max_reply)
        self.user = user
        self.database = database
        self.application_name = application_name
        self.ready = False
        self.parameters: dict[str, str] = {}  # ParameterStatus: server_version, ...
        self.backend_pid = 0
        self.secret_key = b""
        self.transaction_status = b""  # I idle, T in a transaction, E failed one
        self._authenticated = False
        self._parts: list[bytes] = []  # one text per finished statement
        self._rows: list[bytes] | None = None  # rows of a statement that returns rows
        self._error: bytes | None = None

    # -- requests ---------------------------------------------------------
    def handshake(self) -> bytes:
        params = [b"user", self.user.encode(), b"database", self.database.encode()]
        if self.application_name:
            params += [b"application_name", self.application_name.encode()]
        if any(b"\0" in p for p in params):
            raise ValueError("postgres startup parameters cannot hold NUL")
        body = _INT32.pack(PROTOCOL_3_0) + b"\0".join(params) + b"\0\0"
        return _INT32.pack(len(body) + 4) + body

    def request(self, text: str) -> bytes:
        query = text.encode()
        if b"\0" in query:
            raise ValueError("a postgres query cannot hold NUL")
        return b"Q" + _INT32.pack(len(query) + 5) + query + b"\0"

    @staticmethod
    def close() -> bytes:
        return TERMINATE

    # -- replies ----------------------------------------------------------
    def _parse(self, buf: Buffer) -> tuple[int, int]:
        n = pos = 0
        size = len(buf)
        unpack, limit = _INT32.unpack_from, self.max_reply
        while size - pos >= 5:
            length = unpack(buf, pos + 1)[0]
            if not 4 <= length <= limit:
                raise ProtocolError(f"postgres message length {length} out of range "
                                    f"(type {bytes(buf[pos:pos + 1])!r})")
            end = pos + 1 + length
            if end > size:
                self._need = end - pos
                return n, pos
            if self.ready:
                n += self._message(buf[pos], buf, pos + 5, end)
            else:
                self._startup(buf[pos], buf, pos + 5, end)
            pos = end
        self._need = 5
        return n, pos

    def _message(self, kind: int, buf: Buffer, start: int, end: int) -> int:
        """One message after startup; 1 if it completed a reply."""
        if self.closing:
            raise ProtocolError("postgres sent a message after a FATAL error")
        if kind == 68:  # D DataRow
            self._data_row(buf, start, end)
        elif kind == 84:  # T RowDescription
            if end - start < 2 or _INT16.unpack_from(buf, start)[0] < 0:
                raise ProtocolError("malformed postgres RowDescription")
            self._rows = []
        elif kind == 67:  # C CommandComplete
            if end == start or buf[end - 1] != 0:
                raise ProtocolError("postgres command tag is not NUL-terminated")
            self._finish_statement(buf, start, end - 1)
        elif kind == 90:  # Z ReadyForQuery
            self._ready_for_query(buf, start, end)
            return self._complete()
        elif kind == 73:  # I EmptyQueryResponse
            self._finish_statement(buf, start, start)
        elif kind == 69:  # E ErrorResponse
            text, severity = _error_text(buf, start, end)
            self._error = text
            if severity in (b"FATAL", b"PANIC"):
                self.closing = True
                return self._complete()
        elif kind == 78 or kind == 65:  # N NoticeResponse, A NotificationResponse
            pass
        elif kind == 83:  # S ParameterStatus (after SET, for example)
            self._parameter(buf, start, end)
        else:
            raise ProtocolError(self._unexpected(kind, "after startup"))
        return 0

    def _data_row(self, buf: Buffer, start: int, end: int) -> None:
        if self._rows is None:
            raise ProtocolError("postgres DataRow without a RowDescription")
        if end - start < 2:
            raise ProtocolError("malformed postgres DataRow")
        count = _INT16.unpack_from(buf, start)[0]
        pos = start + 2
        keep = self.keep
        values = []
        for _ in range(count):
            if end - pos < 4:
                raise ProtocolError("postgres DataRow shorter than its columns")
            size = _INT32.unpack_from(buf, pos)[0]
            pos += 4
            if size == -1:  # NULL
                size = 0
            elif size < 0 or pos + size > end:
                raise ProtocolError(f"postgres DataRow column of {size} bytes does not fit")
            if keep:
                values.append(buf[pos:pos + size])
            pos += size
        if pos != end or count < 0:
            raise ProtocolError("postgres DataRow longer than its columns")
        if keep:
            self._rows.append(b"|".join(values))

    def _finish_statement(self, buf: Buffer, tag_start: int, tag_end: int) -> None:
        """A statement is over: its text is its rows, or else its tag."""
        if self.keep:
            rows = self._rows
            self._parts.append(bytes(buf[tag_start:tag_end]) if rows is None else b"\n".join(rows))
        self._rows = None

    def _ready_for_query(self, buf: Buffer, start: int, end: int) -> None:
        if end - start != 1 or buf[start] not in b"ITE":
            raise ProtocolError("malformed postgres ReadyForQuery")
        self.transaction_status = bytes(buf[start:end])

    def _complete(self) -> int:
        """The reply is over: keep its text, make room for the next."""
        if self._error is not None:
            self.error_replies += 1
            text = self._error
        else:
            text = b"\n".join(self._parts)
        if self.keep:
            self._texts.append(text)
        self._parts = []
        self._rows = None
        self._error = None
        return 1

    # -- startup ----------------------------------------------------------
    def _startup(self, kind: int, buf: Buffer, start: int, end: int) -> None:
        if kind == 82:  # R Authentication*
            if end - start < 4:
                raise ProtocolError("malformed postgres authentication request")
            code = _INT32.unpack_from(buf, start)[0]
            if code != 0:
                raise ProtocolError(self._auth_refusal(code, buf, start, end))
            if self._authenticated:
                raise ProtocolError("postgres sent AuthenticationOk twice")
            self._authenticated = True
        elif kind == 83:  # S ParameterStatus
            self._parameter(buf, start, end)
        elif kind == 75:  # K BackendKeyData
            if end - start < 8:
                raise ProtocolError("malformed postgres BackendKeyData")
            self.backend_pid = _INT32.unpack_from(buf, start)[0]
            self.secret_key = bytes(buf[start + 4:end])
        elif kind == 90:  # Z ReadyForQuery: the session is open
            if not self._authenticated:
                raise ProtocolError("postgres was ready before authentication")
            self._ready_for_query(buf, start, end)  # not a reply: it answers no request
            self.ready = True
        elif kind == 69:  # E ErrorResponse: the server refuses the session
            raise Refused(_error_text(buf, start, end)[0])
        elif kind == 78 or kind == 118:  # N NoticeResponse, v NegotiateProtocolVersion
            pass
        else:
            raise ProtocolError(self._unexpected(kind, "during startup"))

    def _parameter(self, buf: Buffer, start: int, end: int) -> None:
        pair = _cstrings(buf, start, end, "ParameterStatus")
        if len(pair) != 2:
            raise ProtocolError("malformed postgres ParameterStatus")
        self.parameters[pair[0].decode("utf-8", "replace")] = pair[1].decode("utf-8", "replace")

    @staticmethod
    def _auth_refusal(code: int, buf: Buffer, start: int, end: int) -> str:
        method = _AUTH_METHODS.get(code, f"method {code}")
        if code == 10:
            names = [m.decode("ascii", "replace") for m in bytes(buf[start + 4:end]).split(b"\0") if m]
            method += f" ({', '.join(names)})"
        return (f"postgres asks for {method} authentication; this client speaks trust only "
                f"(set the lab's pg_hba.conf to trust)")

    @staticmethod
    def _unexpected(kind: int, when: str) -> str:
        name = bytes([kind])
        if kind in _COPY:
            return f"postgres started COPY ({name!r}) {when}; COPY is not supported"
        if kind in _EXTENDED:
            return f"postgres sent an extended-query reply ({name!r}) {when}; only simple queries are sent"
        return f"postgres sent a message of type {name!r} that has no place {when}"
