"""The agent's side of at-least-once delivery: which cursors may be acknowledged, and
which handlers run when.

The gateway's ``events.ack`` is cumulative: acknowledging a cursor acknowledges every
earlier one. So a cursor may be acknowledged only when it and every cursor delivered
before it have been handled. ``AckLedger`` keeps the delivered, unacknowledged cursors in
delivery order (the gateway delivers in cursor order) and answers with the last cursor of
the handled prefix. It also recognises redeliveries after a reconnect, so a message that
is still being handled, or was handled but not yet acknowledged, does not run twice.

``ChatQueues`` runs handlers: one FIFO per chat, so one chat's messages are handled in
order, and a semaphore so at most ``max_concurrency`` handlers run at once across chats.
A failed handling is retried after a backoff delay, outside the semaphore, and keeps its
place at the head of its chat's queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Hashable
from typing import Callable, Generic, TypeVar

from .backoff import Backoff

log = logging.getLogger("emonk_gateway")

T = TypeVar("T")


class AckLedger:
    """Delivered cursors not yet acknowledged, oldest first, each handled or not."""

    def __init__(self) -> None:
        self._cursors: OrderedDict[str, bool] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cursors)

    def add(self, cursor: str) -> bool:
        """Records a delivery; False if the cursor is already known (a redelivery)."""
        if cursor in self._cursors:
            return False
        self._cursors[cursor] = False
        return True

    def handled(self, cursor: str) -> None:
        if cursor in self._cursors:
            self._cursors[cursor] = True

    def ackable(self) -> str | None:
        """The last cursor of the handled prefix: acknowledging it covers nothing that is
        still unhandled. None if the oldest cursor is not handled yet."""
        last = None
        for cursor, done in self._cursors.items():
            if not done:
                break
            last = cursor
        return last

    def acked(self, cursor: str) -> None:
        """The gateway confirmed ``cursor``: forget it and everything before it."""
        if cursor not in self._cursors:
            return
        while self._cursors:
            first, _ = self._cursors.popitem(last=False)
            if first == cursor:
                return


class ChatQueues(Generic[T]):
    """Runs ``handle(item)`` for submitted items, in order per key, at most
    ``max_concurrency`` at once. ``handle`` returns False to have the item retried later."""

    def __init__(self, max_concurrency: int, handle: Callable[[T], Awaitable[bool]]) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._handle = handle
        self._queues: dict[Hashable, deque[T]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}

    def submit(self, key: Hashable, item: T) -> None:
        self._queues.setdefault(key, deque()).append(item)
        if key not in self._workers:
            self._workers[key] = asyncio.ensure_future(self._work(key))

    def busy(self) -> int:
        """Items queued or running."""
        return sum(len(q) for q in self._queues.values())

    async def _work(self, key: Hashable) -> None:
        queue = self._queues[key]
        try:
            while queue:
                item = queue[0]
                backoff = Backoff()
                while True:
                    async with self._semaphore:
                        ok = await self._handle(item)
                    if ok:
                        break
                    delay = backoff.next_delay()
                    log.info("handling again in %.1f s", delay)
                    await asyncio.sleep(delay)
                queue.popleft()
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    async def aclose(self) -> None:
        """Cancels every worker and waits for them (bounded by the handlers honouring
        cancellation). Unfinished items are simply not acknowledged."""
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.wait(workers, timeout=5)
        self._queues.clear()
