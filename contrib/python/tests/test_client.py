"""Operator calls against the real gateway: results, error codes, refusals on connect,
a gateway that is not there, and frames the client does not understand."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import pytest
from conftest import MakeGateway
from gateway import TOKEN, run
from websockets.asyncio.server import ServerConnection, serve

from emonk_gateway import Client, GatewayError, frames
from emonk_gateway.sync import Client as SyncClient


def free_port() -> int:
    """A port nothing listens on (bound and released; nothing else binds it meanwhile in
    practice, and a test that loses the race fails loudly rather than wrongly)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_call_and_hello(make_gateway: MakeGateway) -> None:
    gw = make_gateway()

    async def body() -> None:
        async with Client(gw.url, token=TOKEN) as c:
            assert c.connected
            assert c.hello["type"] == "hello_ok"
            assert c.hello["protocolVersion"] == 1
            assert "agent.*" in c.hello["methods"]
            pong = await c.call("gateway.ping")
            assert isinstance(pong["ts"], int) and pong["ts"] > 0
            status = await c.call("gateway.status", {})
            assert status["port"] == gw.port
            assert status["clients"]["operators"] >= 1
        assert not c.connected

    run(body())


def test_url_and_token_come_from_the_environment(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = make_gateway()
    monkeypatch.setenv("EMONK_GATEWAY_URL", gw.url)
    monkeypatch.setenv("EMONK_GATEWAY_TOKEN", TOKEN)

    async def body() -> None:
        async with Client() as c:
            assert c.url == gw.url
            assert "ts" in await c.call("gateway.ping")
            assert TOKEN not in repr(c)

    run(body())


def test_error_codes(make_gateway: MakeGateway) -> None:
    gw = make_gateway()

    async def body() -> None:
        async with Client(gw.url, token=TOKEN) as c:
            with pytest.raises(GatewayError) as unknown:
                await c.call("no.such.method")
            assert unknown.value.code == "UNKNOWN_METHOD"
            assert not unknown.value.retryable
            with pytest.raises(GatewayError) as no_agent:
                await c.call("agent.chat", {"text": "hi"})
            assert no_agent.value.code == "UNAVAILABLE"
            assert no_agent.value.retryable
            with pytest.raises(GatewayError) as not_agent:
                await c.call("events.ack", {"cursor": "1"})
            assert not_agent.value.code == "FORBIDDEN"
            with pytest.raises(GatewayError) as bad:
                await c.call("channels.send", {"channel": "telegram"})
            assert bad.value.code in ("INVALID_REQUEST", "NOT_FOUND")
            assert bad.value.message
            # The link survives error answers.
            assert "ts" in await c.call("gateway.ping")
        async with Client(gw.url, token=TOKEN, mode="readonly") as ro:
            assert "ts" in await ro.call("gateway.ping")
            with pytest.raises(GatewayError) as forbidden:
                await ro.call("channels.send", {"channel": "telegram", "to": "1", "text": "x"})
            assert forbidden.value.code == "FORBIDDEN"

    run(body())


def test_too_large_a_request_is_not_sent(make_gateway: MakeGateway) -> None:
    gw = make_gateway(gateway={"maxPayloadBytes": 65536})

    async def body() -> None:
        async with Client(gw.url, token=TOKEN) as c:
            with pytest.raises(GatewayError) as big:
                await c.call("gateway.ping", {"pad": "x" * 70000})
            assert big.value.code == "PAYLOAD_TOO_LARGE"
            assert "gateway.maxPayloadBytes" in big.value.message
            assert "ts" in await c.call("gateway.ping")

    run(body())


def test_wrong_token_fails_at_once_without_retrying(make_gateway: MakeGateway) -> None:
    gw = make_gateway()

    async def body() -> None:
        started = time.monotonic()
        with pytest.raises(GatewayError) as refused:
            async with Client(gw.url, token="wrong", connect_timeout=30):
                pass
        assert refused.value.code == "UNAUTHORIZED"
        assert "token" in refused.value.message
        assert "wrong" not in str(refused.value)
        # No backoff loop: one attempt, answered at once.
        assert time.monotonic() - started < 2

    run(body())
    assert gw.count("wrong") == 0, "the token must not reach the gateway's log"


def test_protocol_mismatch_fails_at_once(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = make_gateway()
    monkeypatch.setattr(frames, "PROTOCOL_VERSION", 2)

    async def body() -> None:
        started = time.monotonic()
        with pytest.raises(GatewayError) as refused:
            async with Client(gw.url, token=TOKEN):
                pass
        assert refused.value.code == "PROTOCOL_MISMATCH"
        assert time.monotonic() - started < 2

    run(body())


def test_no_gateway_retries_with_backoff_then_says_so(caplog: pytest.LogCaptureFixture) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    caplog.set_level(logging.WARNING, logger="emonk_gateway")

    async def body() -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as timed_out:
            async with Client(url, token=TOKEN, connect_timeout=2.5):
                pass
        elapsed = time.monotonic() - started
        assert 2.4 <= elapsed < 5, elapsed
        text = str(timed_out.value)
        assert url in text and "emonkd status" in text and "attempts" in text

    run(body())
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    # 1 s, then 2 s (cut to what is left of the 2.5 s): backoff, not a hot loop.
    assert 2 <= len(retries) <= 3, retries
    assert "retrying in 1." in retries[0]


def test_unknown_frames_are_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A fake gateway that sends everything a client may not understand before answering."""
    caplog.set_level(logging.DEBUG, logger="emonk_gateway")

    async def fake(ws: ServerConnection) -> None:
        await ws.recv()  # connect
        hello = {"type": "hello_ok", "protocolVersion": 1, "sessionId": "s", "tickIntervalMs": 0}
        await ws.send(json.dumps(hello))
        async for raw in ws:
            request = json.loads(raw)
            for junk in (
                "not json at all",
                "[1, 2, 3]",
                json.dumps({"type": "surprise", "what": 1}),
                json.dumps({"type": "event"}),
                json.dumps({"type": "response", "final": True}),
                json.dumps({"type": "response", "requestId": "nobody", "result": 1}),
                json.dumps({"type": "error", "error": {"code": "INVALID_REQUEST"}}),
                json.dumps({"type": "hello_ok"}),
                json.dumps({"type": "request", "requestId": "x", "method": "agent.x"}),
            ):
                await ws.send(junk)
            await ws.send(b"\x00binary")
            answer = {
                "type": "response",
                "requestId": request["requestId"],
                "result": {"ok": True, "extra": [1]},
                "unknownField": True,
            }
            await ws.send(json.dumps(answer))

    async def body() -> None:
        async with serve(fake, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with Client(f"ws://127.0.0.1:{port}") as c:
                assert await c.call("anything") == {"ok": True, "extra": [1]}
                assert await c.call("again") == {"ok": True, "extra": [1]}
                assert c.connected

    run(body())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for needle in (
        "unreadable frame",
        "unknown type 'surprise'",
        "binary frame",
        "could not process",
    ):
        assert needle in logged, needle


def test_sync_client(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    with SyncClient(gw.url, token=TOKEN) as c:
        assert c.hello["protocolVersion"] == 1
        assert "ts" in c.call("gateway.ping")
        with pytest.raises(GatewayError) as err:
            c.call("no.such.method")
        assert err.value.code == "UNKNOWN_METHOD"
        chunks = list(c.stream("gateway.ping"))
        assert len(chunks) == 1 and "ts" in chunks[0]
        with pytest.raises(GatewayError):
            list(c.stream("agent.chat"))
    assert not c.connected


def test_client_cannot_be_used_before_connecting() -> None:
    async def body() -> None:
        c = Client("ws://127.0.0.1:1")
        with pytest.raises(RuntimeError):
            await c.call("gateway.ping")
        with pytest.raises(RuntimeError):
            _ = c.hello

    asyncio.run(body())
