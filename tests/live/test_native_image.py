"""The native reference image: compiled in the tools image, run on the base,
started from compose.yaml's `native` service like any server, and answering
the line protocol to nc from the tools container."""

from __future__ import annotations

import json

import pytest

from lab.console import say
from lab.engine import ROLE
from lab.run import tools
from lab.run.live import LiveRun


@pytest.fixture(scope="module")
def native(engine, app_image):
    with LiveRun(engine, "test", "native", say=say) as live:
        server = live.start("native")
        live.wait_healthy(server, timeout=60)
        yield live, server


def test_native_is_its_own_image_made_by_the_lab(native, engine) -> None:
    live, server = native
    image = engine.client.images.get(server.image_id())
    assert any(t.startswith("iolab/native:") for t in image.tags), image.tags
    assert image.labels[ROLE] == "native"
    assert server.image_id() != engine.client.images.get(live.ensure_image()).id
    # Compiled in the tools image; the runtime image carries the binaries, not the compiler.
    found = server.exec(["sh", "-c", "command -v iolab-echo; command -v iolab-pingpong; command -v gcc || echo no-gcc"])
    assert found.output.decode().split() == ["/usr/local/bin/iolab-echo", "/usr/local/bin/iolab-pingpong",
                                             "no-gcc"], found.output


def test_native_echo_answers_nc_from_the_tools_container(native) -> None:
    live, server = native
    got = tools.run(live, ["nc", "-q", "1", "server", "12345"], timeout=20, stdin=b"hello native\n")
    assert (got.code, got.stdout) == (0, b"hello native\n"), got
    start = json.loads(server.logs(stdout=True, stderr=False).splitlines()[0])
    assert (start["ev"], start["model"], start["port"]) == ("start", "native", 12345), start
    assert server.raw.attrs["Config"]["User"] == "10001:10001"
