"""lab/measure/ without Docker: what each reading is parsed into, which
processes count as the model's, and the arithmetic over readings (CPU
interpolated between samples, cores over a window, bytes for the checks).
The inputs are copies of what the kernel and the engine write."""

from __future__ import annotations

from typing import Any

import pytest

from lab.engine import Exec
from lab.measure import analysis
from lab.measure.cgroup import Cgroup, Cpu, cgroup_values, engine_stamp, grep_files, server_cpu
from lab.measure.procs import (in_bytes, model_processes, model_rows, parse_memory_probe, parse_netstat, summarise,
                               table_sample)
from lab.measure.sampler import Sampler

# What the memory probe (one exec of grep over /proc) prints in a container
# of a forking server: docker-init (1), the server (7) and a child (9), and
# the probe itself (sh 30, grep 31), whose parent is outside the container.
PROBE_OUTPUT = """\
/proc/1/status:Name:\tdocker-init
/proc/1/status:PPid:\t0
/proc/1/status:Threads:\t1
/proc/1/status:VmRSS:\t     692 kB
/proc/1/smaps_rollup:Rss:                 692 kB
/proc/1/smaps_rollup:Pss:                 688 kB
/proc/1/smaps_rollup:Private_Clean:         0 kB
/proc/1/smaps_rollup:Private_Dirty:        48 kB
/proc/7/status:Name:\tpython3
/proc/7/status:PPid:\t1
/proc/7/status:Threads:\t3
/proc/7/status:VmRSS:\t   14000 kB
/proc/7/smaps_rollup:Rss:               14000 kB
/proc/7/smaps_rollup:Pss:               10000 kB
/proc/7/smaps_rollup:Private_Clean:      1000 kB
/proc/7/smaps_rollup:Private_Dirty:      8000 kB
/proc/9/status:Name:\tpython3
/proc/9/status:PPid:\t7
/proc/9/status:Threads:\t1
/proc/9/status:VmRSS:\t   12000 kB
/proc/9/smaps_rollup:Rss:               12000 kB
/proc/9/smaps_rollup:Pss:                3000 kB
/proc/9/smaps_rollup:Private_Clean:         0 kB
/proc/9/smaps_rollup:Private_Dirty:      2000 kB
/proc/30/status:Name:\tsh
/proc/30/status:PPid:\t0
/proc/31/status:Name:\tgrep
/proc/31/status:PPid:\t30
/proc/31/smaps_rollup:Pss:                 500 kB
"""


def test_the_memory_probe_counts_the_models_processes_only() -> None:
    procs = model_processes(parse_memory_probe(PROBE_OUTPUT))
    assert sorted(procs) == [7, 9]  # not docker-init (1), not the probe (sh 30, grep 31)
    assert {pid: p["threads"] for pid, p in procs.items()} == {7: 3, 9: 1}  # threads per process
    snap = summarise({}, procs)
    assert (snap["pss_kib"], snap["uss_kib"], snap["rss_kib"]) == (13000, 11000, 26000)
    assert (snap["proc_processes"], snap["proc_threads"], snap["memory_source"]) == (2, 4, "smaps_rollup")


def test_the_checks_read_the_same_snapshot_in_bytes() -> None:
    snap = summarise({}, model_processes(parse_memory_probe(PROBE_OUTPUT)))
    assert in_bytes(snap) == {"pss": 13000 * 1024, "uss": 11000 * 1024, "rss": 26000 * 1024,
                                      "processes": 2, "threads": 4}


def test_without_smaps_rollup_only_rss_is_known_and_the_checks_are_told() -> None:
    status_only = "\n".join(line for line in PROBE_OUTPUT.splitlines() if "/status:" in line)
    snap = summarise({}, model_processes(parse_memory_probe(status_only)))
    assert snap["memory_source"] == "status" and snap["pss_kib"] is None and snap["rss_kib"] == 26000
    assert "error" in in_bytes(snap)


