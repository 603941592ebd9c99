"""stack.yaml (plain Swarm mode, no lab) says compose.yaml's box in Swarm's
words: the same user, read-only root, capabilities, init, logs, descriptor
limit, CPU, memory and task limits, sysctls and health check, so the two
files cannot drift apart.  (`docker stack deploy -c compose.yaml` itself is
refused by stack deploy: mem_limit, cpus, pids_limit, profiles.)"""

from __future__ import annotations

from typing import Any

import yaml

from lab import config
from lab.engine.spec import UnitSpec
from lab.plan import compose

STACK = config.ROOT / "stack.yaml"


def filled(value: Any) -> Any:
    """The stack file with its ${VARIABLES} at their defaults, as stack deploy fills them."""
    if isinstance(value, dict):
        return {k: filled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v) for v in value]
    return compose.interpolate(value, {}, STACK, 0) if isinstance(value, str) else value


def lab_spec(service: str) -> UnitSpec:
    topology = compose.load_topology(config.compose_file(), env={})
    return compose.unit_spec(topology.service(service), image="i", name="n", network="net", labels={})


def test_the_stack_keeps_compose_yamls_box() -> None:
    stack = filled(yaml.safe_load(STACK.read_text()))
    for name, lab_name in (("server", "threads"), ("swarm", "swarm")):
        svc, want = stack["services"][name], lab_spec(lab_name)
        limits = svc["deploy"]["resources"]["limits"]
        assert (svc["user"], svc["read_only"], tuple(svc["cap_drop"]), svc["init"]) == \
               (want.user, want.read_only, want.cap_drop, want.init), name
        assert {k: (v["soft"], v["hard"]) for k, v in svc["ulimits"].items()} == want.ulimits, name
        assert (svc["logging"]["driver"], svc["logging"]["options"]) == (want.log_driver, want.log_options), name
        assert {k: str(v) for k, v in svc["sysctls"].items()} == want.sysctls, name
        assert compose.seconds(svc["stop_grace_period"], name) == want.stop_grace, name
        assert int(float(limits["cpus"]) * 1e9) == want.nano_cpus, name
        assert limits["memory"].lower().rstrip("b") == str(lab_spec("epoll").mem_limit).lower(), name
        assert limits["pids"] == lab_spec("epoll").pids_limit, name
        assert svc["deploy"]["endpoint_mode"] == "dnsrr" and svc["deploy"]["restart_policy"]["condition"] == "none"
        assert set(svc["labels"]) == {"org.iolab.lab", "org.iolab.run"} == set(svc["deploy"]["labels"])
        (tmp,) = svc["volumes"]
        assert {tmp["target"]: f"size={tmp['tmpfs']['size'] >> 20}m"} == want.tmpfs and tmp["type"] == "tmpfs", name
    server = stack["services"]["server"]
    assert {**server["healthcheck"], "test": server["healthcheck"]["test"]} == \
        compose.load_topology(config.compose_file(), env={}).service("threads").spec["healthcheck"]
    assert server["command"] == ["python3", "/srv/threads/server.py"]  # LAB_MODEL picks the model
    assert "--target=server:12345" in stack["services"]["swarm"]["command"]
    assert stack["networks"]["lab"] == {"driver": "overlay", "internal": True,
                                        "labels": {"org.iolab.lab": "iolab", "org.iolab.run": "stack"}}
    assert "security_opt" not in server  # Swarm mode cannot enforce it: the file says so, not silently


def test_compose_yaml_itself_uses_what_stack_deploy_refuses() -> None:
    """Why stack.yaml exists: if compose.yaml dropped these, this test says to revisit it."""
    text = config.compose_file().read_text()
    assert all(f"  {key}:" in text for key in ("mem_limit", "cpus", "pids_limit", "profiles"))
