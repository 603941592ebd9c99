"""iorun/uring.py without a ring: the kernel's layouts, and the one line a
refused io_uring gets (each cause faked: a seccomp filter, the
kernel.io_uring_disabled sysctl, a kernel without io_uring or too old)."""

from __future__ import annotations

import ctypes
import errno
import socket

import pytest

from iorun import uring


def test_the_structs_are_laid_out_as_the_kernel_reads_them() -> None:
    assert ctypes.sizeof(uring.Params) == 120  # struct io_uring_params
    assert uring.Params.sq_off.offset == 40 and uring.Params.cq_off.offset == 80
    assert uring._SQE.size == 64 and uring._CQE.size == 16 and uring._BUF_REG.size == 40
    sqe = bytearray(64)
    uring._pack(sqe, 0, uring.OP_RECV, uring.SQE_BUFFER_SELECT, 0, 7, 0, 0, 0, 0, 0xABCDEF, 3, 0, 0, 0, 0)
    assert sqe[0] == 27 and sqe[1] == 1 << 5  # opcode, flags
    assert int.from_bytes(sqe[4:8], "little") == 7  # fd
    assert int.from_bytes(sqe[32:40], "little") == 0xABCDEF  # user_data
    assert int.from_bytes(sqe[40:42], "little") == 3  # buf_group


def test_a_bytes_objects_address_is_its_data() -> None:
    data = b"reply line\n"
    assert ctypes.string_at(uring.address(data), len(data)) == data


def test_a_peer_address_reads_as_the_other_models_write_it() -> None:
    peer = uring.Peer()
    addr, _ = peer.arm()
    raw = (socket.AF_INET.to_bytes(2, "little") + (41830).to_bytes(2, "big") + socket.inet_aton("172.20.0.3"))
    ctypes.memmove(addr, raw, len(raw))
    assert peer.name() == "172.20.0.3:41830"


@pytest.mark.parametrize("facts, err, says", [
    ({"disabled": "0", "seccomp": 2}, errno.EPERM, ["seccomp filter", "Docker 25+", "seccomp-io_uring.json"]),
    ({"disabled": "0", "seccomp": 2}, errno.ENOSYS, ["seccomp filter", "seccomp-io_uring.json"]),
    ({"disabled": "2", "seccomp": 2}, errno.EPERM, ["kernel.io_uring_disabled=2", "sysctl -w kernel.io_uring_disabled=0"]),
    ({"disabled": "1", "group": "-1", "seccomp": 0}, errno.EPERM,
     ["kernel.io_uring_disabled=1", "kernel.io_uring_group (-1)", "sysctl -w kernel.io_uring_disabled=0"]),
    ({"seccomp": 0, "kernel": "4.19.0"}, errno.ENOSYS, ["kernel 4.19.0 was built without io_uring", "5.19"]),
    ({"seccomp": 0, "kernel": "5.15.0"}, errno.EINVAL, ["kernel 5.15.0 is too old", "5.19"]),
    ({"seccomp": 0, "kernel": "5.10.0", "memlock": "Max locked memory  65536  65536  bytes"}, errno.ENOMEM,
     ["locked-memory limit (65536 bytes)", "ulimit -l"]),
])
def test_each_refusal_names_its_cause_and_fix_in_one_line(facts: dict, err: int, says: list[str]) -> None:
    line = uring.diagnose("io_uring_setup", err, **facts)
    assert "\n" not in line and line.startswith("io_uring_setup ")
    for words in says:
        assert words in line, line


def test_a_refused_setup_raises_refused_and_the_model_exits_2(monkeypatch, capsys) -> None:
    """The system call faked: io_uring_setup fails with EPERM on a host whose
    sysctl turns io_uring off (read from /proc, also faked)."""
    def refused(*_args: object) -> int:
        ctypes.set_errno(errno.EPERM)
        return -1
    monkeypatch.setattr(uring, "_setup", refused)
    monkeypatch.setattr(uring, "read_text", lambda path: "2" if path.endswith("io_uring_disabled") else None)
    with pytest.raises(uring.Refused) as caught:
        uring.Ring()
    assert "kernel.io_uring_disabled=2" in str(caught.value)
    with pytest.raises(SystemExit) as leaving:
        uring.refuse("uring", caught.value)
    assert leaving.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("uring: io_uring_setup refused (EPERM): ")


def test_a_kernel_that_knows_fewer_flags_is_asked_again_with_fewer(monkeypatch) -> None:
    """EINVAL for DEFER_TASKRUN (before 6.1): the 5.19 set of flags next;
    EINVAL again means the kernel is too old."""
    asked: list[int] = []

    def setup(_nr: int, _entries: int, params: object) -> int:
        asked.append(ctypes.cast(params, ctypes.POINTER(uring.Params)).contents.flags)
        ctypes.set_errno(errno.EINVAL)
        return -1
    monkeypatch.setattr(uring, "_setup", setup)
    with pytest.raises(uring.Refused, match="too old"):
        uring.Ring()
    assert len(asked) == 2
    assert asked[0] & uring.SETUP_DEFER_TASKRUN and not asked[1] & uring.SETUP_DEFER_TASKRUN
