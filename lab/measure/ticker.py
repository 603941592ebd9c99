"""A reading taken now and then every few seconds on a thread of its own,
until stop() or until a reading fails (its container is gone): the host's
load and a server's context switches are both read this way."""

from __future__ import annotations

import threading
from typing import Callable


class Ticker:
    def __init__(self, take: Callable[[], bool], every: float, name: str, join_s: float = 5.0) -> None:
        self.take, self.every, self.name, self.join_s = take, every, name, join_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Takes the first reading here, so that a window can open at once;
        no thread when it failed."""
        self._stop.clear()
        if self.take():
            self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every) and self.take():
            pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.join_s)
            self._thread = None
