"""io_uring from Python by hand: ctypes for the system calls, mmap for the rings.

What was chosen, and why.  Debian bookworm, the lab's base image, packages
liburing (the C library) but no Python binding for it, and the images get
nothing from pip.  liburing would not help through ctypes either: its
``io_uring_prep_*`` and ``io_uring_get_sqe`` are static inline functions in a
header, not symbols in the library.  So this module speaks to the kernel
directly, as liburing does underneath, with nothing but the standard library:

- three system calls through libc's ``syscall()``: io_uring_setup (425),
  io_uring_enter (426) and io_uring_register (427).  These are the
  generic numbers, the same on x86-64, aarch64 and every architecture that
  took its numbers from the shared table since Linux 5.1 (alpha and mips
  offset theirs, and are refused in one line);
- the rings the kernel shares with us, mapped with mmap: the submission
  queue (SQ: a head the kernel moves, a tail we move, an array of indexes),
  the SQE array (64-byte ``struct io_uring_sqe``, one per operation we ask
  for), and the completion queue (CQ: a tail the kernel moves, a head we
  move, 16-byte ``struct io_uring_cqe``, one per operation that is done);
- a provided-buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19), because a
  completion API must be handed its buffer when the operation is submitted,
  not when bytes arrive.  With one buffer per connection, 10,000 idle clients
  would pin 10,000 buffers.  Instead every recv is submitted with no buffer
  at all (IOSQE_BUFFER_SELECT) and the kernel takes one from a shared pool
  only when bytes are there; the CQE says which, and we give it back at once
  after copying the bytes out.  Only as many buffers are offered as recvs
  complete at once (BufferRing): memory follows the bytes in flight, not the
  clients.  This sets the kernel floor at 5.19.

Rules this module keeps:

- One thread, one ring (IORING_SETUP_SINGLE_ISSUER, and DEFER_TASKRUN where
  the kernel has it, 6.1: completions are posted only when we ask for them,
  in our own thread, so a whole batch is reaped at once).  That is also why
  plain loads and stores on the shared rings are enough here: without
  SQPOLL the kernel reads the SQ tail only inside io_uring_enter, after our
  stores, and with DEFER_TASKRUN it writes CQEs only inside it, before we
  read them.  (On a 5.19-6.0 kernel a CQE may be posted from another CPU;
  x86-64 orders loads anyway, aarch64 would want the acquire barrier that
  Python cannot express.)
- Every descriptor the ring works on is left in blocking mode.  The ring
  never blocks our thread whatever the mode: it tries the operation at once
  and, if it would wait, waits on its own.  But an O_NONBLOCK descriptor
  makes some kernels hand back EAGAIN as the operation's result instead of
  waiting (a pipe's read on every kernel; accept on some 5.x ones).
- Memory the kernel reads or writes after submission (a send's bytes, an
  accept's address, a timeout's timespec) stays referenced by the caller
  until that operation's completion is reaped.
- Nothing is swallowed: a refused or failed setup raises ``Refused`` with one
  line that names the cause and the fix; the model prints it and exits 2.
"""

from __future__ import annotations

import ctypes
import errno
import math
import mmap
import os
import platform
import socket
import struct
import sys
from typing import NoReturn

from . import loop
from .procfs import read_text
from .server import ACCEPT_BACKOFF, BACKOFF, GONE_ERRORS, RESOURCE_ERRORS, Server, close_reason

# -- the kernel's numbers (include/uapi/linux/io_uring.h) ---------------------------
SYS_SETUP, SYS_ENTER, SYS_REGISTER = 425, 426, 427
FOREIGN_NUMBERS = ("alpha", "mips")  # architectures whose numbers are not the generic ones

