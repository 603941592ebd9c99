"""lab/measure/host.py without Docker: free cores from /proc/stat readings,
less what the server, the swarm and the lab used over the same window."""

from __future__ import annotations

import pytest

from lab.errors import LabError
from lab.measure import host
from lab.measure.cgroup import Cpu
from lab.measure.host import HostLoad, Reading

TICK = host.TICK
STAT = """cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0
cpu0 1 0 1 1 0 0 0 0 0 0
cpu1 1 0 1 1 0 0 0 0 0 0
intr 1 2 3
"""


def stat(user: float, system: float = 0, idle: float = 0, steal: float = 0) -> str:
    """A /proc/stat whose busy kinds add up to the given seconds."""
    return STAT.format(user=int(user * TICK), system=int(system * TICK), idle=int(idle * TICK),
                       steal=int(steal * TICK))


def test_busy_counts_steal_and_not_idle() -> None:
    busy, cpus = host.parse_proc_stat(stat(user=10, system=5, idle=100, steal=2))
    assert cpus == 2
    assert busy == pytest.approx(17)


def test_a_proc_stat_without_cpu_lines_is_an_error() -> None:
    with pytest.raises(ValueError):
        host.parse_proc_stat("intr 1 2 3\n")


def load(readings: list[tuple[float, float, float]], cpus: int = 2) -> HostLoad:
    """A HostLoad with readings (t, host busy s, ours s) already taken."""
    h = HostLoad(lambda: "", [], own=False)
    h.readings = [Reading(t, busy, ours, cpus) for t, busy, ours in readings]
    return h


def test_free_cores_leave_out_what_the_server_and_swarm_used() -> None:
    # over 2 s the host was busy 3.8 CPU-seconds, 3.6 of them ours: 0.1 cores of other load
    h = load([(0.0, 100.0, 10.0), (1.0, 101.9, 11.8), (2.0, 103.8, 13.6)])
    assert h.free_cores() == pytest.approx(1.9)
    assert h.free_cores(0.5, 1.5) == pytest.approx(1.9)


def test_two_spinners_leave_no_core_free() -> None:
    h = load([(0.0, 0.0, 0.0), (1.0, 2.0, 0.1)])  # 1.9 cores of somebody else's work
    assert h.free_cores() == pytest.approx(0.1)


def test_free_cores_stay_between_zero_and_the_cpus() -> None:
    assert load([(0.0, 0.0, 0.0), (1.0, 0.0, 0.5)]).free_cores() == 2.0  # ours read a little late
    assert load([(0.0, 0.0, 0.0), (1.0, 3.0, 0.0)]).free_cores() == 0.0


@pytest.mark.parametrize("readings, window", [
    ([], (None, None)),
    ([(0.0, 0.0, 0.0)], (None, None)),
    ([(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)], (0.5, 0.51)),  # shorter than a sampling period
])
def test_without_readings_around_the_window_nothing_is_known(readings, window) -> None:
    assert load(readings).free_cores(*window) is None


class FakeCgroup:
    def __init__(self, cpu_s: list[float]) -> None:
        self.cpu_s = cpu_s

    def read(self) -> Cpu:
        if not self.cpu_s:
            raise LabError("gone")
        return Cpu(0.0, self.cpu_s.pop(0))


def test_readings_stop_when_a_container_goes_and_say_why() -> None:
    texts = iter([stat(user=1), stat(user=2), stat(user=3)])
    h = HostLoad(lambda: next(texts), [FakeCgroup([0.5])], own=False, every=None)
    h.start()
    h.stop()
    assert len(h.readings) == 1 and "gone" in (h.error or "")
    assert h.free_cores() is None
