"""Fuzzing the client codecs: how bytes are split never changes what is decoded.

Per codec, bounded (200 examples each, seconds in all):

- valid replies (any ordered selection of a Case's replies) cut into any
  pieces decode to exactly their texts, kept or not;
- damaged replies (bytes flipped, inserted, deleted; small limits) cut
  into any pieces give the same outcome as fed whole: the same replies,
  or a ProtocolError both ways, never any other exception.  With texts not
  kept (the swarm's fast path) the counts and the outcome are the same.
"""

from __future__ import annotations

from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ioclient import ClientCodec, ProtocolError

from . import (test_ioclient_http, test_ioclient_line, test_ioclient_memcached, test_ioclient_postgres,
               test_ioclient_redis)
from .test_ioclient_codecs import Case

CASES: dict[str, list[Case]] = {
    "line": test_ioclient_line.CASES,
    "http": test_ioclient_http.CASES,
    "redis": test_ioclient_redis.CASES,
    "memcached": test_ioclient_memcached.CASES,
    "postgres": test_ioclient_postgres.CASES,
}
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    return [p for p in out if p] + [b""]


def outcome(factory: Callable[..., ClientCodec], chunks: list[bytes], keep: bool = True,
            **options: int) -> tuple[object, ...]:
    codec = factory(keep=keep, **options)
    try:
        n = sum(codec.receive_data(chunk) for chunk in chunks)
    except ProtocolError:
        return ("ProtocolError",)
    return n, codec.replies(), codec.error_replies, codec.pending, codec.closing, codec.ready


@st.composite
def selections(draw: st.DrawFn, name: str) -> tuple[Case, bytes, list[bytes]]:
    """A Case, and an ordered selection of its replies: (case, bytes, texts)."""
    case = draw(st.sampled_from(CASES[name]))
    chosen = draw(st.lists(st.booleans(), min_size=len(case.replies), max_size=len(case.replies)))
    picked = [reply for reply, keep in zip(case.replies, chosen) if keep]
    return case, case.prefix + b"".join(w for w, _ in picked), [t for _, t in picked]


def damage(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (position, kind, byte) edits: 0 flips a byte, 1 inserts one, 2 deletes one."""
    out = bytearray(data)
    for pos, kind, byte in edits:
        pos %= len(out) + 1
        if kind == 1 or pos == len(out):
            out.insert(pos, byte)
        elif kind == 0:
            out[pos] = byte
        else:
            del out[pos]
    return bytes(out)


CUTS = st.lists(st.integers(0, 1 << 16), max_size=12)
EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 2),
                           st.sampled_from(b"\r\n\x00\xff +-:$*0123456789ENDVALUE HTTP/1.\t;")),
                 min_size=1, max_size=4)


@pytest.mark.parametrize("name", sorted(CASES))
def test_random_splits_never_change_valid_replies(name: str) -> None:
    @FUZZ
    @given(selections(name), CUTS)
    def run(selection: tuple[Case, bytes, list[bytes]], cuts: list[int]) -> None:
        case, data, texts = selection
        chunks = pieces(data, cuts)
        whole = outcome(case.factory, [data, b""])
        assert whole[:2] == (len(texts), texts)
        assert outcome(case.factory, chunks) == whole
        assert outcome(case.factory, chunks, keep=False) == (whole[0], [], *whole[2:])

    run()


@pytest.mark.parametrize("name", sorted(CASES))
def test_random_splits_of_damaged_replies_agree_with_the_whole(name: str) -> None:
    @FUZZ
    @given(selections(name), EDITS, CUTS, st.sampled_from([None, 1, 3, 8, 20, 60]))
    def run(selection: tuple[Case, bytes, list[bytes]], edits: list[tuple[int, int, int]],
            cuts: list[int], limit: int | None) -> None:
        case, data, _ = selection
        data = damage(data, edits)
        options = {} if limit is None else {"max_reply": limit}
        whole = outcome(case.factory, [data, b""], **options)
        assert outcome(case.factory, pieces(data, cuts), **options) == whole, data
        fast = outcome(case.factory, pieces(data, cuts), keep=False, **options)
        assert fast == (whole if whole == ("ProtocolError",) else (whole[0], [], *whole[2:])), data

    run()
