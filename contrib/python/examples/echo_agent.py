#!/usr/bin/env python3
"""A complete emonkd agent: it replies to every chat message by quoting it, and answers
``agent.chat`` by streaming its reply word by word.

    EMONK_GATEWAY_TOKEN_FILE=~/.config/emonk/gateway.token python echo_agent.py
    emonkd call agent.chat '{"text":"hello"}'

Environment: ``EMONK_GATEWAY_URL`` (default ``ws://127.0.0.1:18789``), and the gateway
token as ``EMONK_GATEWAY_TOKEN`` or, better for Docker secrets, a file named by
``EMONK_GATEWAY_TOKEN_FILE`` (when the gateway sets ``gateway.auth.agentToken``, that
token: it alone admits the agent role). It logs to stderr (``EMONK_LOG_LEVEL``, default INFO) and
stops cleanly, exit code 0, on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from emonk_gateway import Agent, Final, GatewayClosed, GatewayError

log = logging.getLogger("echo_agent")


def gateway_token() -> str | None:
    """The token from ``EMONK_GATEWAY_TOKEN_FILE`` (trimmed), else ``EMONK_GATEWAY_TOKEN``."""
    path = os.environ.get("EMONK_GATEWAY_TOKEN_FILE")
    if path:
        return Path(path).expanduser().read_text().strip()
    return os.environ.get("EMONK_GATEWAY_TOKEN") or None


def quote(text: str) -> str:
    lines = text.splitlines() or ["(no text)"]
    return "\n".join(f"> {line}" for line in lines)


def make_agent(token: str | None) -> Agent:
    agent = Agent(token=token, client_name="echo-agent")

    @agent.on_message
    async def echo(message: dict[str, Any]) -> None:
        sender = (message.get("from") or {}).get("name") or "you"
        await agent.reply(
            message, f"{quote(message.get('text', ''))}\n\nThat is what {sender} said."
        )

    @agent.method("agent.chat")
    async def chat(params: Any) -> AsyncIterator[Any]:
        text = params.get("text", "") if isinstance(params, dict) else ""
        reply = f"You said: {text}"
        for word in reply.split(" "):
            yield {"delta": word + " "}
        yield Final({"text": reply})

    return agent


async def main() -> int:
    try:
        token = gateway_token()
    except OSError as err:
        log.error("cannot read EMONK_GATEWAY_TOKEN_FILE: %s", err)
        return 2
    agent = make_agent(token)
    task = asyncio.ensure_future(agent.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopped")
        return 0
    except (GatewayError, GatewayClosed, TimeoutError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("EMONK_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(asyncio.run(main()))
