"""``examples/echo_agent.py`` end to end, as a separate process configured by the
environment: a Telegram message gets a quoting reply, ``agent.chat`` streams, SIGTERM
stops it with exit code 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import MakeGateway
from fake_telegram import FakeTelegram
from gateway import TOKEN, run

from emonk_gateway import Client

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "echo_agent.py"


def test_echo_agent(make_gateway: MakeGateway, telegram: FakeTelegram, tmp_path: Path) -> None:
    gw = make_gateway(telegram=telegram)
    token_file = tmp_path / "gateway.token"
    token_file.write_text(TOKEN + "\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "EMONK_GATEWAY_URL": gw.url,
        "EMONK_GATEWAY_TOKEN_FILE": str(token_file),
    }
    agent = subprocess.Popen(
        [sys.executable, str(EXAMPLE)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        async def body() -> None:
            async with Client(gw.url, token=TOKEN) as c:
                deadline = time.monotonic() + 20
                while (await c.call("gateway.status"))["clients"]["agents"] != 1:
                    assert agent.poll() is None, agent.communicate()
                    assert time.monotonic() < deadline, "the example agent never connected"
                    await asyncio.sleep(0.05)
                telegram.push_message(4242, 4242, "hello\nthere")
                chunks = [chunk async for chunk in c.stream("agent.chat", {"text": "hi you"})]
                assert chunks[-1] == {"text": "You said: hi you"}
                assert (
                    "".join(chunk["delta"] for chunk in chunks[:-1]).strip() == "You said: hi you"
                )

        run(body())
        (sent,) = telegram.wait_sent(1)
        assert sent["chat_id"] == 4242
        assert sent["text"].startswith("> hello\n> there\n\n")
        assert sent["reply_parameters"]["message_id"] == 1
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=10)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()
    assert agent.returncode == 0, err
    assert "stopped" in err
    assert TOKEN not in err and TOKEN not in out
