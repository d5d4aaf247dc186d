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
README = Path(__file__).resolve().parents[3] / "README.md"


def python(script: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """Runs ``script`` with this interpreter and only ``env``, output captured."""
    return subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def readme_agent() -> str:
    """The first Python block of the README's "Writing an agent in Python"."""
    text = README.read_text()
    section = text.split("## Writing an agent in Python", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_agent_answers_in_telegram(
    make_gateway: MakeGateway, telegram: FakeTelegram, tmp_path: Path
) -> None:
    code = readme_agent()
    assert len(code.strip().splitlines()) < 20
    script = tmp_path / "agent.py"
    script.write_text(code)
    gw = make_gateway(telegram=telegram)
    env = {"PATH": os.environ.get("PATH", ""), "EMONK_GATEWAY_URL": gw.url}
    env["EMONK_GATEWAY_TOKEN"] = TOKEN
    agent = python(script, env)
    try:
        telegram.push_message(4242, 4242, "hi bot")
        (sent,) = telegram.wait_sent(1, timeout=20)
        assert sent["chat_id"] == 4242 and sent["text"] == "You said: hi bot"
    finally:
        agent.kill()
        agent.communicate(timeout=10)


def test_echo_agent(make_gateway: MakeGateway, telegram: FakeTelegram, tmp_path: Path) -> None:
    gw = make_gateway(telegram=telegram)
    token_file = tmp_path / "gateway.token"
    token_file.write_text(TOKEN + "\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "EMONK_GATEWAY_URL": gw.url,
        "EMONK_GATEWAY_TOKEN_FILE": str(token_file),
    }
    agent = python(EXAMPLE, env)
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