def test_a_process_that_ends_between_its_two_files_is_left_out_and_counted() -> None:
    gone = "\n".join(line for line in PROBE_OUTPUT.splitlines() if not line.startswith("/proc/9/smaps"))
    snap = summarise({}, model_processes(parse_memory_probe(gone)))
    assert snap["pss_kib"] == 10000 and snap["memory_unread"] == 1 and snap["proc_processes"] == 2


def test_cgroup_files_v1_and_v2() -> None:
    assert cgroup_values({"cpuacct.usage": "123456789\n", "memory.usage_in_bytes": "4096\n"}) == \
        (123456789, 4096)
    # v1's cpu,cpuacct directory has a cpu.stat too, without usage: it must not hide cpuacct.usage
    assert cgroup_values({"cpuacct.usage": "5\n", "cpu.stat": "nr_periods 0\nthrottled_time 0\n"}) == \
        (5, None)
    assert cgroup_values({"cpu.stat": "usage_usec 2500\nuser_usec 2000\n",
                                  "memory.current": "8192\n"}) == (2_500_000, 8192)
    assert cgroup_values({}) == (None, None)


def test_the_cgroup_exec_output_is_read_by_file_name() -> None:
    text = ("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage:987654321\n"
            "/sys/fs/cgroup/memory/memory.usage_in_bytes:1048576\n")
    assert cgroup_values(grep_files(text)) == (987654321, 1048576)
    v2 = "/sys/fs/cgroup/cpu.stat:usage_usec 10\n/sys/fs/cgroup/cpu.stat:user_usec 7\n"
    assert grep_files(v2) == {"cpu.stat": "usage_usec 10\nuser_usec 7"}


