"""Fixtures: a factory for real gateways (cleaned up after each test) and the fake Bot API."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from fake_telegram import BOT_TOKEN, FakeTelegram
from gateway import TOKEN, Gateway

MakeGateway = Callable[..., Gateway]


def gateway_config(
    gateway: dict[str, Any] | None = None, telegram: FakeTelegram | None = None
) -> dict[str, Any]:
    """A config with token auth, ``gateway`` merged into its ``gateway`` object, and the
    Telegram connector polling ``telegram`` (1 s long polls, everyone allowed) if given."""
    config: dict[str, Any] = {"gateway": {"auth": {"token": TOKEN}, **(gateway or {})}}
    if telegram is not None:
        config["channels"] = {
            "telegram": {
                "enabled": True,
                "botToken": BOT_TOKEN,
                "apiBaseUrl": telegram.base_url,
                "pollTimeoutSecs": 1,
                "allowFrom": ["*"],
                # The tests post into groups without mentioning the bot.
                "requireMention": False,
            }
        }
    return config


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[MakeGateway]:
    """``make_gateway(gateway={...}, telegram=fake)`` starts a gateway in a fresh home."""
    started: list[Gateway] = []
    numbers = itertools.count(1)

    def make(
        gateway: dict[str, Any] | None = None, telegram: FakeTelegram | None = None
    ) -> Gateway:
        home = tmp_path / f"gw{next(numbers)}"
        home.mkdir()
        gw = Gateway(home, gateway_config(gateway, telegram))
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.cleanup()


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    yield fake
    fake.close()
