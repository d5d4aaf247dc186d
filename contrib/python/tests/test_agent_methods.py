"""``agent.*`` methods end to end: an operator ``Client`` calls through the real gateway
into an in-process ``Agent``: streaming order, results, error codes, cancellation, and a
handler that never returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable

import pytest
from conftest import MakeGateway
from gateway import TOKEN, Flag, run

from emonk_gateway import Agent, Client, Final, GatewayClosed, GatewayError


async def agent_running(agent: Agent, gw_url: str) -> asyncio.Task[None]:
    """Starts ``agent.run()`` and waits until the gateway counts it as the agent."""
    task = asyncio.ensure_future(agent.run())
    async with Client(gw_url, token=TOKEN) as probe:
        for _ in range(200):
            status = await probe.call("gateway.status")
            if status["clients"]["agents"] == 1:
                return task
            if task.done():
                task.result()
            await asyncio.sleep(0.025)
    raise AssertionError("the agent never connected")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await asyncio.wait_for(task, 10)
    except asyncio.CancelledError:
        pass


def with_agent(
    gw_url: str, agent: Agent, test: Callable[[Client], Awaitable[None]], timeout: float = 60
) -> None:
    async def body() -> None:
        task = await agent_running(agent, gw_url)
        try:
            async with Client(gw_url, token=TOKEN) as c:
                await test(c)
        finally:
            await stop(task)

    run(body(), timeout)


class Gates:
    """What the test methods ``agent.slow`` and ``agent.hang`` signal on."""

    def __init__(self) -> None:
        self.release = Flag()  # agent.slow answers once this is set
        self.cancelled = Flag()  # set when agent.hang was cancelled


def make_agent(url: str, gates: Gates | None = None, **kwargs: Any) -> Agent:
    """An agent with the test methods; ``agent.slow`` and ``agent.hang`` use ``gates``."""
    agent = Agent(url, TOKEN, **kwargs)
    gate = gates or Gates()

    @agent.method("agent.slow")
    async def slow(params: Any) -> Any:
        await gate.release.wait()
        return "late"

    @agent.method("agent.hang")
    async def hang(params: Any) -> Any:
        try:
            await asyncio.sleep(3600)
        finally:
            gate.cancelled.set()

    @agent.method("agent.count")
    async def count(params: Any) -> AsyncIterator[Any]:
        for i in range(params["n"]):
            yield {"i": i}
        yield Final({"total": params["n"]})

    @agent.method("agent.plain")
    async def plain(params: Any) -> AsyncIterator[Any]:
        yield "a"
        yield "b"

    @agent.method("agent.echo")
    async def echo(params: Any) -> Any:
        return params

    @agent.method("agent.none")
    async def none(params: Any) -> None:
        return None

    @agent.method("agent.refuse")
    async def refuse(params: Any) -> Any:
        raise GatewayError("NOT_FOUND", "no such thing", retryable=True, retry_after_ms=250)

    @agent.method("agent.crash")
    async def crash(params: Any) -> Any:
        raise ValueError("secret detail /etc/shadow")

    return agent


def test_streaming_order_results_and_errors(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    agent = make_agent(gw.url)

    async def test(c: Client) -> None:
        chunks = [chunk async for chunk in c.stream("agent.count", {"n": 200})]
        assert chunks == [{"i": i} for i in range(200)] + [{"total": 200}]
        # call skips the chunks and returns the final result.
        assert await c.call("agent.count", {"n": 5}) == {"total": 5}
        # A generator that just ends: its final result is null.
        assert [x async for x in c.stream("agent.plain")] == ["a", "b", None]
        assert await c.call("agent.echo", {"x": [1, "two"]}) == {"x": [1, "two"]}
        assert await c.call("agent.echo") == {}
        assert await c.call("agent.none") is None

        with pytest.raises(GatewayError) as refused:
            await c.call("agent.refuse")
        assert refused.value.code == "NOT_FOUND"
        assert refused.value.message == "no such thing"
        assert refused.value.retryable and refused.value.retry_after_ms == 250

        with pytest.raises(GatewayError) as crashed:
            await c.call("agent.crash")
        assert crashed.value.code == "INTERNAL"
        assert "ValueError" in crashed.value.message
        assert "shadow" not in crashed.value.message

        with pytest.raises(GatewayError) as unknown:
            await c.call("agent.missing")
        assert unknown.value.code == "UNKNOWN_METHOD"
        assert "agent.echo" in unknown.value.message

        # Concurrent streams keep their own order.
        async def collect(n: int) -> list[Any]:
            return [x async for x in c.stream("agent.count", {"n": n})]

        results = await asyncio.gather(*(collect(n) for n in (30, 40, 50)))
        for n, got in zip((30, 40, 50), results):
            assert got == [{"i": i} for i in range(n)] + [{"total": n}]

    with_agent(gw.url, agent, test)


def test_cancelled_call_is_forgotten(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    gates = Gates()
    agent = make_agent(gw.url, gates)

    async def test(c: Client) -> None:
        waiting = asyncio.ensure_future(c.call("agent.slow", timeout=30))
        await asyncio.sleep(0.2)
        assert len(c._pending) == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert c._pending == {}
        # The late answer arrives and is dropped; the link is fine.
        gates.release.set()
        assert await c.call("agent.echo", {"after": True}) == {"after": True}

        with pytest.raises(TimeoutError) as timed_out:
            await c.call("agent.count", {"n": 1}, timeout=0.000001)
        assert "agent.count" in str(timed_out.value)
        assert c._pending == {}

    with_agent(gw.url, agent, test)


def test_a_handler_that_never_returns_times_out_and_is_cancelled(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(gateway={"agentTimeoutMs": 500})
    gates = Gates()
    agent = make_agent(gw.url, gates, method_timeout=1.0)

    async def test(c: Client) -> None:
        t0 = time.monotonic()
        with pytest.raises(GatewayError) as timed_out:
            await c.call("agent.hang", timeout=10)
        assert timed_out.value.code == "TIMEOUT"
        assert 0.4 < time.monotonic() - t0 < 3
        # The agent does not keep the task: method_timeout cancels it.
        await asyncio.wait_for(gates.cancelled.wait(), 5)
        assert agent._method_tasks == {}

    with_agent(gw.url, agent, test)


def test_handlers_in_flight_are_cancelled_when_the_agent_stops(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    gates = Gates()
    agent = make_agent(gw.url, gates)

    async def body() -> None:
        task = await agent_running(agent, gw.url)
        async with Client(gw.url, token=TOKEN) as c:
            waiting = asyncio.ensure_future(c.call("agent.hang", timeout=10))
            await asyncio.sleep(0.3)
            await stop(task)
            await asyncio.wait_for(gates.cancelled.wait(), 5)
            with pytest.raises(GatewayError) as gone:
                await waiting
            assert gone.value.code == "UNAVAILABLE"

    run(body())


def test_a_newer_agent_supersedes_and_the_older_does_not_reconnect(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway()

    async def body() -> None:
        first = await agent_running(make_agent(gw.url), gw.url)
        second = asyncio.ensure_future(make_agent(gw.url).run())
        with pytest.raises(GatewayClosed) as superseded:
            await asyncio.wait_for(first, 10)
        assert "superseded" in str(superseded.value)
        async with Client(gw.url, token=TOKEN) as c:
            assert await c.call("agent.echo", {"v": 2}) == {"v": 2}
        await stop(second)

    run(body())