SETUP_CQSIZE = 1 << 3  # we choose the CQ's size: room for a burst of completions
SETUP_CLAMP = 1 << 4  # sizes above the kernel's maximum are clamped, not refused
SETUP_SUBMIT_ALL = 1 << 7  # a bad SQE fails alone (its CQE says so); the rest still go in (5.18)
SETUP_COOP_TASKRUN = 1 << 8  # completions need not interrupt us: we always enter to reap (5.19)
SETUP_SINGLE_ISSUER = 1 << 12  # one thread submits (6.0)
SETUP_DEFER_TASKRUN = 1 << 13  # completions are posted when we enter to wait, in our thread (6.1)
FEAT_NODROP = 1 << 1  # a full CQ keeps its overflow for later instead of dropping it

OFF_SQ_RING, OFF_CQ_RING, OFF_SQES = 0, 0x8000000, 0x10000000  # mmap offsets on the ring's fd
ENTER_GETEVENTS = 1
REGISTER_PBUF_RING = 22

OP_TIMEOUT, OP_ACCEPT, OP_ASYNC_CANCEL, OP_READ, OP_SEND, OP_RECV = 11, 13, 14, 22, 26, 27
SQE_BUFFER_SELECT = 1 << 5  # the kernel picks the buffer from a group when data arrives
CQE_F_BUFFER, CQE_BUFFER_SHIFT = 1, 16  # the CQE carries the buffer's id in flags >> 16
TIMEOUT_ABS = 1  # the timespec is a CLOCK_MONOTONIC instant (time.monotonic()), not a delay

ENTRIES = 1024  # SQEs: a loop turn that queues more flushes the SQ once on the way
CQ_ENTRIES = 16384  # CQEs: completions reaped per turn can be many (a storm of clients)
BUFFERS, BUFFER_SIZE = 1024, 4096  # the recv pool: at most 4 MiB, whatever the number of clients
OFFERED_FIRST = 16  # buffers offered at first; each ENOBUFS offers one more (BufferRing says why)
BUFFER_GROUP = 0
_U32 = 0xFFFFFFFF

_SQE = struct.Struct("<BBHiQQIIQHHiQQ")  # struct io_uring_sqe: 64 bytes, packed as the kernel lays it
_CQE = struct.Struct("<QiI")  # struct io_uring_cqe: user_data, res, flags
_BUF = struct.Struct("<QIH")  # struct io_uring_buf without resv: in entry 0 resv *is* the ring's tail
_BUF_STRIDE = 16  # sizeof(struct io_uring_buf), resv included
_BUF_REG = struct.Struct("<QIHH3Q")  # struct io_uring_buf_reg
_TAIL_AT = 14  # the buffer ring's tail: a u16 over entry 0's resv
assert _SQE.size == 64 and _CQE.size == 16 and _BUF_REG.size == 40
_pack = _SQE.pack_into
SEND_FLAGS = socket.MSG_NOSIGNAL | socket.MSG_WAITALL  # an EPIPE, not a SIGPIPE; and no short sends


class _SQOffsets(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in
                ("head", "tail", "ring_mask", "ring_entries", "flags", "dropped", "array", "resv1")] + [
                ("user_addr", ctypes.c_uint64)]


class _CQOffsets(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in
                ("head", "tail", "ring_mask", "ring_entries", "overflow", "cqes", "flags", "resv1")] + [
                ("user_addr", ctypes.c_uint64)]


class Params(ctypes.Structure):
    """struct io_uring_params: what we ask of io_uring_setup, and what it answers."""
    _fields_ = [(n, ctypes.c_uint32) for n in
                ("sq_entries", "cq_entries", "flags", "sq_thread_cpu", "sq_thread_idle", "features", "wq_fd")] + [
                ("resv", ctypes.c_uint32 * 3), ("sq_off", _SQOffsets), ("cq_off", _CQOffsets)]


assert ctypes.sizeof(Params) == 120

_libc = ctypes.CDLL(None, use_errno=True)
# One function object per call shape: libc's syscall() is variadic, and ctypes
# must be told how to pass each argument (pointers as such, not as C ints).
_setup = _libc["syscall"]
_setup.argtypes, _setup.restype = (ctypes.c_long, ctypes.c_uint32, ctypes.c_void_p), ctypes.c_long
_enter = _libc["syscall"]
_enter.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
                   ctypes.c_void_p, ctypes.c_size_t)
