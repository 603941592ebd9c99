"""The PostgreSQL client codec (ioclient.PostgresClient): v3 protocol, simple queries.

Messages marked "recorded" are the bytes PostgreSQL 15.18 (Debian) sent on
this host, with trust authentication, to the query in the comment.
"""

from __future__ import annotations

import struct

import pytest

from ioclient import PostgresClient, ProtocolError, Refused

from .test_ioclient_codecs import Case, bytewise, check_case, check_malformed, feed

STARTUP = (  # recorded: the answer to a StartupMessage for user lab
    b"R\x00\x00\x00\x08\x00\x00\x00\x00"
    b"S\x00\x00\x00\x1bapplication_name\x00iolab\x00S\x00\x00\x00\x19client_encoding\x00UTF8\x00"
    b"S\x00\x00\x00\x17DateStyle\x00ISO, MDY\x00S\x00\x00\x00&default_transaction_read_only\x00off\x00"
    b"S\x00\x00\x00\x17in_hot_standby\x00off\x00S\x00\x00\x00\x19integer_datetimes\x00on\x00"
    b"S\x00\x00\x00\x1bIntervalStyle\x00postgres\x00S\x00\x00\x00\x14is_superuser\x00on\x00"
    b"S\x00\x00\x00\x19server_encoding\x00UTF8\x00"
    b"S\x00\x00\x002server_version\x0015.18 (Debian 15.18-0+deb12u1)\x00"
    b"S\x00\x00\x00\x1esession_authorization\x00lab\x00S\x00\x00\x00#standard_conforming_strings\x00on\x00"
    b"S\x00\x00\x00\x15TimeZone\x00Etc/UTC\x00"
    b"K\x00\x00\x00\x0c\x00\x00WI1T-\xc2"
    b"Z\x00\x00\x00\x05I")
SELECT_1 = (  # recorded: SELECT 1
    b"T\x00\x00\x00!\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff"
    b"\x00\x00D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011C\x00\x00\x00\rSELECT 1\x00Z\x00\x00\x00\x05I")
PG_SLEEP = (  # recorded: SELECT pg_sleep(0.5)
    b"T\x00\x00\x00!\x00\x01pg_sleep\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\xe6\x00\x04\xff\xff\xff\xff"
    b"\x00\x00D\x00\x00\x00\n\x00\x01\x00\x00\x00\x00C\x00\x00\x00\rSELECT 1\x00Z\x00\x00\x00\x05I")
SYNTAX_ERROR = (  # recorded: SELEC 1
    b'E\x00\x00\x00]SERROR\x00VERROR\x00C42601\x00Msyntax error at or near "SELEC"\x00P1\x00Fscan.l\x00'
    b"L1188\x00Rscanner_yyerror\x00\x00Z\x00\x00\x00\x05I")
EMPTY = b"I\x00\x00\x00\x04Z\x00\x00\x00\x05I"  # recorded: the empty query
ROWS = (  # recorded: SELECT 1, NULL, 'a b' UNION ALL SELECT 2, 'x', ''
    b"T\x00\x00\x00W\x00\x03?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff"
    b"\x00\x00?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x00"
    b"?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x00"
    b"D\x00\x00\x00\x16\x00\x03\x00\x00\x00\x011\xff\xff\xff\xff\x00\x00\x00\x03a b"
    b"D\x00\x00\x00\x14\x00\x03\x00\x00\x00\x012\x00\x00\x00\x01x\x00\x00\x00\x00"
    b"C\x00\x00\x00\rSELECT 2\x00Z\x00\x00\x00\x05I")
TWO_STATEMENTS = (  # recorded: SELECT 1; SELECT 2
    b"T\x00\x00\x00!\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff"
    b"\x00\x00D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011C\x00\x00\x00\rSELECT 1\x00"
    b"T\x00\x00\x00!\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff"
    b"\x00\x00D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x012C\x00\x00\x00\rSELECT 1\x00Z\x00\x00\x00\x05I")
SET = (  # recorded: SET application_name = 'x'
    b"C\x00\x00\x00\x08SET\x00S\x00\x00\x00\x17application_name\x00x\x00Z\x00\x00\x00\x05I")
CREATE = b"C\x00\x00\x00\x11CREATE TABLE\x00Z\x00\x00\x00\x05I"  # recorded: CREATE TEMP TABLE t(a int)
NO_ROWS = (  # recorded: SELECT * FROM t
    b"T\x00\x00\x00\x1a\x00\x01a\x00\x00\x00@\x02\x00\x01\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00"
    b"C\x00\x00\x00\rSELECT 0\x00Z\x00\x00\x00\x05I")
