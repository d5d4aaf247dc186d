"""Chat messages from the fake Bot API through the real gateway to an ``Agent``: acks only
after the handler returned, a raising handler's message handled again, redelivery to the
next agent, the concurrency bound, order per chat, and acks that never cover a message
still being handled."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from conftest import MakeGateway
from fake_telegram import FakeTelegram
from gateway import TOKEN, Flag, Gateway, run
from test_agent_methods import agent_running, stop

from emonk_gateway import Agent, Client


async def spool(c: Client) -> dict[str, Any]:
    status = await c.call("gateway.status")
    result: dict[str, Any] = status["spool"]
    return result


async def wait_spool(c: Client, key: str, value: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (await spool(c))[key] != value:
        assert time.monotonic() < deadline, f"spool {key} never became {value}: {await spool(c)}"
        await asyncio.sleep(0.05)


async def spooled(gw: Gateway, telegram: FakeTelegram, messages: list[tuple[int, str]]) -> None:
    """Pushes ``(chat, text)`` messages and waits until the gateway spooled them all."""
    for chat, text in messages:
        telegram.push_message(chat, chat if chat > 0 else 77, text)
    async with Client(gw.url, token=TOKEN) as c:
        await wait_spool(c, "last", str(len(messages)))


def test_ack_only_after_the_handler_and_a_raising_handler_comes_again(
    make_gateway: MakeGateway, telegram: FakeTelegram
) -> None:
    gw = make_gateway(telegram=telegram)
    agent = Agent(gw.url, TOKEN)
    attempts: list[tuple[str, str]] = []
    failed_once = Flag()

    @agent.on_message
    async def handle(message: dict[str, Any]) -> None:
        attempts.append((message["cursor"], message["text"]))
        await agent.reply(message, f"re: {message['text']}")
        if message["text"] == "boom" and not failed_once.is_set():
            failed_once.set()
            raise RuntimeError("the handler failed")

    async def body() -> None:
        await spooled(gw, telegram, [(7, "boom"), (7, "after")])
        task = await agent_running(agent, gw.url)
        async with Client(gw.url, token=TOKEN) as c:
            await asyncio.wait_for(failed_once.wait(), 10)
            # Failed: nothing acknowledged, and the chat's next message waits behind it.
            assert (await spool(c))["acked"] == "0"
            assert attempts == [("1", "boom")]
            await wait_spool(c, "acked", "2")
        assert attempts == [("1", "boom"), ("1", "boom"), ("2", "after")]
        # The reply made before the failure is not sent again by the second attempt.
        assert [m["text"] for m in telegram.wait_sent(2)] == ["re: boom", "re: after"]
        await asyncio.sleep(0.3)
        assert len(telegram.sent) == 2, telegram.sent
        await stop(task)

    run(body())


def test_an_unacknowledged_message_goes_to_the_next_agent(
    make_gateway: MakeGateway, telegram: FakeTelegram
) -> None:
    gw = make_gateway(telegram=telegram)
    first = Agent(gw.url, TOKEN)
    started = Flag()

    @first.on_message
    async def never_returns(message: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(3600)

    second = Agent(gw.url, TOKEN)
    handled: list[tuple[str, str]] = []

    @second.on_message
    async def handle(message: dict[str, Any]) -> None:
        handled.append((message["cursor"], message["text"]))

    async def body() -> None:
        await spooled(gw, telegram, [(8, "hello")])
        task = await agent_running(first, gw.url)
        await asyncio.wait_for(started.wait(), 10)
        await stop(task)
        task = await agent_running(second, gw.url)
        async with Client(gw.url, token=TOKEN) as c:
            await wait_spool(c, "acked", "1")
        assert handled == [("1", "hello")]
        await stop(task)

    run(body())


def test_concurrency_bound_and_order_per_chat(
    make_gateway: MakeGateway, telegram: FakeTelegram
) -> None:
    gw = make_gateway(telegram=telegram)
    agent = Agent(gw.url, TOKEN, max_concurrency=3)
    chats = [101, 102, 103, 104, 105, -106]
    running = 0
    most = 0
    per_chat: dict[str, list[str]] = {}

    @agent.on_message
    async def handle(message: dict[str, Any]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.05)
            per_chat.setdefault(message["chatId"], []).append(message["text"])
        finally:
            running -= 1

    messages = [(chat, f"{chat}-{n}") for n in range(4) for chat in chats]

    async def body() -> None:
        await spooled(gw, telegram, messages)
        task = await agent_running(agent, gw.url)
        async with Client(gw.url, token=TOKEN) as c:
            await wait_spool(c, "acked", str(len(messages)))
        await stop(task)

    run(body())
    assert most == 3, most
    assert per_chat == {str(chat): [f"{chat}-{n}" for n in range(4)] for chat in chats}


def test_acks_never_cover_a_message_still_being_handled(
    make_gateway: MakeGateway, telegram: FakeTelegram
) -> None:
    gw = make_gateway(telegram=telegram)
    agent = Agent(gw.url, TOKEN)
    release = Flag()
    done: list[str] = []

    @agent.on_message
    async def handle(message: dict[str, Any]) -> None:
        if message["text"] == "slow":
            await release.wait()
        done.append(message["cursor"])

    async def body() -> None:
        await spooled(gw, telegram, [(201, "slow")] + [(202, f"fast {n}") for n in range(4)])
        task = await agent_running(agent, gw.url)
        async with Client(gw.url, token=TOKEN) as c:
            deadline = time.monotonic() + 10
            while len(done) < 4:
                assert time.monotonic() < deadline, done
                assert (await spool(c))["acked"] == "0"
                await asyncio.sleep(0.02)
            assert done == ["2", "3", "4", "5"]
            await asyncio.sleep(0.3)
            # Cursor 1 is still being handled: acking 5 would acknowledge it too.
            assert (await spool(c))["acked"] == "0"
            release.set()
            await wait_spool(c, "acked", "5")
        await stop(task)

    run(body())


def test_a_handler_running_across_a_gateway_restart_runs_once_and_is_acked(
    make_gateway: MakeGateway, telegram: FakeTelegram
) -> None:
    gw = make_gateway(telegram=telegram)
    agent = Agent(gw.url, TOKEN)
    release = Flag()
    calls: list[str] = []

    @agent.on_message
    async def handle(message: dict[str, Any]) -> None:
        calls.append(message["cursor"])
        await release.wait()

    async def body() -> None:
        await spooled(gw, telegram, [(301, "long job")])
        task = await agent_running(agent, gw.url)
        deadline = time.monotonic() + 10
        while not calls:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        gw.kill9()
        gw.start(port=gw.port)
        async with Client(gw.url, token=TOKEN) as c:
            # The agent is back and got cursor 1 again; it is still running, so not twice.
            deadline = time.monotonic() + 20
            while (await c.call("gateway.status"))["clients"]["agents"] != 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert (await spool(c))["acked"] == "0"
            release.set()
            await wait_spool(c, "acked", "1")
        assert calls == ["1"]
        await stop(task)

    run(body(), timeout=90)


def test_a_button_press_reaches_on_action_and_is_acked(
    make_gateway: MakeGateway, telegram: FakeTelegram
) -> None:
    gw = make_gateway(telegram=telegram)
    agent = Agent(gw.url, TOKEN)
    pressed: list[dict[str, Any]] = []
    got = Flag()

    @agent.on_action
    async def handle(action: dict[str, Any]) -> None:
        pressed.append(action)
        got.set()

    async def body() -> None:
        query = telegram.push_press(9, 5, 9, "approve:5")
        task = await agent_running(agent, gw.url)
        await asyncio.wait_for(got.wait(), 15)
        async with Client(gw.url, token=TOKEN) as c:
            await wait_spool(c, "acked", "1")
        assert pressed[0]["action"] == "approve:5"
        assert pressed[0]["messageId"] == "5"
        assert pressed[0]["chatId"] == "9"
        telegram.wait_answered(query)
        await stop(task)

    run(body())
