"""The two exceptions of the package.

``GatewayError`` is an answer: the gateway (or the agent behind it) said no, with one of
the protocol's error codes. ``GatewayClosed`` is the absence of an answer: the link dropped
while a call was in flight, so the call may or may not have run. Timeouts are the builtin
``TimeoutError`` (on every supported Python version, not ``asyncio.TimeoutError``).
"""

from __future__ import annotations

from typing import Any

# The protocol's error codes (emonkd-protocol(7), "ERROR CODES"). Agents may send others.
ERROR_CODES = (
    "INVALID_REQUEST",
    "UNKNOWN_METHOD",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "UNAVAILABLE",
    "TIMEOUT",
    "RATE_LIMITED",
    "PAYLOAD_TOO_LARGE",
    "PROTOCOL_MISMATCH",
    "INTERNAL",
)


class GatewayError(Exception):
    """An error answer from the gateway, or from the agent behind an ``agent.*`` method.

    Attributes:
        code: one of the protocol's codes (``UNAUTHORIZED``, ``NOT_FOUND``, ``UNAVAILABLE``,
            ``TIMEOUT``, ...), or whatever code an agent chose. Two codes come from this
            client itself: ``PAYLOAD_TOO_LARGE`` for a request larger than the gateway's
            ``maxPayload`` (nothing was sent) and ``OVERRUN`` for a stream whose chunks
            were not consumed fast enough (more than 1024 queued; the stream was dropped).
        message: the human-readable explanation.
        retryable: whether the same request may succeed later.
        retry_after_ms: when to retry, if the gateway said.

    An agent handler may raise ``GatewayError`` to answer with that code.
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        retryable: bool = False,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}" if self.message else self.code
        if self.retryable and self.retry_after_ms is not None:
            text += f" (retry after {self.retry_after_ms} ms)"
        elif self.retryable:
            text += " (may be retried)"
        return text

    def __repr__(self) -> str:
        return (
            f"GatewayError({self.code!r}, {self.message!r}, retryable={self.retryable!r}, "
            f"retry_after_ms={self.retry_after_ms!r})"
        )

    @classmethod
    def from_wire(cls, error: Any) -> GatewayError:
        """Builds the exception from a wire ``error`` object, leniently: a missing or
        malformed field gets a neutral default instead of failing."""
        if not isinstance(error, dict):
            return cls("INTERNAL", f"the gateway sent an unreadable error: {error!r}")
        code = error.get("code")
        message = error.get("message")
        after = error.get("retryAfterMs")
        return cls(
            code if isinstance(code, str) and code else "INTERNAL",
            message if isinstance(message, str) else "",
            retryable=error.get("retryable") is True,
            retry_after_ms=after
            if isinstance(after, int) and not isinstance(after, bool)
            else None,
        )

    def to_wire(self) -> dict[str, Any]:
        """The wire ``error`` object for this exception (what an agent sends back)."""
        return {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "retryAfterMs": self.retry_after_ms,
        }


class GatewayClosed(ConnectionError):
    """The link to the gateway dropped while a call was in flight, or the client was closed.

    A call that was in flight may or may not have run on the gateway; it is never resent,
    so check before repeating anything that is not idempotent (``channels.send`` with an
    ``idempotencyKey`` is). Calls made while the link is down do not raise this: they wait
    for the reconnect, up to their timeout. It is also raised once the client stopped for
    good (closed, or superseded by a newer agent connection).
    """
