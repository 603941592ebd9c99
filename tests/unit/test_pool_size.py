"""A pool's size is said in three places that must agree: model.yaml (what
the judges expect), compose.yaml (what plain `docker compose up` runs) and
the server's own default (what `python3 server.py` runs).  The lab passes
model.yaml's figure on every command it makes, so a drift shows here first."""

from __future__ import annotations

import re

import pytest

from lab import config
from lab.errors import UsageError
from lab.plan import compose, models
from lab.run.up import server_command

POOLS = sorted(n for n, m in models.all_models().items() if m.workers and m.kind == "model")


def test_there_are_pools_to_hold_to_one_size() -> None:
    assert {"prefork", "threadpool"} <= set(POOLS), POOLS


@pytest.mark.parametrize("name", POOLS)
def test_compose_model_yaml_and_server_default_agree(name: str) -> None:
    model = models.get(name)
    command = compose.load_topology(config.compose_file()).service(name).spec["command"]
    flag = command.index("--workers")
    assert int(command[flag + 1]) == model.workers, (name, command)
    root = config.find_root()
    assert root is not None
    source = (root / "services" / name / "server.py").read_text()
    default = re.search(r"iorun\.Server\(MODEL, __doc__, workers=(\d+)\)", source)
    assert default and int(default.group(1)) == model.workers, name


@pytest.mark.parametrize("name", POOLS)
def test_the_lab_runs_model_yaml_s_pool_size(name: str) -> None:
    model = models.get(name)
    assert server_command(["python3", "server.py"], "conn", None, model)[-1] == f"--workers={model.workers}"
    assert server_command(["python3", "server.py"], "conn", 2, model)[-1] == "--workers=2"


@pytest.mark.parametrize("name", ["apache-worker", "apache-event"])
def test_a_pool_shared_by_two_processes_takes_even_sizes_only(name: str) -> None:
    """Apache's threaded MPMs run 2 processes of workers/2 threads: an odd
    size is refused before anything starts, not by the server in its container."""
    model = models.get(name)
    assert model.workers_step == 2
    assert server_command(["iolab-serve", name], "conn", 6, model)[-1] == "--workers=6"
    with pytest.raises(UsageError, match=f"^{name} shares its pool among 2 processes: --workers must be "
                                         f"a multiple of 2, not 3$"):
        server_command(["iolab-serve", name], "conn", 3, model)