_enter.restype = ctypes.c_long
_register = _libc["syscall"]
_register.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32)
_register.restype = ctypes.c_long

# Where a bytes object's data lies, found once from ctypes: the offset from id()
# is fixed in CPython, and id() + offset is far cheaper than a ctypes object per send.
_probe = b"where"
_BYTES_DATA = ctypes.cast(ctypes.c_char_p(_probe), ctypes.c_void_p).value - id(_probe)  # type: ignore[operator]
del _probe


def address(data: bytes) -> int:
    """The address of an immutable bytes object's data (the caller keeps it alive)."""
    return id(data) + _BYTES_DATA


# -- refused: one line with the cause and the fix ----------------------------------

SECCOMP_FIX = ("Docker 25+ blocks io_uring in its default seccomp profile: run the container with "
               "services/uring/seccomp-io_uring.json (docker run --security-opt "
               "seccomp=services/uring/seccomp-io_uring.json, or in compose.yaml security_opt: "
               "[\"no-new-privileges:true\", \"seccomp=services/uring/seccomp-io_uring.json\"])")


class Refused(RuntimeError):
    """io_uring cannot be used here; ``str()`` is the one line to print."""

    exit_code = 2  # the environment is not usable (the lab's convention)




def seccomp_mode() -> int | None:
    """0 none, 1 strict, 2 a filter (Docker's profile is one), None unknown."""
    for line in (read_text("/proc/self/status") or "").splitlines():
        if line.startswith("Seccomp:"):
            return int(line.split()[1])
    return None


def diagnose(call: str, err: int, *, disabled: str | None = None, group: str | None = None,
             seccomp: int | None = None, kernel: str | None = None, memlock: str | None = None) -> str:
    """Why ``call`` failed with ``err``, and what to do, in one line.  The
    facts are read from /proc when not given (tests give them)."""
    kernel = kernel or os.uname().release
    name = errno.errorcode.get(err, str(err))
    if err in (errno.EPERM, errno.EACCES):
        disabled = disabled if disabled is not None else read_text("/proc/sys/kernel/io_uring_disabled")
        if disabled == "2":
            return (f"{call} refused ({name}): kernel.io_uring_disabled=2 turns io_uring off for every "
                    f"process on this host; on the host: sysctl -w kernel.io_uring_disabled=0")
        if disabled == "1":
            group = group if group is not None else read_text("/proc/sys/kernel/io_uring_group")
            return (f"{call} refused ({name}): kernel.io_uring_disabled=1 allows io_uring only to the group "
                    f"kernel.io_uring_group ({group}) and CAP_SYS_ADMIN; on the host: sysctl -w "
                    f"kernel.io_uring_disabled=0, or run the server in that group")
    seccomp = seccomp if seccomp is not None else seccomp_mode()
    if err in (errno.EPERM, errno.EACCES, errno.ENOSYS) and seccomp == 2:
        return f"{call} refused ({name}) by this process's seccomp filter: {SECCOMP_FIX}"
    if err == errno.ENOSYS:
        return (f"{call} does not exist here ({name}): kernel {kernel} was built without io_uring "
                f"(CONFIG_IO_URING) or is older than 5.1; run on Linux 5.19 or newer")
    if err == errno.EINVAL:
        return (f"{call} refused ({name}): kernel {kernel} is too old for this server's ring "
                f"(provided buffer rings need Linux 5.19); run on Linux 5.19 or newer")
    if err == errno.ENOMEM:
        memlock = memlock or read_text("/proc/self/limits")
        limit = next((l.split()[3] for l in (memlock or "").splitlines() if l.startswith("Max locked memory")), "?")
        return (f"{call} failed ({name}): the locked-memory limit ({limit} bytes) is too small for the rings "
                f"on kernel {kernel} (before 5.12 they count against it); raise it (ulimit -l, or "
                f"ulimits: memlock in compose.yaml)")
    return f"{call} failed ({name}: {os.strerror(err)}) on kernel {kernel}"


