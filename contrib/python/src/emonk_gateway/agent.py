"""``Agent``: the program behind the gateway. It answers ``agent.*`` requests with
registered methods and handles inbound chat messages with at-least-once acknowledgement.

Delivery rules (see ``_delivery.py`` for how): a ``channel.message`` (or
``channel.action``) is acknowledged only after its handler returned. A handler that raises
(or passes ``handler_timeout``) is logged and the message is handled again after a
backoff delay (1 s doubling to 30 s), keeping its place in its chat's order; meanwhile no
later cursor is acknowledged, because an ack covers every earlier cursor. Handlers for
different chats run concurrently, at most ``max_concurrency`` at once; one chat's messages
run one after the other, in order. Messages still unacknowledged when the agent stops are
delivered again by the gateway to the next agent connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from . import _methods, frames
from ._delivery import AckLedger, ChatQueues
from .client import Client
from .errors import GatewayClosed, GatewayError
from .frames import Event, Request

log = logging.getLogger("emonk_gateway")

MessageHandler = Callable[[dict[str, Any]], Awaitable[Any]]
H = TypeVar("H", bound=Callable[..., Any])
M = TypeVar("M", bound=MessageHandler)

# Forwarded requests one agent serves at once; more are refused with RATE_LIMITED so a
# flood of calls cannot grow the task set without bound (as in the Rust client).
MAX_OPEN_REQUESTS = 4096
# Bound of one events.ack call, time waiting for a reconnect included.
ACK_TIMEOUT = 10.0
DELIVERED = ("channel.message", "channel.action")


@dataclass
class _Delivery:
    event: str
    cursor: str
    params: dict[str, Any]
    handler: MessageHandler


class Agent:
    """An agent connection (``role:"agent"``) to the gateway.

    ``url`` and ``token`` default as for ``Client`` (``$EMONK_GATEWAY_URL``,
    ``$EMONK_GATEWAY_TOKEN``). Register handlers with the decorators, then
    ``await agent.run()``; it runs until cancelled, reconnecting by itself.

    Args:
        max_concurrency: message handlers running at once, across chats (default 8).
        method_timeout: seconds a method handler may stay silent (no return, no yield)
            before it is cancelled and answered ``TIMEOUT``. Keep it at the gateway's
            ``agentTimeoutMs`` (default 120 s), after which the caller has its answer.
            ``None``: never.
        handler_timeout: seconds a message handler may run before it counts as failed
            (cancelled, retried later). ``None`` (default): no limit.
        connect_timeout: as for ``Client``; ``None`` (default) retries until the gateway
            is there, which suits an agent started alongside it.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        password: str | None = None,
        client_name: str = "python-agent",
        max_concurrency: int = 8,
        method_timeout: float | None = 120.0,
        handler_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.client = Client(
            url,
            token,
            password,
            role="agent",
            mode="operator",
            client_name=client_name,
            connect_timeout=connect_timeout,
        )
        self.max_concurrency = max_concurrency
        self.method_timeout = method_timeout
        self.handler_timeout = handler_timeout
        self._methods: dict[str, Callable[..., Any]] = {}
        self._handlers: dict[str, MessageHandler] = {}
        self._ledger = AckLedger()
        self._queues: ChatQueues[_Delivery] | None = None
        self._method_tasks: dict[tuple[int, str], asyncio.Task[None]] = {}
        self._ack_task: asyncio.Task[None] | None = None
        self._replies: dict[str, int] = {}
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"Agent(url={self.client.url!r}, methods={sorted(self._methods)!r})"

    # Registration.

    def method(self, name: str) -> Callable[[H], H]:
        """Registers ``async def h(params)`` for the ``agent.*`` method ``name``.

        Returning a value sends it as the final result (``None`` as ``null``). An async
        generator streams: each yield is a ``final:false`` chunk, ``yield Final(value)``
        ends the answer with ``value`` (simply ending gives ``null``). Raising
        ``GatewayError`` answers with its code; any other exception is logged and answered
        ``INTERNAL``.
        """
        if not name.startswith("agent."):
            raise ValueError(
                f"the gateway forwards only agent.* methods to the agent, not {name!r}"
            )

        def register(handler: H) -> H:
            self._methods[name] = handler
            return handler

        return register

    def on_message(self, handler: M) -> M:
        """Registers ``async def h(message)`` for ``channel.message``; ``message`` is the
        event's params (``cursor``, ``channel``, ``chatId``, ``text``, ``from``, ...). The
        cursor is acknowledged after ``h`` returns, never when it raised."""
        self._handlers["channel.message"] = handler
        return handler

    def on_action(self, handler: M) -> M:
        """Registers ``async def h(action)`` for ``channel.action`` (button presses), with
        the same ordering and acknowledgement as ``on_message``."""
        self._handlers["channel.action"] = handler
        return handler

    # Calls.

    async def call(self, method: str, params: Any = None, timeout: float = 10.0) -> Any:
        """``Client.call`` on the agent's connection (``channels.send`` and friends)."""
        return await self.client.call(method, params, timeout)

    def stream(
        self, method: str, params: Any = None, timeout: float = 10.0
    ) -> AsyncGenerator[Any, None]:
        """``Client.stream`` on the agent's connection."""
        return self.client.stream(method, params, timeout)

    async def reply(
        self, message: dict[str, Any], text: str, timeout: float = 30.0, **params: Any
    ) -> Any:
        """Answers ``message`` in its chat with ``channels.send``: same channel, ``to`` its
        chat, ``replyTo`` its message, in its thread. ``params`` add or override fields
        (``format``, ``buttons``, ...).

        Unless ``idempotencyKey`` is given, one is derived from the message's cursor and
        the number of replies made so far while handling it, so a message handled again
        (after a failure or a redelivery) does not send the same reply twice within the
        gateway's 10-minute idempotency window.
        """
        body: dict[str, Any] = {
            "channel": message.get("channel"),
            "to": message.get("chatId"),
            "text": text,
        }
        if message.get("messageId") is not None:
            body["replyTo"] = message["messageId"]
        if message.get("threadId") is not None:
            body["threadId"] = message["threadId"]
        cursor = message.get("cursor")
        if isinstance(cursor, str) and "idempotencyKey" not in params:
            n = self._replies.get(cursor, 0)
            if cursor in self._replies:
                self._replies[cursor] = n + 1
            body["idempotencyKey"] = f"emonk-reply-{cursor}-{n}"
        body.update(params)
        return await self.call("channels.send", body, timeout)

    # Running.

    async def run(self) -> None:
        """Connects and serves until cancelled, reconnecting by itself.

        Raises ``GatewayError`` when the gateway refuses the agent (``UNAUTHORIZED``,
        ``PROTOCOL_MISMATCH``), ``TimeoutError`` when ``connect_timeout`` passes before the
        first connection, and ``GatewayClosed`` when a newer agent connection supersedes
        this one. On the way out, running handlers are cancelled (their messages stay
        unacknowledged) and the link is closed.
        """
        if self._queues is not None:
            raise RuntimeError("this agent is already running")
        self._queues = ChatQueues(self.max_concurrency, self._handle)
        client = self.client
        client._on_request = self._on_request
        client._on_event = self._on_event
        client._on_link.append(self._on_link)
        try:
            await client.connect()
            log.info(
                "agent connected to %s (session %s)", client.url, client.hello.get("sessionId")
            )
            runner = client._runner
            if runner is not None:
                # Shielded: a cancellation of run() must reach the finally below, which
                # closes the link, rather than race with the link task's own waits.
                await asyncio.shield(runner)
            if client._terminal is not None:
                raise client._terminal
        finally:
            for task in list(self._method_tasks.values()):
                task.cancel()
            await self._queues.aclose()
            if self._ack_task is not None:
                self._ack_task.cancel()
            await client.close()
            self._queues = None

    # Messages and actions.

    def _on_event(self, event: Event) -> None:
        if event.name not in DELIVERED:
            return
        cursor = event.params.get("cursor")
        if not isinstance(cursor, str):
            log.warning("ignoring a %s without a cursor: %.200r", event.name, event.params)
            return
        if not self._ledger.add(cursor):
            # A redelivery after a reconnect of something being handled or handled already.
            self._kick_ack()
            return
        handler = self._handlers.get(event.name)
        if handler is None:
            if event.name not in self._warned:
                self._warned.add(event.name)
                log.warning(
                    "no handler registered for %s: acknowledging such events without handling them",
                    event.name,
                )
            self._ledger.handled(cursor)
            self._kick_ack()
            return
        assert self._queues is not None
        key = (event.params.get("channel"), event.params.get("chatId"))
        self._queues.submit(key, _Delivery(event.name, cursor, event.params, handler))

    async def _handle(self, item: _Delivery) -> bool:
        self._replies[item.cursor] = 0
        try:
            if self.handler_timeout is None:
                await item.handler(item.params)
            else:
                await asyncio.wait_for(item.handler(item.params), self.handler_timeout)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "the %s handler failed on cursor %s (channel %s, chat %s); it will be handled "
                "again and is not acknowledged until then",
                item.event,
                item.cursor,
                item.params.get("channel"),
                item.params.get("chatId"),
            )
            return False
        finally:
            self._replies.pop(item.cursor, None)
        self._ledger.handled(item.cursor)
        self._kick_ack()
        return True

    def _kick_ack(self) -> None:
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.ensure_future(self._ack())

    async def _ack(self) -> None:
        """Acknowledges the handled prefix until there is none; one ack in flight at a
        time, so acks reach the gateway in cursor order."""
        while True:
            cursor = self._ledger.ackable()
            if cursor is None:
                return
            try:
                await self.client.call("events.ack", {"cursor": cursor}, ACK_TIMEOUT)
            except (GatewayClosed, TimeoutError) as err:
                log.info(
                    "could not acknowledge cursor %s yet (%s); trying again once reconnected",
                    cursor,
                    err,
                )
                return
            except GatewayError as err:
                log.warning("the gateway refused events.ack %s: %s", cursor, err)
                return
            self._ledger.acked(cursor)

    def _on_link(self, up: bool) -> None:
        if up:
            self._kick_ack()
            return
        # Their callers were answered UNAVAILABLE by the gateway; nobody waits for them.
        for task in list(self._method_tasks.values()):
            task.cancel()

    # Methods.

    def _on_request(self, request: Request, link: int) -> None:
        handler = self._methods.get(request.method)
        if handler is None:
            known = ", ".join(sorted(self._methods)) or "none"
            refusal = GatewayError(
                "UNKNOWN_METHOD", f"this agent has no method {request.method!r} (it has: {known})"
            )
            self.client._spawn(self._refuse(request, link, refusal))
            return
        if len(self._method_tasks) >= MAX_OPEN_REQUESTS:
            refusal = GatewayError(
                "RATE_LIMITED",
                "the agent holds too many unanswered requests",
                retryable=True,
                retry_after_ms=1000,
            )
            self.client._spawn(self._refuse(request, link, refusal))
            return
        key = (link, request.request_id)
        task = self.client._spawn(
            _methods.serve(self.client, request, link, handler, self.method_timeout)
        )
        self._method_tasks[key] = task
        task.add_done_callback(lambda _: self._method_tasks.pop(key, None))

    async def _refuse(self, request: Request, link: int, error: GatewayError) -> None:
        text = frames.response_frame(request.request_id, True, error=error.to_wire())
        try:
            await self.client._send_frame(text, link)
        except (GatewayClosed, GatewayError) as err:
            log.debug("could not refuse request %s: %s", request.request_id, err)