def test_a_stats_reading_is_dated_by_the_engine_within_the_call() -> None:
    import time
    from datetime import datetime, timezone

    began = time.monotonic()
    ended = began + 1.2
    # the engine read its counters 0.4 s into a call that took 1.2 s
    stamp = datetime.fromtimestamp(time.time() - (time.monotonic() - began) + 0.4, timezone.utc)
    t = engine_stamp(stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), began, ended)
    assert t == pytest.approx(began + 0.4, abs=0.01)
    # another machine's clock, an hour off: kept inside the call
    late = datetime.fromtimestamp(time.time() + 3600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert engine_stamp(late, began, ended) == ended
    assert engine_stamp("", began, ended) == pytest.approx(began + 0.6)


def sampler(readings: list[Cpu]) -> Sampler:
    s = object.__new__(Sampler)
    s.readings, s.snapshots = readings, []
    return s


def test_cpu_is_interpolated_between_readings_and_counted_in_cores() -> None:
    s = sampler([Cpu(10.0, 0.0), Cpu(10.1, 0.05), Cpu(10.2, 0.15)])
    assert s.at(10.05) == pytest.approx(0.025)
    assert s.at(10.15) == pytest.approx(0.1)
    assert s.at(9.0) is None and s.at(11.0) is None
    assert s.gap_at(10.15) == pytest.approx(0.1)
    # two spans around a probe from 10.1 to 10.15: the probe's time and CPU are left out
    spans = [(Cpu(10.0, 0.0), Cpu(10.1, 0.05)), (Cpu(10.15, 0.1), Cpu(10.25, 0.15))]
    cpu = server_cpu(spans, rps=1000.0, source="host", origin=9.5)
    assert cpu["window_s"] == pytest.approx(0.2) and cpu["cpu_s"] == pytest.approx(0.1)
    assert cpu["cores"] == pytest.approx(0.5) and cpu["us_per_reply"] == pytest.approx(500.0)
    assert (cpu["from_s"], cpu["to_s"], cpu["excluded_s"]) == (0.5, 0.75, 0.05)
    assert server_cpu([], rps=1.0, source="exec", origin=None)["cores"] is None
    # the checks' figure over the same two readings means the same: cores between them
    assert analysis.cores(Cpu(10.0, 0.0), Cpu(10.2, 0.15)) == pytest.approx(0.75)
    assert analysis.cores(Cpu(10.2, 0.15), Cpu(10.2, 0.15)) is None


def test_a_window_takes_the_snapshot_wholly_inside_it_nearest_its_middle() -> None:
    s = sampler([Cpu(0.0, 0.0), Cpu(1.0, 0.5), Cpu(2.0, 1.5)])
    s.snapshots = [{"t": 0.2, "took_s": 0.01, "threads": 1}, {"t": 0.9, "took_s": 0.01, "threads": 51},
                   {"t": 1.95, "took_s": 0.2, "threads": 51}]  # the last ends after the window
    spans, snap, resolution = s.window(0.5, 1.5, 0.5, origin=0.0)
    assert [(a.t, a.cpu_s, b.t, b.cpu_s) for a, b in spans] == [(0.5, 0.25, 1.5, 1.0)]
    assert snap == {"took_s": 0.01, "threads": 51, "at_s": 0.9, "late": False}
    assert resolution == 1.0


def top_rows() -> tuple[list[str], list[list[str]]]:
    titles = ["UID", "PID", "PPID", "LWP", "C", "NLWP", "STIME", "TTY", "TIME", "CMD"]
    rows = [["10001", "100", "90", "100", "0", "1", "12:00", "?", "00:00:00", "/sbin/docker-init -- python3 server.py"],
            ["10001", "120", "100", "120", "0", "2", "12:00", "?", "00:00:00", "python3 server.py"],
            ["10001", "120", "100", "121", "0", "2", "12:00", "?", "00:00:00", "python3 server.py"],
            ["10001", "130", "120", "130", "0", "1", "12:00", "?", "00:00:00", "python3 server.py"],  # forked
            ["10001", "200", "90", "200", "0", "1", "12:00", "?", "00:00:00", "runc init"],  # an exec
            ["10001", "201", "200", "201", "0", "1", "12:00", "?", "00:00:00", "grep -q :3039 /proc/net/tcp"]]
    return titles, rows


def test_the_process_table_is_the_models_processes_only() -> None:
    titles, rows = top_rows()
    mine = model_rows([dict(zip(titles, r)) for r in rows])
    assert [(r["PID"], r["LWP"]) for r in mine] == [("120", "120"), ("120", "121"), ("130", "130")]
    sample = table_sample(titles, rows, t=5.0)
    assert sample.per_process == {120: 2, 130: 1}
    assert (sample.processes, sample.threads, sample.total_threads) == (2, 2, 3)  # threads: the main process's


def test_listen_queue_counters() -> None:
    netstat = ("TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPBacklogDrop\n"
               "TcpExt: 0 12 14 0\n"
               "IpExt: InNoRoutes\nIpExt: 0\n")
    assert parse_netstat(netstat) == {"ListenOverflows": 12, "ListenDrops": 14, "TCPBacklogDrop": 0}
    assert parse_netstat("") == {}


class FakeContainer:
    """Just enough of a lab.engine.Unit on another machine for the exec and stats fallbacks."""

    id = "f" * 64
    name = "fake"

    def __init__(self, exec_output: bytes, stats: dict[str, Any]) -> None:
        self.exec_output, self.stats_answer, self.execs = exec_output, stats, 0

    def host_cgroup(self) -> None:
        return None  # not on this machine

    def exec(self, cmd: list[str], **_: Any) -> Exec:
        self.execs += 1
        return Exec(0 if self.exec_output else 2, self.exec_output)

    def stats(self) -> dict[str, Any]:
        return self.stats_answer


def test_a_remote_cgroup_is_read_by_exec_and_else_by_the_stats_api() -> None:
    remote = Cgroup(FakeContainer(b"/sys/fs/cgroup/cpuacct/cpuacct.usage:2000000000\n"
                                          b"/sys/fs/cgroup/memory/memory.usage_in_bytes:5000\n", {}))
    assert not remote.local and remote.procs_dir is None  # no such container on this machine
    reading = remote.read()
    assert (reading.cpu_s, reading.memory, reading.source) == (2.0, 5000, "exec")
    bare = FakeContainer(b"", {"read": "", "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000}},
                               "memory_stats": {"usage": 7000}})
    cgroup = Cgroup(bare)
    first, second = cgroup.read(), cgroup.read()
    assert (first.cpu_s, first.memory, first.source) == (3.0, 7000, "stats")
    assert bare.execs == 1 and second.source == "stats"  # the exec is not tried again