def refuse(model: str, exc: Refused) -> NoReturn:
    """Say why in one line on stderr, and exit 2."""
    sys.stderr.write(f"{model}: {exc}\n")
    sys.stderr.flush()
    raise SystemExit(exc.exit_code)


# -- the ring ------------------------------------------------------------------------

class Ring:
    """One io_uring: queue operations as SQEs, submit them and wait in one
    io_uring_enter, then reap every CQE that is there."""

    def __init__(self, entries: int = ENTRIES, cq_entries: int = CQ_ENTRIES,
                 buffers: int = BUFFERS, buffer_size: int = BUFFER_SIZE, offered: int = OFFERED_FIRST) -> None:
        if platform.machine().startswith(FOREIGN_NUMBERS):
            raise Refused(f"io_uring's system call numbers differ on {platform.machine()}; "
                          f"this binding knows the generic ones (x86-64, aarch64 and the like)")
        self.params = Params()
        self.fd = self._setup(entries, cq_entries)
        self.enters = 0  # io_uring_enter calls, all told
        self.submitted = 0  # SQEs the kernel took
        try:
            self._map()
            self.buffers = BufferRing(self, buffers, buffer_size, offered)
        except BaseException:
            os.close(self.fd)  # nothing else holds it yet: the mappings, if made, go with the object
            self.fd = -1
            raise

    def _setup(self, entries: int, cq_entries: int) -> int:
        """io_uring_setup with the best flags this kernel takes (6.1, else 5.19)."""
        base = SETUP_CQSIZE | SETUP_CLAMP | SETUP_SUBMIT_ALL
        for flags in (base | SETUP_SINGLE_ISSUER | SETUP_DEFER_TASKRUN, base | SETUP_COOP_TASKRUN):
            p = self.params = Params(cq_entries=cq_entries, flags=flags)
            fd = _setup(SYS_SETUP, entries, ctypes.byref(p))
            if fd >= 0:
                return fd
            err = ctypes.get_errno()
            if err != errno.EINVAL:  # EINVAL: a flag this kernel does not know, try fewer
                break
        raise Refused(diagnose("io_uring_setup", err))

    def _map(self) -> None:
        """Map the SQ ring, the CQ ring (one mapping since 5.4) and the SQEs."""
        p, sq, cq = self.params, self.params.sq_off, self.params.cq_off
        sq_size = sq.array + p.sq_entries * 4
        cq_size = cq.cqes + p.cq_entries * _CQE.size
        if not p.features & FEAT_NODROP:  # 5.5: without it a full CQ loses completions
            raise Refused(diagnose("io_uring_setup", errno.EINVAL))
        share = mmap.MAP_SHARED | mmap.MAP_POPULATE
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        self._rings = mmap.mmap(self.fd, max(sq_size, cq_size), share, rw, offset=OFF_SQ_RING)
        self._sqes = mmap.mmap(self.fd, p.sq_entries * _SQE.size, share, rw, offset=OFF_SQES)
        words = self._u32 = memoryview(self._rings).cast("I")  # the ring's fields are u32, 4-aligned
        self._sq_head, self._sq_tail = sq.head // 4, sq.tail // 4
        self._cq_head, self._cq_tail = cq.head // 4, cq.tail // 4
        self._sq_mask, self._cq_mask = words[sq.ring_mask // 4], words[cq.ring_mask // 4]
        self.sq_entries, self.cq_entries = p.sq_entries, p.cq_entries
        for i in range(p.sq_entries):  # the SQ holds indexes into the SQE array: slot i is SQE i
            words[sq.array // 4 + i] = i
        self._cqes = cq.cqes
        self._tail = words[self._sq_tail]  # our copy of the SQ tail, published before each enter

    # -- queueing operations: one SQE each, nothing reaches the kernel yet --------------
    def _slot(self) -> int:
        """Where the next SQE goes (its byte offset in the SQE array)."""
        if (self._tail - self._u32[self._sq_head]) & _U32 >= self.sq_entries:
            self.submit(0)  # the SQ is full: hand what is queued to the kernel first, without waiting
            if (self._tail - self._u32[self._sq_head]) & _U32 >= self.sq_entries:  # never overwrite one
                raise OSError(errno.EBUSY, "io_uring: the kernel took nothing from a full submission queue")
        at = (self._tail & self._sq_mask) << 6
        self._tail = (self._tail + 1) & _U32
        return at

    # Each writes one whole SQE: opcode, flags, ioprio, fd, off, addr, len, op_flags,
    # user_data, buf_group, personality, splice_fd_in, addr3, pad (zeros left over
    # from an earlier operation would mean something to the kernel).
    def accept(self, fd: int, addr: int, addrlen: int, user_data: int) -> None:
        """Accept a connection: the kernel writes the peer's address at ``addr``."""
        _pack(self._sqes, self._slot(), OP_ACCEPT, 0, 0, fd, addrlen, addr, 0, socket.SOCK_CLOEXEC, user_data,
              0, 0, 0, 0, 0)

    def recv(self, fd: int, user_data: int) -> None:
        """Receive into a buffer the kernel picks from the pool when bytes arrive."""
        _pack(self._sqes, self._slot(), OP_RECV, SQE_BUFFER_SELECT, 0, fd, 0, 0, 0, 0, user_data,
              BUFFER_GROUP, 0, 0, 0, 0)

    def send(self, fd: int, addr: int, length: int, user_data: int) -> None:
        """Send ``length`` bytes from ``addr`` (kept alive by the caller until the CQE).
        MSG_WAITALL: the kernel finishes a short send itself before it completes."""
        _pack(self._sqes, self._slot(), OP_SEND, 0, 0, fd, 0, addr, length, SEND_FLAGS, user_data, 0, 0, 0, 0, 0)

    def read(self, fd: int, addr: int, length: int, user_data: int) -> None:
        _pack(self._sqes, self._slot(), OP_READ, 0, 0, fd, 0, addr, length, 0, user_data, 0, 0, 0, 0, 0)

    def timeout(self, timespec: int, user_data: int) -> None:
        """Complete (with -ETIME) at the CLOCK_MONOTONIC instant at ``timespec``."""
        _pack(self._sqes, self._slot(), OP_TIMEOUT, 0, 0, -1, 0, timespec, 1, TIMEOUT_ABS, user_data, 0, 0, 0, 0, 0)

    def cancel(self, target: int, user_data: int) -> None:
        """Cancel the operation submitted with user_data ``target``: it completes with -ECANCELED."""
        _pack(self._sqes, self._slot(), OP_ASYNC_CANCEL, 0, 0, -1, 0, target, 0, 0, user_data, 0, 0, 0, 0, 0)

    # -- the one system call --------------------------------------------------------
    def submit(self, wait: int = 1) -> int:
        """Hand every queued SQE to the kernel and, if ``wait``, sleep until at
        least ``wait`` operations are done: one io_uring_enter.  Returns the
        number of SQEs taken (0 when a signal cut the wait short: its Python
        handler runs as soon as we return)."""
        u32 = self._u32
        pending = (self._tail - u32[self._sq_head]) & _U32
        u32[self._sq_tail] = self._tail  # publish the SQEs written above: the kernel reads this in the call
        self.buffers.publish()
        if not pending and not wait:
            return 0
        self.enters += 1
        taken = _enter(SYS_ENTER, self.fd, pending, wait, ENTER_GETEVENTS if wait else 0, None, 0)
        if taken < 0:
            err = ctypes.get_errno()
            if err in (errno.EINTR, errno.EAGAIN, errno.EBUSY):  # a signal; or reap first, then again
                return 0
            raise OSError(err, f"io_uring_enter: {os.strerror(err)}")
        self.submitted += taken
        return taken

    def completions(self) -> list[tuple[int, int, int]]:
        """Every CQE there now, as (user_data, res, flags), oldest first; the
        CQ's head moves past them (their slots are the kernel's again)."""
        u32 = self._u32
        head, tail = u32[self._cq_head], u32[self._cq_tail]
        n = (tail - head) & _U32
        if not n:
            return []
        start = head & self._cq_mask
        first = min(n, self.cq_entries - start)  # up to the end of the array, then from its start
        at = self._cqes + start * 16
        with memoryview(self._rings) as ring:
            found = list(_CQE.iter_unpack(ring[at:at + first * 16]))
            if first < n:
                found += _CQE.iter_unpack(ring[self._cqes:self._cqes + (n - first) * 16])
        u32[self._cq_head] = tail  # after copying: the kernel may now write those slots again
        return found

    def close(self) -> None:
        """Close the ring: the kernel cancels whatever is still in flight.  The
        pool goes last: until the ring is gone a recv may still write there."""
        if self.fd < 0:
            return
        self._u32.release()
        self._sqes.close()
        self._rings.close()
        os.close(self.fd)
        self.fd = -1
        self.buffers.close()


class BufferRing:
    """The recv pool: up to ``count`` buffers of ``size`` bytes the kernel picks from.

    Two anonymous mappings (page-aligned, as the kernel wants the ring): the
    buffers, and the ring of ``struct io_uring_buf`` entries that offers them.
    We add entries at the ring's tail; the kernel takes them from its head as
    recvs complete, and each CQE names the buffer it filled.

    The ring is a queue, so a buffer given back is used again only after
    every other one offered: offering the whole pool would touch all of its
    pages under the lightest load.  So only a few are offered at first, and
    one more each time a recv finds none (ENOBUFS; it is submitted again):
    the pages touched follow how many recvs complete at once, not the
    pool's size or the number of clients."""

    def __init__(self, ring: Ring, count: int, size: int, first: int = OFFERED_FIRST) -> None:
        self.count, self.size = count, size
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        self.memory = mmap.mmap(-1, count * size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, rw)
        self._ring = mmap.mmap(-1, count * _BUF_STRIDE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, rw)
        self._anchors = [ctypes.c_char.from_buffer(m) for m in (self.memory, self._ring)]
        self.base, ring_addr = (ctypes.addressof(a) for a in self._anchors)
        reg = ctypes.create_string_buffer(_BUF_REG.pack(ring_addr, count, BUFFER_GROUP, 0, 0, 0, 0))
        if _register(SYS_REGISTER, ring.fd, REGISTER_PBUF_RING, reg, 1) < 0:
            err = ctypes.get_errno()
            self.close()
            raise Refused(diagnose("io_uring_register(PBUF_RING)", err))
        self._mask, self._tail = count - 1, 0
        self._tail_word = memoryview(self._ring).cast("H")  # u16s: the tail is number 7
        self.unoffered = list(range(count - 1, -1, -1))  # pop() gives the lowest id next
        self.offered = 0
        for _ in range(min(first, count)):
            self.offer_more()
        self.publish()

    def take(self, flags: int, length: int) -> bytes:
        """The bytes a recv's CQE says it put in a pool buffer; the buffer
        goes back to the kernel at once."""
        bid = flags >> CQE_BUFFER_SHIFT
        at = bid * self.size
        data = self.memory[at:at + length]  # a copy: the buffer is reused as soon as it is back
        self.give_back(bid)
        return data

    def offer_more(self) -> None:
        """Offer one buffer more, if the pool has one (after an ENOBUFS)."""
        if self.unoffered:
            self.give_back(self.unoffered.pop())
            self.offered += 1

    def give_back(self, bid: int) -> None:
        """Offer buffer ``bid`` again (seen by the kernel once published)."""
        _BUF.pack_into(self._ring, (self._tail & self._mask) * _BUF_STRIDE, self.base + bid * self.size, self.size, bid)
        self._tail = (self._tail + 1) & 0xFFFF

    def publish(self) -> None:
        """Move the ring's tail past the entries given back: once per loop
        turn, before io_uring_enter.  A kernel that looks before that sees
        fewer buffers, at worst none: that recv completes with ENOBUFS and
        is submitted again."""
        self._tail_word[_TAIL_AT // 2] = self._tail

    def close(self) -> None:
        self._anchors.clear()  # the mappings cannot close while ctypes or a memoryview holds them
        if hasattr(self, "_tail_word"):
            self._tail_word.release()
        for m in (self.memory, self._ring):
            m.close()


# -- what the model submits, and what its completions mean ----------------------------

# user_data, the 64 bits that come back in an operation's CQE: its kind in the low
# bits, whose it is above them (a connection's key, a timeout's).
ACCEPT, RECV, SEND, WAKE, TIMER, CANCEL = range(6)
KIND_BITS, KIND = 3, 7
OUTBOX_LIMIT = loop.OUTBOX_LIMIT


def timespec(when: float) -> ctypes.Array[ctypes.c_int64]:
    """A struct __kernel_timespec for the CLOCK_MONOTONIC instant ``when``,
    rounded up: a timeout that fires must find its deadline due."""
    seconds, nanos = divmod(math.ceil(when * 1e9), 1_000_000_000)
    return (ctypes.c_int64 * 2)(seconds, nanos)


class Peer:
    """Where an accept in flight has the kernel write the client's address."""

    SIZE = 128  # a struct sockaddr_storage: room for any family

    def __init__(self) -> None:
        self._addr = ctypes.create_string_buffer(self.SIZE)
        self._len = ctypes.c_uint32(self.SIZE)

    def arm(self) -> tuple[int, int]:
        """The two addresses an accept SQE takes: the sockaddr and its length."""
        self._len.value = self.SIZE
        return ctypes.addressof(self._addr), ctypes.addressof(self._len)

    def name(self) -> str:
        """host:port, as the other models write it."""
        raw = self._addr.raw
        family = int.from_bytes(raw[:2], sys.byteorder)
        if family == socket.AF_INET6:
            return f"{socket.inet_ntop(socket.AF_INET6, raw[8:24])}:{int.from_bytes(raw[2:4], 'big')}"
        return f"{socket.inet_ntop(socket.AF_INET, raw[4:8])}:{int.from_bytes(raw[2:4], 'big')}"


def accepted(server: Server, res: int, peer: Peer) -> tuple[socket.socket, str] | None | object:
    """One accept's completion, as Server.accept() answers for an accept(2)
    call: (sock, peer), None if nothing came of it, or BACKOFF (out of
    descriptors or memory: logged; accept again after ACCEPT_BACKOFF)."""
    if res < 0:
        err = -res
        if err in RESOURCE_ERRORS:
            server.trace.event("error", kind="accept", errno=errno.errorcode[err],
                               detail=str(OSError(err, os.strerror(err))), backoff=ACCEPT_BACKOFF)
            return BACKOFF
        if err in GONE_ERRORS or err == errno.ECANCELED:
            return None
        raise OSError(err, f"accept: {os.strerror(err)}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=res)  # family given: nothing to ask
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    name = peer.name()
    server.state.accepted += 1  # only the loop's thread writes it
    server.trace.conn("accept", name)
    return sock, name


class Connection(loop.Connection):
    """One client whose recv and send are operations in flight, not calls.

    loop.Connection is told "readable" and then calls recv() itself.  Here
    the kernel has already received (``on_recv``) or sent (``on_sent``) by
    the time we hear of it, and ``submit()`` queues what the connection
    needs next.  The protocol, SLEEP, the outbox and its limit, trace events
    and close reasons are loop.Connection's, unchanged.

    In flight at any time: at most one recv (while ``reading``) and one
    send (replies leave in order).  The bytes of the send in flight are
    ``sending``, kept alive and unchanged until its completion; replies made
    meanwhile wait in the outbox for the next one.  A connection that ends
    while its recv is in flight cancels it, and is closed only once nothing
    is in flight: the descriptor must outlive every operation on it.
    """

    def __init__(self, server: Server, sock: socket.socket, peer: str, timers: loop.Timers,
                 ring: Ring, key: int) -> None:
        super().__init__(server, sock, peer, timers)
        sock.setblocking(True)  # the ring decides how to wait (see the module's rules)
        self.ring, self.key = ring, key
        self.receiving = False  # a recv is in flight
        self.sending: bytes | None = None  # what the send in flight (or the next) reads
        self.sent_from = 0  # how much of ``sending`` is sent
        self.in_flight = False  # a send is in flight
        self.cancelling = False  # its recv is being cancelled
        self.broken = False  # a recv or send failed: nothing more goes either way

    # -- what the ring reports ------------------------------------------------
    def on_recv(self, res: int, flags: int) -> None:
        """A recv is done: ``res`` bytes in a pool buffer (0: the peer closed
        its side), or -errno."""
        self.receiving = False
        data = self.ring.buffers.take(flags, res) if flags & CQE_F_BUFFER else b""
        if self.reason is not None:  # ending while it was in flight: nobody answers it now
            return
        if res < 0:
            if res == -errno.ENOBUFS:  # no buffer offered was free: offer one more; submit() asks again
                self.ring.buffers.offer_more()
                self.state.count("nobufs")
            elif res != -errno.ECANCELED:
                self._fail(close_reason(OSError(-res, os.strerror(-res))))
            return
        self.counters["reads"] += 1
        if self.msgs:
            self.trace.msg("recv", self.peer, data)
        reply = self.core.quick_echo(data)
        if reply is not None:  # the common case: one whole line to echo
            self.served += 1
            if self.sending is None and not self.outbox:
                self.sending, self.sent_from = reply, 0  # straight to the kernel: submit() sends it
                return
            self.outbox += reply  # behind what is already on its way: replies leave in order
            if len(self.outbox) >= OUTBOX_LIMIT:
                self._refresh()
            return
        self.eof = not data
        self.core.receive_data(data)
        self._answer()
        self._refresh()

    def on_sent(self, res: int) -> None:
        """A send is done: ``res`` bytes of ``sending`` went, or -errno."""
        self.in_flight = False
        data = self.sending
        assert data is not None
        if self.broken:  # it failed while this send was in flight
            self.sending = None
            return
        if res < 0:
            self.sending = None
            self._fail(close_reason(OSError(-res, os.strerror(-res))))
            return
        if self.msgs:
            with memoryview(data) as view:
                self.trace.msg("send", self.peer, view[self.sent_from:self.sent_from + res])
        self.sent_from += res
        if self.sent_from >= len(data):  # all of it (a short send is submitted again from where it stopped)
            self.sending = None
        if not self.reading and len(self.outbox) < OUTBOX_LIMIT:
            self._answer()  # requests held back by a full outbox, if any
            self._refresh()

    # -- what to ask for next -------------------------------------------------
    def submit(self) -> bool:
        """Queue what the connection needs now: a send of what waits, a recv
        while it may read, a cancel of its recv once it is ending.  True once
        it is over and nothing is in flight: forget it, then close()."""
        ring, key = self.ring, self.key << KIND_BITS
        if not self.in_flight:
            if self.sending is None and self.outbox:
                self.sending, self.sent_from = bytes(self.outbox), 0  # the kernel reads it later: a copy
                self.outbox.clear()
                self._refresh()
            if self.sending is not None:
                ring.send(self.fd, address(self.sending) + self.sent_from, len(self.sending) - self.sent_from,
                          key | SEND)
                self.in_flight = True
        if self.reason is None:
            if self.reading and not self.receiving:
                ring.recv(self.fd, key | RECV)
                self.receiving = True
            return False
        if self.in_flight:  # what was answered still goes out, then the connection closes
            return False
        if self.receiving:
            if not self.cancelling:
                ring.cancel(key | RECV, key | CANCEL)
                self.cancelling = True
            return False
        return True

    def _fail(self, reason: str) -> None:
        super()._fail(reason)  # the outbox is dropped, the reason set
        self.broken = True
        if not self.in_flight:
            self.sending = None  # nobody left to send it to

