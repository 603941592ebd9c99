"""The fuzz campaign: the protocol core under hostile input, per framing.

At least 10,000 generated inputs for each framing (line and HTTP/1.1), in
any chunking.  The only exceptions allowed out of the core are the intended
ones (RuntimeError for a caller that breaks the one-request-at-a-time rule,
which the driver below never does); everything a peer can send must come out
as events: a Request, a Reject with bytes to send, or Close.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from ioproto import NEED_DATA, Close, Reject, Request, ServerConnection, answer

EXAMPLES = 10_000
CAMPAIGN = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def drive(chunks: list[bytes], max_line: int = 512) -> list[object]:
    """Feed every chunk, answer every request; return what came out."""
    conn = ServerConnection(max_line=max_line, max_head=1024)
    out: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            out.append(event)
            if isinstance(event, Request):
                value = {"STATS": {"pid": 1}, "WORK": 1, "INCR": 1}.get(event.op)
                if event.op in ("RAISE", "CRASH"):
                    value = None
                    reply = conn.send(b"ERR skipped")  # a server would die here; keep fuzzing
                else:
                    reply = conn.send(answer(event, value))
                assert isinstance(reply, bytes) and reply
            else:
                assert isinstance(event, (Close, Reject))
                return out
    return out


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    return [p for p in pieces if p] + [b""]


WORDS = st.sampled_from([b"SLEEP", b"BLOCK", b"WORK", b"INCR", b"RAISE", b"CRASH", b"STATS",
                         b"client", b"GET", b"POST", b"", b"\xff"])
LINES = st.lists(st.one_of(st.binary(max_size=40), st.builds(
    lambda w, n: w + b" " + n, WORDS, st.sampled_from([b"1", b"-1", b"99999999999", b"x", b"", b"10 20"]))),
    max_size=8).map(lambda ls: b"".join(l.replace(b"\n", b"") + b"\n" for l in ls))


@CAMPAIGN
@given(LINES, st.binary(max_size=64), st.lists(st.integers(0, 10_000), max_size=6))
def test_line_framing_survives_anything(lines: bytes, tail: bytes, cuts: list[int]) -> None:
    data = lines + tail
    whole = drive([data, b""])
    assert drive(chunked(data, cuts)) == whole
    assert isinstance(whole[-1], (Close, Reject))


METHODS = st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"BREW", b"get", b""])
TARGETS = st.sampled_from([b"/", b"/sleep/5", b"/work/10", b"/stats", b"/%ff%00", b"http://h/incr/2",
                           b"/a?b=c", b"", b"*"])
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 x", b"HTTP"])
HEADER = st.one_of(
    st.tuples(st.sampled_from([b"Host", b"Connection", b"Content-Length", b"Transfer-Encoding", b"X"]),
              st.sampled_from([b"close", b"keep-alive", b"5", b"-1", b"abc", b"0", b"chunked", b""]))
    .map(lambda kv: kv[0] + b": " + kv[1]),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")))


def http_request(method: bytes, target: bytes, version: bytes, headers: list[bytes], body: bytes,
                 crlf: bool) -> bytes:
    nl = b"\r\n" if crlf else b"\n"
    return method + b" " + target + b" " + version + nl + b"".join(h + nl for h in headers) + nl + body


REQUESTS = st.builds(http_request, METHODS, TARGETS, VERSIONS, st.lists(HEADER, max_size=5),
                     st.binary(max_size=16), st.booleans())


@CAMPAIGN
@given(st.lists(REQUESTS, min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=6))
def test_http_framing_survives_anything(requests: list[bytes], cuts: list[int]) -> None:
    data = b"".join(requests)
    whole = drive([data, b""])
    assert drive(chunked(data, cuts)) == whole
    for event in whole:
        if isinstance(event, Reject):
            assert event.data.startswith((b"HTTP/1.1 4", b"HTTP/1.1 5", b"ERR "))
