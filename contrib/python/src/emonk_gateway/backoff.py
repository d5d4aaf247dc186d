"""Reconnect delays, the same rules as the Rust client (``src/backoff.rs``): 1 s doubling
to 30 s with up to 10 % jitter (so a fleet of agents does not reconnect in lockstep),
reset after a success. After a gateway restart the first delay is the gateway's own
``restartExpectedMs`` and retries continue short, because following an in-process restart
quickly is the point."""

from __future__ import annotations

import random

INITIAL = 1.0
MAX = 30.0
# First delay after a restart whose shutdown event gave no restartExpectedMs.
RESTART_DEFAULT = 1.0
# Retry step once the expected restart time passed and the gateway was not back yet.
RESTART_RETRY = 0.25


class Backoff:
    """Delays in seconds between connection attempts."""

    def __init__(self) -> None:
        self._next = INITIAL

    def reset(self) -> None:
        """After a success: the next outage starts from the short end again."""
        self._next = INITIAL

    def next_delay(self) -> float:
        base = self._next
        self._next = min(base * 2, MAX)
        return _jitter(base)

    def after_restart(self, expected: float | None) -> float:
        """The first delay after the gateway announced a restart; later failures continue
        from ``RESTART_RETRY``."""
        self._next = RESTART_RETRY
        return _jitter(min(RESTART_DEFAULT if expected is None else expected, MAX))


def _jitter(base: float) -> float:
    return base + random.uniform(0.0, base / 10)