BEGIN = b"C\x00\x00\x00\nBEGIN\x00Z\x00\x00\x00\x05T"  # recorded: BEGIN
DIV_ZERO = (  # recorded: SELECT 1/0 inside that transaction
    b"E\x00\x00\x00ASERROR\x00VERROR\x00C22012\x00Mdivision by zero\x00Fint.c\x00L869\x00Rint4div\x00\x00"
    b"Z\x00\x00\x00\x05E")
NOTICE = (  # recorded: DO $$ BEGIN RAISE NOTICE 'hi'; END $$
    b"N\x00\x00\x00wSNOTICE\x00VNOTICE\x00C00000\x00Mhi\x00WPL/pgSQL function inline_code_block line 1 "
    b"at RAISE\x00Fpl_exec.c\x00L3891\x00Rexec_stmt_raise\x00\x00C\x00\x00\x00\x07DO\x00Z\x00\x00\x00\x05I")
TERMINATED = (  # recorded: pg_terminate_backend() of a session sleeping in pg_sleep(5)
    b"E\x00\x00\x00tSFATAL\x00VFATAL\x00C57P01\x00Mterminating connection due to administrator command"
    b"\x00Fpostgres.c\x00L3211\x00RProcessInterrupts\x00\x00")
TOO_MANY = (  # recorded: the answer to a StartupMessage past max_connections
    b"E\x00\x00\x00USFATAL\x00VFATAL\x00C53300\x00Msorry, too many clients already\x00Fproc.c\x00L357\x00"
    b"RInitProcess\x00\x00")
AUTH_SCRAM = b"R\x00\x00\x00\x17\x00\x00\x00\nSCRAM-SHA-256\x00\x00"  # recorded: pg_hba scram-sha-256
AUTH_MD5 = b"R\x00\x00\x00\x0c\x00\x00\x00\x05\xbfP4\x9a"  # recorded: pg_hba md5
AUTH_CLEARTEXT = b"R\x00\x00\x00\x08\x00\x00\x00\x03"  # recorded: pg_hba password


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


