"""The asyncio client: one WebSocket link to emonkd, kept up by a background task.

The link task is the only reader of the socket. It routes responses to the call waiting
for them (each call has its own queue, removed when the call ends, however it ends), fans
events out to ``events()`` iterators, watches for a dead link (nothing heard for two tick
intervals) and reconnects with backoff, following the same rules as the Rust client in
``src/client/``. Calls made while the link is down wait for it, up to their timeout; calls
in flight when it drops fail with ``GatewayClosed`` and are never resent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from . import frames
from ._version import __version__
from .backoff import Backoff
from .errors import GatewayClosed, GatewayError
from .frames import Event, Request

log = logging.getLogger("emonk_gateway")

DEFAULT_URL = "ws://127.0.0.1:18789"
# hello_error codes that retrying cannot fix without a human changing something.
FINAL_REJECTIONS = ("UNAUTHORIZED", "PROTOCOL_MISMATCH")
# Streamed chunks one call may have queued before it is declared too slow (as in Rust).
REPLY_BACKLOG = 1024
# Events one events() iterator may have queued; later ones are dropped (and logged).
EVENT_BACKLOG = 10_000
# Bound of one connection attempt (TCP, WebSocket upgrade, hello).
OPEN_TIMEOUT = 10.0

_Item = tuple[str, Any]
# What a failed connection attempt may raise, besides a hello_error (GatewayError).
_CONNECT_ERRORS = (
    OSError,
    InvalidHandshake,
    ConnectionClosed,
    TimeoutError,
    asyncio.TimeoutError,
)  # ("chunk" | "final" | "error", value)


@dataclass
class _Call:
    method: str
    link: int
    queue: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)


@dataclass
class _Subscriber:
    names: frozenset[str]
    queue: asyncio.Queue[Event | BaseException | None]
    dropped: int = 0


@dataclass
class _LinkEnd:
    code: int | None
    reason: str


def _timeout_error(method: str, timeout: float) -> TimeoutError:
    return TimeoutError(
        f"no answer to {method!r} within {timeout:g} s; the gateway or its agent may be busy, "
        "or the gateway is unreachable: retry with a longer timeout"
    )


class Client:
    """An asyncio client for the emonkd gateway.

    ``async with Client() as c`` connects and waits for ``hello_ok`` (``c.hello``); leaving
    the block closes the link. ``url`` defaults to ``$EMONK_GATEWAY_URL``, else
    ``ws://127.0.0.1:18789``; ``token`` to ``$EMONK_GATEWAY_TOKEN`` (unless a ``password``
    is given). ``role`` is ``"operator"`` or ``"agent"`` (use ``Agent`` for the latter);
    ``mode`` is ``"operator"`` or ``"readonly"``.

    Connecting retries with backoff (1 s doubling to 30 s, with jitter) until
    ``connect_timeout`` seconds have passed (``None``: forever), then raises
    ``TimeoutError``. A refusal that retrying cannot fix (``UNAUTHORIZED``,
    ``PROTOCOL_MISMATCH``) raises ``GatewayError`` at once. Once connected, the client
    reconnects by itself with the same backoff, waits ``restartExpectedMs`` first when the
    gateway announced a restart, and treats two tick intervals of silence as a dead link.
    It stops for good (every call then raises) when closed, when the gateway refuses it as
    above on a reconnect, or when a newer agent connection supersedes it.
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
        reconnect: bool = True,
    ) -> None:
        self.url = url or os.environ.get("EMONK_GATEWAY_URL") or DEFAULT_URL
        if token is None and password is None:
            token = os.environ.get("EMONK_GATEWAY_TOKEN") or None
        self._token = token
        self._password = password
        self.role = role
        self.mode = mode
        self.client_name = client_name
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self._hello: dict[str, Any] | None = None
        self._ws: ClientConnection | None = None
        self._link = 0  # counts links; a call remembers the one it went out on
        self._ids = itertools.count(1)
        self._pending: dict[str, _Call] = {}
        self._subscribers: list[_Subscriber] = []
        self._subscribed: set[str] = set()
        self._runner: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None
        self._terminal: BaseException | None = None
        self._closing = False
        # Hooks for Agent: forwarded requests, every event, and link changes.
        self._on_request: Callable[[Request, int], None] | None = None
        self._on_event: Callable[[Event], None] | None = None
        self._on_link: list[Callable[[bool], None]] = []
        # Tasks started for the link (and by Agent), referenced until done.
        self._background: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        # Never the token or password.
        return f"Client(url={self.url!r}, role={self.role!r}, connected={self.connected})"

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def hello(self) -> dict[str, Any]:
        """The gateway's ``hello_ok`` frame of the current (or last) link."""
        if self._hello is None:
            raise RuntimeError(
                "not connected yet: use `async with Client() as c` or `await c.connect()`"
            )
        return self._hello

    @property
    def connected(self) -> bool:
        """True while a link is up (between ``hello_ok`` and its loss)."""
        return self._ws is not None

    async def connect(self) -> None:
        """Connects and waits for ``hello_ok``, retrying as described on the class."""
        if self._runner is not None:
            raise RuntimeError("this client is already connected; a closed client cannot be reused")
        self._changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = None if self.connect_timeout is None else loop.time() + self.connect_timeout
        backoff = Backoff()
        attempts = 0
        while True:
            attempts += 1
            left = OPEN_TIMEOUT if deadline is None else max(0.5, deadline - loop.time())
            try:
                ws, hello = await self._open(min(OPEN_TIMEOUT, left))
                break
            except GatewayError as refused:
                if refused.code in FINAL_REJECTIONS:
                    raise
                why: BaseException = refused
            except _CONNECT_ERRORS as failed:
                why = failed
            delay = _retry_delay(backoff, why)
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(
                    f"could not connect to the gateway at {self.url} within "
                    f"{self.connect_timeout:g} s ({attempts} attempts; last: {_describe(why)}); "
                    "check that emonkd is running (`emonkd status`) and that the URL is right"
                ) from None
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - loop.time()))
            log.warning(
                "gateway at %s not reachable (%s); retrying in %.1f s",
                self.url,
                _describe(why),
                delay,
            )
            await asyncio.sleep(delay)
        self._up(ws, hello)
        self._runner = asyncio.create_task(self._run(ws))

    async def close(self) -> None:
        """Closes the link (close code 1000) and stops reconnecting. Calls still waiting
        raise ``GatewayClosed``; ``events()`` iterators end."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close(1000, "client closing")
        runner = self._runner
        if runner is not None and not runner.done():
            runner.cancel()
            try:
                await runner
            except asyncio.CancelledError:
                pass
        self._finish(GatewayClosed("the client was closed"))

    async def call(self, method: str, params: Any = None, timeout: float = 10.0) -> Any:
        """Calls ``method`` and returns its final ``result`` (chunks of a streamed answer
        are skipped; use ``stream`` for them).

        Raises ``GatewayError`` for an error answer, ``GatewayClosed`` when the link drops
        while the call is in flight, and ``TimeoutError`` when no final answer came within
        ``timeout`` seconds, time spent waiting for a reconnect included. Cancelling the
        call forgets it; a late answer is dropped.
        """
        try:
            return await asyncio.wait_for(self._call(method, params), timeout)
        except asyncio.TimeoutError:
            raise _timeout_error(method, timeout) from None

    async def _call(self, method: str, params: Any) -> Any:
        rid, call = await self._send_request(method, params)
        try:
            while True:
                kind, value = await call.queue.get()
                if kind == "final":
                    if method == "events.subscribe" and isinstance(value, dict):
                        self._remember_subscription(value)
                    return value
                if kind == "error":
                    raise value
        finally:
            self._pending.pop(rid, None)

    async def stream(
        self, method: str, params: Any = None, timeout: float = 10.0
    ) -> AsyncGenerator[Any, None]:
        """Calls ``method`` and yields every ``result`` of its answer: the ``final:false``
        chunks in order, then the final result last.

        ``timeout`` bounds each wait: for the link and the first frame, then between two
        frames (as the gateway's ``agentTimeoutMs`` does), so a long answer that keeps
        streaming never times out. Errors as for ``call``. Leaving the loop early forgets
        the call.
        """
        try:
            rid, call = await asyncio.wait_for(self._send_request(method, params), timeout)
        except asyncio.TimeoutError:
            raise _timeout_error(method, timeout) from None
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(call.queue.get(), timeout)
                except asyncio.TimeoutError:
                    raise _timeout_error(method, timeout) from None
                if kind == "error":
                    raise value
                yield value
                if kind == "final":
                    return
        finally:
            self._pending.pop(rid, None)

    async def events(self, *names: str) -> AsyncGenerator[Event, None]:
        """Yields the gateway's events as ``Event`` (``.name``, ``.params``, ``.seq``), from
        the moment of the call, across reconnects, until the client is closed. Pass names
        to get only those (``c.events("channel.status")``). Operators get
        ``channel.message`` only after ``events.subscribe`` (renewed by the client after
        each reconnect). An iterator that falls more than 10000 events behind loses the
        newest ones (logged)."""
        sub = _Subscriber(frozenset(names), asyncio.Queue(EVENT_BACKLOG))
        if self._terminal is not None:
            return
        self._subscribers.append(sub)
        try:
            while True:
                item = await sub.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    # The link.

    async def _open(self, timeout: float) -> tuple[ClientConnection, dict[str, Any]]:
        """One connection attempt: WebSocket upgrade, ``connect``, ``hello_ok``."""
        try:
            ws = await ws_connect(
                self.url,
                open_timeout=timeout,
                # The protocol's liveness rule is the tick watchdog below; one rule, not two.
                ping_interval=None,
                close_timeout=2,
                # The gateway bounds its frames by its own maxPayload.
                max_size=None,
                compression=None,
                proxy=None,
                user_agent_header=f"emonk-gateway-python/{__version__}",
            )
        except InvalidURI as err:
            raise ValueError(
                f"invalid gateway URL {self.url!r}: {err}; use ws://HOST:PORT, "
                f"for example {DEFAULT_URL}"
            ) from None
        try:
            await ws.send(
                frames.connect_frame(
                    role=self.role,
                    mode=self.mode,
                    client_name=self.client_name,
                    token=self._token,
                    password=self._password,
                )
            )
            raw = await asyncio.wait_for(ws.recv(), timeout)
        except BaseException:
            ws.transport.abort()
            raise
        frame = frames.parse(raw) if isinstance(raw, str) else None
        if frame is not None and frame["type"] == "hello_ok":
            return ws, frame
        ws.transport.abort()
        if frame is not None and frame["type"] == "hello_error":
            refusal = GatewayError.from_wire(frame.get("error"))
            if refusal.code == "UNAUTHORIZED":
                refusal.message += (
                    "; pass the right token (EMONK_GATEWAY_TOKEN) or password, "
                    "or fix gateway.auth in the gateway's config"
                )
            elif refusal.code == "PROTOCOL_MISMATCH":
                refusal.message += (
                    "; use an emonk-gateway package of the same release as the gateway"
                )
            raise refusal
        raise InvalidHandshake(
            f"expected hello_ok from {self.url}, got {str(raw)[:200]!r}; is it emonkd?"
        )

    def _up(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self._ws = ws
        self._hello = hello
        self._link += 1
        self._notify()
        for listener in list(self._on_link):
            listener(True)

    def _down(self, end: _LinkEnd) -> None:
        self._ws = None
        closed = GatewayClosed(f"lost the connection to the gateway: {end.reason}")
        for rid, call in list(self._pending.items()):
            call.queue.put_nowait(("error", closed))
            del self._pending[rid]
        self._notify()
        for listener in list(self._on_link):
            listener(False)

    def _notify(self) -> None:
        """Wakes everything waiting for a change of link state."""
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def _finish(self, why: BaseException) -> None:
        """The client stops for good: waiting calls and events() iterators end with ``why``."""
        if self._terminal is None:
            self._terminal = why
        self._ws = None
        for call in self._pending.values():
            call.queue.put_nowait(("error", self._terminal))
        self._pending.clear()
        end: BaseException | None = None if self._closing else self._terminal
        for sub in self._subscribers:
            _offer(sub, end)
        self._subscribers.clear()
        self._notify()

    async def _run(self, ws: ClientConnection) -> None:
        backoff = Backoff()
        try:
            while True:
                end, restart_hint = await self._serve(ws)
                self._down(end)
                if self._closing:
                    return
                log.info("link to %s lost: %s", self.url, end.reason)
                if end.code == 1008 and "superseded" in end.reason.lower():
                    self._finish(
                        GatewayClosed(
                            f"{end.reason}: another agent connection took over, so this one does "
                            "not reconnect"
                        )
                    )
                    return
                if not self.reconnect:
                    self._finish(GatewayClosed(f"lost the connection to the gateway: {end.reason}"))
                    return
                if end.code == 1012 or restart_hint is not None:
                    delay = backoff.after_restart(restart_hint)
                else:
                    delay = backoff.next_delay()
                while True:
                    log.info("reconnecting to %s in %d ms", self.url, round(delay * 1000))
                    await asyncio.sleep(delay)
                    try:
                        ws, hello = await self._open(OPEN_TIMEOUT)
                        break
                    except GatewayError as refused:
                        if refused.code in FINAL_REJECTIONS:
                            log.error("giving up on %s: %s", self.url, refused)
                            self._finish(refused)
                            return
                        log.info("reconnect failed: %s", refused)
                        why: BaseException = refused
                    except _CONNECT_ERRORS as failed:
                        log.info("reconnect failed: %s", _describe(failed))
                        why = failed
                    delay = _retry_delay(backoff, why)
                if self._closing:
                    ws.transport.abort()
                    return
                backoff.reset()
                log.info("reconnected to %s (session %s)", self.url, hello.get("sessionId"))
                self._up(ws, hello)
                if self._subscribed:
                    self._spawn(self._resubscribe())
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug here must not leave callers waiting forever
            log.exception("the gateway link task failed")
            self._finish(GatewayClosed(f"the link task failed: {err!r}"))
        finally:
            if self._ws is not None:
                self._ws.transport.abort()
            self._finish(GatewayClosed("the client was closed"))

    async def _serve(self, ws: ClientConnection) -> tuple[_LinkEnd, float | None]:
        """Reads one link until it ends; returns how, and the ``restartExpectedMs`` (in
        seconds) of a ``shutdown`` event seen on it."""
        tick_ms = self.hello.get("tickIntervalMs")
        # Two silent tick intervals mean a dead link; no (or a zero) interval, no watchdog.
        dead_after = 2 * tick_ms / 1000 if isinstance(tick_ms, int) and tick_ms > 0 else None
        restart_hint: float | None = None
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), dead_after)
            except asyncio.TimeoutError:
                ws.transport.abort()
                reason = (
                    f"nothing received from the gateway for {round((dead_after or 0) * 1000)} ms "
                    "(two tick intervals); the link is presumed dead"
                )
                log.warning("%s", reason)
                return _LinkEnd(None, reason), restart_hint
            except ConnectionClosed as closed:
                return _close_end(closed), restart_hint
            if not isinstance(raw, str):
                log.warning("ignoring a binary frame from the gateway (%d bytes)", len(raw))
                continue
            hint = self._dispatch(raw)
            if hint is not None:
                restart_hint = hint

    def _dispatch(self, raw: str) -> float | None:
        """Routes one frame; returns a restart hint (seconds) from a ``shutdown`` event."""
        frame = frames.parse(raw)
        if frame is None:
            log.warning("ignoring an unreadable frame from the gateway: %.200r", raw)
            return None
        kind = frame["type"]
        if kind == "response":
            response = frames.as_response(frame)
            if response is None:
                log.warning("ignoring a response without a requestId: %.200r", raw)
            else:
                self._on_response(response)
        elif kind == "event":
            event = frames.as_event(frame)
            if event is None:
                log.warning("ignoring an event without a name: %.200r", raw)
                return None
            self._on_gateway_event(event)
            if event.name == "shutdown":
                expected = event.params.get("restartExpectedMs")
                if isinstance(expected, (int, float)) and not isinstance(expected, bool):
                    return max(0.0, float(expected) / 1000)
        elif kind == "request":
            request = frames.as_request(frame)
            if request is None or self._on_request is None:
                log.warning("ignoring a request frame this client cannot serve: %.200r", raw)
            else:
                self._on_request(request, self._link)
        elif kind == "error":
            err = GatewayError.from_wire(frame.get("error"))
            log.warning("the gateway could not process a frame this client sent: %s", err)
        else:
            log.warning("ignoring a frame of unknown type %r", kind)
        return None

    def _on_response(self, response: frames.Response) -> None:
        call = self._pending.get(response.request_id)
        if call is None:
            log.debug(
                "dropping a response for unknown or abandoned request %s", response.request_id
            )
            return
        if response.error is not None:
            # An error ends the call even on a frame marked non-final.
            call.queue.put_nowait(("error", GatewayError.from_wire(response.error)))
        elif response.final:
            call.queue.put_nowait(("final", response.result))
        elif call.queue.qsize() >= REPLY_BACKLOG:
            call.queue.put_nowait(
                (
                    "error",
                    GatewayError(
                        "OVERRUN",
                        f"the streamed answer to {call.method!r} outran its consumer "
                        f"({REPLY_BACKLOG} chunks queued); the call was abandoned",
                    ),
                )
            )
        else:
            call.queue.put_nowait(("chunk", response.result))
            return
        del self._pending[response.request_id]

    def _on_gateway_event(self, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(event)
        for sub in self._subscribers:
            if not sub.names or event.name in sub.names:
                _offer(sub, event)

    # Requests.

    async def _wait_up(self) -> tuple[ClientConnection, int]:
        """The current link, waiting for a reconnect if it is down."""
        while True:
            if self._terminal is not None:
                raise self._terminal
            if self._changed is None:
                raise RuntimeError(
                    "not connected: use `async with Client() as c` or `await c.connect()`"
                )
            if self._ws is not None:
                return self._ws, self._link
            await self._changed.wait()

    async def _send_request(self, method: str, params: Any) -> tuple[str, _Call]:
        rid = f"py-{next(self._ids)}"
        text = frames.request_frame(rid, method, params)
        while True:
            ws, link = await self._wait_up()
            self._check_size(text)
            call = _Call(method, link)
            self._pending[rid] = call
            try:
                await ws.send(text)
                return rid, call
            except ConnectionClosed:
                # Not sent: the link died under us. Wait for the next one.
                self._pending.pop(rid, None)
                await asyncio.sleep(0.05)

    async def _send_frame(self, text: str, link: int) -> None:
        """Sends a frame on link number ``link`` only (an agent's answer belongs to the
        link its request came on)."""
        ws = self._ws
        if ws is None or link != self._link:
            raise GatewayClosed("the link this request came on is gone")
        self._check_size(text)
        try:
            await ws.send(text)
        except ConnectionClosed as closed:
            raise GatewayClosed(
                f"lost the connection to the gateway: {_close_end(closed).reason}"
            ) from None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _check_size(self, text: str) -> None:
        limit = self.hello.get("maxPayload")
        size = len(text.encode())
        if isinstance(limit, int) and size > limit:
            raise GatewayError(
                "PAYLOAD_TOO_LARGE",
                f"the request is {size} bytes but the gateway accepts at most {limit} "
                "(gateway.maxPayloadBytes); nothing was sent",
            )

    def _remember_subscription(self, result: dict[str, Any]) -> None:
        events = result.get("events")
        if isinstance(events, list):
            self._subscribed = {e for e in events if isinstance(e, str)}

    async def _resubscribe(self) -> None:
        try:
            await self.call("events.subscribe", {"events": sorted(self._subscribed)})
        except (GatewayError, GatewayClosed, TimeoutError) as err:
            log.warning("could not renew the event subscription after reconnecting: %s", err)


def _offer(sub: _Subscriber, item: Event | BaseException | None) -> None:
    try:
        sub.queue.put_nowait(item)
        if sub.dropped:
            log.warning("an events() iterator caught up after %d events were dropped", sub.dropped)
            sub.dropped = 0
    except asyncio.QueueFull:
        if sub.dropped == 0:
            log.warning(
                "an events() iterator is %d events behind; dropping new ones", EVENT_BACKLOG
            )
        sub.dropped += 1


def _close_end(closed: ConnectionClosed) -> _LinkEnd:
    frame = closed.rcvd
    if frame is None:
        return _LinkEnd(None, "the connection dropped")
    text = f"code {frame.code}: {frame.reason}" if frame.reason else f"code {frame.code}"
    return _LinkEnd(frame.code, f"gateway closed the connection ({text})")


def _retry_delay(backoff: Backoff, why: BaseException) -> float:
    """The next backoff delay, but never shorter than a refusal's ``retryAfterMs`` (the
    gateway's bound on failed logins answers ``RATE_LIMITED`` with one)."""
    delay = backoff.next_delay()
    if isinstance(why, GatewayError) and why.retry_after_ms is not None:
        delay = max(delay, why.retry_after_ms / 1000)
    return delay


def _describe(err: BaseException) -> str:
    if isinstance(err, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    return str(err) or type(err).__name__


__all__ = ["DEFAULT_URL", "Client"]
