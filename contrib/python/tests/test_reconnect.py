"""The link's repairs against the real gateway: ``kill -9`` and a restart on the same
port, calls that wait through an outage or time out when it lasts too long, the tick
watchdog (a stopped gateway process), and a restart announced with
``restartExpectedMs``."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from typing import Any

import pytest
from conftest import MakeGateway
from fake_telegram import FakeTelegram
from gateway import TOKEN, run, until
from test_agent_methods import agent_running, make_agent, stop

from emonk_gateway import Agent, Client, GatewayClosed, GatewayError


async def eventually_connected(c: Client, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not c.connected:
        assert time.monotonic() < deadline, "the client did not reconnect"
        await asyncio.sleep(0.02)


def test_kill9_and_restart_on_the_same_port(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    agent = make_agent(gw.url)

    async def body() -> None:
        task = await agent_running(agent, gw.url)
        async with Client(gw.url, token=TOKEN) as c:
            in_flight = asyncio.ensure_future(c.call("agent.slow", timeout=30))
            await asyncio.sleep(0.2)
            gw.kill9()
            # A call in flight when the link drops is not resent: GatewayClosed.
            with pytest.raises(GatewayClosed):
                await asyncio.wait_for(in_flight, 5)
            assert not c.connected
            # A call made during the outage waits for the reconnect.
            waiting = asyncio.ensure_future(c.call("gateway.ping", timeout=20))
            await asyncio.sleep(0.5)
            assert not waiting.done()
            gw.start(port=gw.port)
            pong = await asyncio.wait_for(waiting, 20)
            assert "ts" in pong
            assert c.connected
            # The agent reconnected too and serves again.
            deadline = time.monotonic() + 20
            while True:
                try:
                    assert await c.call("agent.echo", {"back": 1}) == {"back": 1}
                    break
                except GatewayError as err:
                    assert err.code == "UNAVAILABLE" and time.monotonic() < deadline
                    await asyncio.sleep(0.1)
        await stop(task)

    run(body(), timeout=90)


def test_a_call_times_out_when_the_outage_lasts_too_long(make_gateway: MakeGateway) -> None:
    gw = make_gateway()

    async def body() -> None:
        async with Client(gw.url, token=TOKEN) as c:
            gw.kill9()
            await until(lambda: not c.connected, 10, "the client noticed the kill")
            started = time.monotonic()
            with pytest.raises(TimeoutError) as timed_out:
                await c.call("gateway.ping", timeout=1.5)
            assert 1.4 <= time.monotonic() - started < 3
            assert "gateway.ping" in str(timed_out.value)
            assert c._pending == {}

    run(body())


def test_two_silent_tick_intervals_mean_a_dead_link(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="emonk_gateway")
    gw = make_gateway(gateway={"tickIntervalMs": 300})

    async def body() -> None:
        async with Client(gw.url, token=TOKEN) as c:
            assert c.hello["tickIntervalMs"] == 300
            # Ticks keep a quiet link alive.
            await asyncio.sleep(1.0)
            assert c.connected
            gw.signal(signal.SIGSTOP)
            try:
                stopped = time.monotonic()
                while c.connected:
                    assert time.monotonic() - stopped < 3, "the dead link was not noticed"
                    await asyncio.sleep(0.02)
                # Two intervals (600 ms) after the last frame, not much later.
                assert time.monotonic() - stopped < 1.5
            finally:
                gw.signal(signal.SIGCONT)
            await eventually_connected(c, 10)
            assert "ts" in await c.call("gateway.ping")

    run(body())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "two tick intervals" in logged


def test_restart_waits_for_restart_expected_ms(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="emonk_gateway")
    gw = make_gateway()

    async def body() -> None:
        async with Client(gw.url, token=TOKEN) as c:
            shutdowns: list[dict[str, Any]] = []

            async def watch() -> None:
                async for event in c.events("shutdown"):
                    shutdowns.append(event.params)

            watcher = asyncio.ensure_future(watch())
            await asyncio.sleep(0)
            before = c.hello["sessionId"]
            answer = await c.call("gateway.restart")
            expected = answer["restartExpectedMs"]
            started = time.monotonic()
            await until(lambda: not c.connected, 10, "the link went down for the restart")
            await eventually_connected(c, 15)
            waited = time.monotonic() - started
            assert waited >= expected / 1000 * 0.9, waited
            assert c.hello["sessionId"] != before
            assert shutdowns and shutdowns[0]["restartExpectedMs"] == expected
            watcher.cancel()

    run(body())
    logged = [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()]
    assert logged and "in 1" in logged[0], logged


def test_events_iterators_end_when_the_client_closes(make_gateway: MakeGateway) -> None:
    gw = make_gateway(gateway={"tickIntervalMs": 200})

    async def body() -> None:
        c = Client(gw.url, token=TOKEN)
        await c.connect()
        seen: list[int] = []

        async def watch() -> None:
            async for event in c.events("tick"):
                seen.append(event.seq)
                if len(seen) == 2:
                    await c.close()

        await asyncio.wait_for(watch(), 10)
        assert seen == sorted(seen) and len(seen) == 2

    run(body())


def test_a_token_refused_on_reconnect_stops_the_client_without_hammering(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway()

    async def body() -> None:
        async with Client(gw.url, token=TOKEN) as c:
            config = json.loads(gw.config_path.read_text())
            config["gateway"]["auth"]["token"] = "a-new-token"
            gw.config_path.write_text(json.dumps(config))
            gw.signal(signal.SIGHUP)  # reload: clients get 1012 and reconnect
            await until(lambda: not c.connected, 10, "the link went down for the reload")
            with pytest.raises(GatewayError) as refused:
                await c.call("gateway.ping", timeout=15)
            assert refused.value.code == "UNAUTHORIZED"
            # Stopped for good: later calls fail at once, and nothing more reaches the gateway.
            with pytest.raises(GatewayError):
                await c.call("gateway.ping", timeout=15)
            await asyncio.sleep(2.5)
        assert gw.count("refused connect") == 1, gw.log()

    run(body())


def test_an_agent_with_a_wrong_token_stops_at_once(make_gateway: MakeGateway) -> None:
    gw = make_gateway()

    async def body() -> None:
        started = time.monotonic()
        with pytest.raises(GatewayError) as refused:
            await Agent(gw.url, "wrong").run()
        assert refused.value.code == "UNAUTHORIZED"
        assert time.monotonic() - started < 2

    run(body())


def test_event_subscriptions_are_renewed_after_a_reconnect(
    make_gateway: MakeGateway, telegram: FakeTelegram
) -> None:
    gw = make_gateway(telegram=telegram)

    async def body() -> None:
        async with Client(gw.url, token=TOKEN) as c:
            await c.call("events.subscribe", {"events": ["channel.message"]})
            gw.kill9()
            await until(lambda: not c.connected, 10, "the client noticed the kill")
            gw.start(port=gw.port)
            await eventually_connected(c, 20)
            messages = c.events("channel.message")
            # The renewal is sent right after the reconnect; give it a round trip.
            await c.call("gateway.ping")
            telegram.push_message(555, 555, "after the restart")
            event = await asyncio.wait_for(messages.__anext__(), 20)
            assert event.params["text"] == "after the restart"
            await messages.aclose()

    run(body(), timeout=90)
