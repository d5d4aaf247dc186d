"""A blocking client for scripts: the asyncio ``Client`` on an event loop in a background
thread (named ``emonk-gateway-sync``, joined by ``close``).

    from emonk_gateway.sync import Client

    with Client() as c:
        print(c.call("gateway.status"))
        for chunk in c.stream("agent.chat", {"text": "hi"}):
            print(chunk)

Behaviour, errors and timeouts are those of ``emonk_gateway.Client``; the link reconnects
in the background between calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from . import client as aio

T = TypeVar("T")

# How long close() waits for the loop thread to finish.
JOIN_TIMEOUT = 5.0


class Client:
    """Blocking counterpart of ``emonk_gateway.Client`` with ``call`` and ``stream``.

    Same arguments. ``with Client(...) as c`` connects (or call ``connect()``; the first
    ``call`` or ``stream`` connects too) and ``close()`` ends the link and the thread.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        password: str | None = None,
        role: str = "operator",
        mode: str = "operator",
        client_name: str = "python",
        *,
        connect_timeout: float | None = 30.0,
    ) -> None:
        self._client = aio.Client(
            url, token, password, role, mode, client_name, connect_timeout=connect_timeout
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connected = False

    def __repr__(self) -> str:
        return f"sync.{self._client!r}"

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def hello(self) -> dict[str, Any]:
        """The gateway's ``hello_ok`` frame of the current (or last) link."""
        return self._client.hello

    @property
    def connected(self) -> bool:
        return self._client.connected

    def connect(self) -> None:
        """Starts the loop thread and connects, as ``emonk_gateway.Client.connect``."""
        if self._connected:
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="emonk-gateway-sync", daemon=True
            )
            self._thread.start()
        self._run(self._client.connect())
        self._connected = True

    def call(self, method: str, params: Any = None, timeout: float = 10.0) -> Any:
        """Blocking ``Client.call``: the final result of ``method``."""
        self.connect()
        return self._run(self._client.call(method, params, timeout))

    def stream(self, method: str, params: Any = None, timeout: float = 10.0) -> Iterator[Any]:
        """Blocking ``Client.stream``: yields every chunk, the final result last."""
        self.connect()
        chunks = self._client.stream(method, params, timeout)
        try:
            while True:
                try:
                    yield self._run(_next(chunks))
                except StopAsyncIteration:
                    return
        finally:
            if self._loop is not None and not self._loop.is_closed():
                self._run(chunks.aclose())

    def close(self) -> None:
        """Closes the link, stops the loop and joins its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or loop.is_closed():
            return
        try:
            self._run(self._client.close())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(JOIN_TIMEOUT)
            if thread is None or not thread.is_alive():
                loop.close()
            self._connected = False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            raise RuntimeError("not connected: use `with Client() as c` or `c.connect()`")
        # Every coroutine run here bounds itself (the call's timeout, connect_timeout).
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


async def _next(chunks: AsyncIterator[T]) -> T:
    return await chunks.__anext__()