CASES = [
    Case("recorded SELECT 1 and pg_sleep", PostgresClient, [(SELECT_1, b"1"), (PG_SLEEP, b"")],
         prefix=STARTUP),
    Case("recorded statements", PostgresClient, [
        (EMPTY, b""), (ROWS, b"1||a b\n2|x|"), (TWO_STATEMENTS, b"1\n2"), (SET, b"SET"),
        (CREATE, b"CREATE TABLE"), (NO_ROWS, b""), (BEGIN, b"BEGIN"), (NOTICE, b"DO"),
    ], prefix=STARTUP),
    Case("recorded errors", PostgresClient, [
        (SYNTAX_ERROR, b'ERROR 42601: syntax error at or near "SELEC"'),
        (DIV_ZERO, b"ERROR 22012: division by zero"),
        (TERMINATED, b"FATAL 57P01: terminating connection due to administrator command"),
    ], prefix=STARTUP, errors=3),
    Case("between messages", PostgresClient, [
        (message(b"N", b"SWARNING\0Mw\0\0") + message(b"A", b"\0\0\0\1chan\0payload\0")
         + message(b"S", b"TimeZone\0UTC\0") + SELECT_1, b"1"),
        (message(b"E", b"SERROR\0C57014\0Mcanceling statement due to statement timeout\0\0")
         + message(b"Z", b"I"), b"ERROR 57014: canceling statement due to statement timeout"),
    ], prefix=message(b"R", b"\0\0\0\0") + message(b"v", b"\0\0\0\0\0\0\0\0") + message(b"Z", b"I"),
        errors=1),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_reply_in_every_feeding(case: Case) -> None:
    check_case(case)


def test_pipelined_replies_of_every_case() -> None:
    replies = [r for c in CASES for r in c.replies if r[0] is not TERMINATED]
    check_case(Case("all", PostgresClient, replies, prefix=STARTUP, errors=3))


def test_startup_message_and_requests() -> None:
    codec = PostgresClient(user="lab", database="lab", application_name="")
    assert codec.handshake() == (b"\x00\x00\x00\x1f\x00\x03\x00\x00"
                                 b"user\x00lab\x00database\x00lab\x00\x00")
    assert PostgresClient().handshake().startswith(b"\x00\x00\x00\x36\x00\x03\x00\x00user\x00")
    assert codec.request("SELECT 1") == b"Q\x00\x00\x00\x0dSELECT 1\x00"
    assert codec.request("SELECT '\u00e9'") == b"Q\x00\x00\x00\x10SELECT '\xc3\xa9'\x00"
    assert codec.close() == b"X\x00\x00\x00\x04"
    with pytest.raises(ValueError, match="NUL"):
        PostgresClient(user="a\0b").handshake()


def test_the_session_is_ready_after_the_first_ready_for_query() -> None:
    codec = PostgresClient()
    assert not codec.ready
    assert codec.receive_data(STARTUP[:-6]) == 0 and not codec.ready
    assert codec.receive_data(STARTUP[-6:]) == 0 and codec.ready
    assert codec.replies() == []
    assert codec.parameters["server_version"] == "15.18 (Debian 15.18-0+deb12u1)"
    assert codec.backend_pid == 0x5749 and codec.secret_key == b"1T-\xc2"
    assert codec.transaction_status == b"I"
    codec.receive_data(BEGIN)
    assert codec.transaction_status == b"T"
    codec.receive_data(SET)
    assert codec.parameters["application_name"] == "x"


def test_a_fatal_error_ends_the_reply_and_the_session() -> None:
    codec = PostgresClient()
    codec.receive_data(STARTUP)
    assert codec.receive_data(TERMINATED) == 1 and codec.closing
    with pytest.raises(ProtocolError, match="after a FATAL error"):
        codec.receive_data(message(b"Z", b"I"))


@pytest.mark.parametrize("data,text", [
    (TOO_MANY, b"FATAL 53300: sorry, too many clients already"),
    (message(b"R", b"\0\0\0\0") + message(b"E", b"SFATAL\0C3D000\0Mdatabase \"x\" does not exist\0\0"),
     b'FATAL 3D000: database "x" does not exist'),
])
def test_a_refused_session_raises_refused_with_the_servers_words(data: bytes, text: bytes) -> None:
    for chunks in ([data], bytewise(data)):
        with pytest.raises(Refused) as refused:
            feed(PostgresClient(), chunks)
        assert refused.value.text == text


@pytest.mark.parametrize("data,method", [
    (AUTH_SCRAM, r"SASL \(SCRAM-SHA-256\)"),
    (AUTH_MD5, "MD5 password"),
    (AUTH_CLEARTEXT, "cleartext password"),
    (message(b"R", b"\0\0\0\7"), "GSSAPI"),
    (message(b"R", b"\0\0\0\x63"), "method 99"),
])
def test_authentication_other_than_trust_is_refused_by_name(data: bytes, method: str) -> None:
    check_malformed(PostgresClient, data, f"asks for {method} authentication.*trust only")


READY = message(b"R", b"\0\0\0\0") + message(b"Z", b"I")


@pytest.mark.parametrize("data,match", [
    (b"R\x00\x00\x00\x03", "length 3 out of range"),
    (b"R\xff\xff\xff\xff", "out of range"),
    (message(b"Z", b"I"), "ready before authentication"),
    (message(b"R", b"\0\0\0\0") * 2, "AuthenticationOk twice"),
    (message(b"R", b"\0\0"), "malformed postgres authentication"),
    (message(b"D", b"\0\0"), "during startup"),
    (message(b"K", b"\0\0\0\1"), "BackendKeyData"),
    (message(b"S", b"a\0b\0c\0"), "ParameterStatus"),
    (message(b"S", b"ab"), "not NUL-terminated"),
    (READY + message(b"Z", b"Q"), "ReadyForQuery"),
    (READY + message(b"D", b"\0\1\0\0\0\0"), "without a RowDescription"),
    (READY + message(b"T", b"\0\1") + message(b"D", b"\0\1\0\0\0\5ab"), "does not fit"),
    (READY + message(b"T", b"\0\1") + message(b"D", b"\0\1\0\0"), "shorter than its columns"),
    (READY + message(b"T", b"\0\1") + message(b"D", b"\0\1\xff\xff\xff\xfe"), "does not fit"),
    (READY + message(b"T", b"\0\1") + message(b"D", b"\0\0x"), "longer than its columns"),
    (READY + message(b"T", b"\xff\xff"), "RowDescription"),
    (READY + message(b"C", b"SELECT 1"), "not NUL-terminated"),
    (READY + message(b"E", b"SERROR\0"), "not NUL-terminated"),
    (READY + message(b"E", b"\0\0"), "without a type"),
    (READY + message(b"G", b"\0\0\0"), "COPY is not supported"),
    (READY + message(b"1", b""), "extended-query"),
    (READY + message(b"R", b"\0\0\0\0"), "no place after startup"),
    (READY + message(b"?", b""), "no place after startup"),
])
def test_malformed_replies(data: bytes, match: str) -> None:
    check_malformed(PostgresClient, data, match)


def test_limits() -> None:
    check_malformed(lambda keep: PostgresClient(keep=keep, max_reply=100),
                    READY + b"D\x00\x00\x00\x65", "length 101 out of range")
