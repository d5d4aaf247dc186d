"""Answering one forwarded ``agent.*`` request with its handler.

A coroutine handler's return value is the final result. An async generator's yields are
``final:false`` chunks; since an async generator cannot ``return`` a value, it ends the
answer by yielding ``Final(value)``, or by simply ending (final result ``null``).
Exceptions become error responses. A handler silent for longer than the agent's
``method_timeout`` (which should match the gateway's ``agentTimeoutMs``, whose caller has
been answered ``TIMEOUT`` by then) is cancelled, so a handler that never returns does not
stay behind forever; so is every handler whose link dropped (its caller got
``UNAVAILABLE``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable, Generic, TypeVar

from . import frames
from .client import Client
from .errors import GatewayClosed, GatewayError

log = logging.getLogger("emonk_gateway")

V = TypeVar("V")

Handler = Callable[[Any], Any]


class Final(Generic[V]):
    """Yielded by a streaming (async generator) method handler: ends the answer with
    ``value`` as the final result. Anything yielded after it is never asked for."""

    __slots__ = ("value",)

    def __init__(self, value: V) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Final({self.value!r})"


class _Silence:
    """Cancels the current task when ``reset`` is not called for ``timeout`` seconds."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.fired = False
        self._task = asyncio.current_task()
        self._timer: asyncio.TimerHandle | None = None

    def reset(self) -> None:
        self.stop()
        if self.timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(self.timeout, self._fire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self.fired = True
        if self._task is not None:
            self._task.cancel()


async def serve(
    client: Client,
    request: frames.Request,
    link: int,
    handler: Handler,
    timeout: float | None,
) -> None:
    async def send(final: bool, *, result: Any = None, error: Any = None) -> None:
        text = frames.response_frame(request.request_id, final, result=result, error=error)
        await client._send_frame(text, link)

    silence = _Silence(timeout)
    silence.reset()
    try:
        try:
            if inspect.isasyncgenfunction(handler):
                chunks = handler(request.params)
                try:
                    async for item in chunks:
                        if isinstance(item, Final):
                            silence.stop()
                            await send(True, result=item.value)
                            return
                        await send(False, result=item)
                        silence.reset()
                    silence.stop()
                    await send(True, result=None)
                finally:
                    await chunks.aclose()
            else:
                result = await handler(request.params)
                silence.stop()
                await send(True, result=result)
        except asyncio.CancelledError:
            if not silence.fired:
                raise
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            log.warning(
                "the handler for %s was silent for %g s (method_timeout); cancelled it",
                request.method,
                timeout,
            )
            err = GatewayError("TIMEOUT", f"the agent's handler for {request.method} took too long")
            await send(True, error=err.to_wire())
        except GatewayClosed:
            raise
        except GatewayError as err:
            silence.stop()
            await send(True, error=err.to_wire())
        except Exception as err:
            silence.stop()
            log.exception(
                "the handler for %s (request %s) failed", request.method, request.request_id
            )
            # The exception's text may hold anything (paths, secrets): it stays in the log.
            failure = GatewayError(
                "INTERNAL",
                f"the agent's handler for {request.method} failed ({type(err).__name__})",
            )
            await send(True, error=failure.to_wire())
    except GatewayClosed as closed:
        log.debug(
            "could not answer %s (request %s): %s", request.method, request.request_id, closed
        )
    except GatewayError as err:
        log.warning("could not answer %s (request %s): %s", request.method, request.request_id, err)
    finally:
        silence.stop()
