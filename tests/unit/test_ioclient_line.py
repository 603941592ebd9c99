"""The line protocol's client codec (ioclient.LineClient).

The replies are what the lab's epoll model sent on this host.
"""

from __future__ import annotations

import pytest

from ioclient import LineClient, ProtocolError

from .test_ioclient_codecs import Case, check_case, check_malformed

CASES = [
    Case("echo", LineClient, [(b"hello\n", b"hello")]),
    Case("commands", LineClient, [
        (b"SLEPT 100\n", b"SLEPT 100"),
        (b"WORKED 10 165029893\n", b"WORKED 10 165029893"),
        (b"COUNT 2\n", b"COUNT 2"),
        (b'{"accepted":1,"connections":1,"model":"epoll","pid":25131,"threads":1}\n',
         b'{"accepted":1,"connections":1,"model":"epoll","pid":25131,"threads":1}'),
    ]),
    Case("refused", LineClient, [(b"ERR SLEEP needs a whole number, got b'x'\n",
                                  b"ERR SLEEP needs a whole number, got b'x'"),
                                 (b"ERR line too long\n", b"ERR line too long")], errors=2),
    Case("crlf and empty", LineClient, [(b"a\r\n", b"a"), (b"\n", b""), (b"ERRx\n", b"ERRx")]),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_reply_in_every_feeding(case: Case) -> None:
    check_case(case)


def test_pipelined_replies_of_every_case() -> None:
    check_case(Case("all", LineClient, [r for c in CASES for r in c.replies], errors=2))


def test_requests() -> None:
    codec = LineClient()
    assert codec.request("SLEEP 100") == b"SLEEP 100\n"
    assert codec.request("") == b"\n"
    assert codec.handshake() == b"" and codec.ready


def test_a_line_past_the_limit_is_a_protocol_error() -> None:
    check_malformed(lambda keep: LineClient(keep=keep, max_reply=8), b"123456789\n", "longer than 8")
    check_malformed(lambda keep: LineClient(keep=keep, max_reply=8), b"ok\n123456789", "longer than 8")
    codec = LineClient(max_reply=8)
    assert codec.receive_data(b"12345678\n") == 1  # the limit itself is fine


def test_keep_may_be_turned_on_mid_reply() -> None:
    codec = LineClient(keep=False)
    assert codec.receive_data(b"one\ntw") == 1
    codec.keep = True
    assert codec.receive_data(b"o\nthree\n") == 2
    assert codec.replies() == [b"two", b"three"]


def test_protocol_error_is_one_class_for_the_package() -> None:
    from ioclient import Refused
    from ioproto import ProtocolViolation
    assert issubclass(Refused, ProtocolError) and issubclass(ProtocolError, ProtocolViolation)
