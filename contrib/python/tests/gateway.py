"""The real ``emonkd`` for the tests: started with a temporary config and state dir on
port 0, its port read from the ``listening on ws://HOST:PORT`` log line, its stderr kept
for assertions. Every wait is bounded.

The binary is ``$EMONKD_BIN``, else ``target/debug/emonkd`` of this repository (built by
``cargo build``, which ``.ci/run`` does before the Python tests).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Callable, TypeVar

REPO = Path(__file__).resolve().parents[3]
TOKEN = "test-gateway-token"
T = TypeVar("T")


def binary() -> str:
    path = os.environ.get("EMONKD_BIN") or str(REPO / "target" / "debug" / "emonkd")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no emonkd binary at {path}: run `cargo build` or set EMONKD_BIN")
    return path


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Waits until ``predicate()`` holds, checking every 10 ms; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        await asyncio.sleep(0.01)


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Runs one test body with a watchdog, so a hang fails the test instead of CI."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Flag:
    """An ``asyncio.Event`` created on first use, inside the running loop: tests set up
    their handlers before ``run`` starts one, and Python 3.9 binds an Event to the loop
    current at its creation."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    @property
    def _get(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def set(self) -> None:
        self._get.set()

    def is_set(self) -> bool:
        return self._get.is_set()

    async def wait(self) -> None:
        await self._get.wait()


class Gateway:
    """One gateway home (config + state dir) and the process running on it, if any."""

    def __init__(self, home: Path, config: dict[str, Any]) -> None:
        self.home = home
        self.config_path = home / "emonk.json"
        self.config_path.write_text(json.dumps(config))
        self.state_dir = home / "state"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> Gateway:
        """Starts ``emonkd run --port PORT`` and waits for its ``listening on`` line."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        seen = self.count("listening on ws://")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "EMONK_CONFIG": str(self.config_path),
            "EMONK_STATE_DIR": str(self.state_dir),
            "RUST_LOG": "info",
        }
        self.proc = subprocess.Popen(
            [binary(), "run", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(
            target=self._read, args=(self.proc,), name="emonkd-log", daemon=True
        )
        self._reader.start()
        line = self.wait_log("listening on ws://", timeout=10, nth=seen)
        match = re.search(r"listening on ws://\S+:(\d+)", line)
        assert match, line
        self.port = int(match.group(1))
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def log(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def count(self, needle: str) -> int:
        with self._cond:
            return sum(needle in line for line in self._lines)

    def wait_log(self, needle: str, timeout: float = 10.0, nth: int = 0) -> str:
        """The ``nth`` (0-based) log line containing ``needle``, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [line for line in self._lines if needle in line]
                if len(hits) > nth:
                    return hits[nth]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no log line {needle!r} within {timeout} s:\n{self.log()}"
                    )
                self._cond.wait(left)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        """``kill -9`` and wait for the process to be gone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
