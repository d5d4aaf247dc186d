"""The protocol's frames as this client reads and writes them.

Reading is lenient: a frame is checked only for what the client uses, unknown fields are
ignored, and a frame that cannot be understood becomes ``None`` so the caller logs and
skips it instead of failing the link.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ._version import __version__

# The protocol version this client speaks (emonkd-protocol(7)).
PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Event:
    """One ``event`` frame from the gateway.

    Attributes:
        name: the event's name (``tick``, ``shutdown``, ``channel.status``,
            ``channel.message``, ``channel.action``, ...).
        params: the event's payload, a dict (``{}`` when the gateway sent none).
        seq: the event's number on its connection (1, 2, 3, ...); it starts again at 1
            after a reconnect.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True)
class Response:
    request_id: str
    final: bool
    result: Any
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Request:
    """A request the gateway forwards to the agent (``agent.*``)."""

    request_id: str
    method: str
    params: Any


Frame = Any


def connect_frame(
    *,
    role: str,
    mode: str,
    client_name: str,
    token: str | None,
    password: str | None,
) -> str:
    params: dict[str, Any] = {
        "protocolVersion": PROTOCOL_VERSION,
        "clientName": client_name,
        "clientVersion": __version__,
        "mode": mode,
        "role": role,
    }
    if token is not None:
        params["auth"] = {"token": token}
    elif password is not None:
        params["auth"] = {"password": password}
    return json.dumps({"type": "connect", "params": params})


def request_frame(request_id: str, method: str, params: Any) -> str:
    frame: dict[str, Any] = {"type": "request", "requestId": request_id, "method": method}
    if params is not None:
        frame["params"] = params
    return json.dumps(frame)


def response_frame(request_id: str, final: bool, *, result: Any = None, error: Any = None) -> str:
    """An agent's answer. A ``result`` of ``None`` is sent as ``"result":null``, which the
    gateway relays as a result."""
    frame: dict[str, Any] = {"type": "response", "requestId": request_id, "final": final}
    if error is not None:
        frame["error"] = error
    else:
        frame["result"] = result
    return json.dumps(frame)


def parse(text: str) -> dict[str, Any] | None:
    """The frame as a dict with a string ``type``, or ``None`` if it is not one."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return None
    return frame


def as_event(frame: dict[str, Any]) -> Event | None:
    name = frame.get("event")
    if not isinstance(name, str):
        return None
    params = frame.get("params")
    seq = frame.get("seq")
    return Event(
        name=name,
        params=params if isinstance(params, dict) else {},
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else 0,
    )


def as_response(frame: dict[str, Any]) -> Response | None:
    request_id = frame.get("requestId")
    if not isinstance(request_id, str):
        return None
    error = frame.get("error")
    return Response(
        request_id=request_id,
        # The protocol's default for a missing "final" is true.
        final=frame.get("final", True) is not False,
        result=frame.get("result"),
        error=error if error is not None else None,
    )


def as_request(frame: dict[str, Any]) -> Request | None:
    request_id = frame.get("requestId")
    method = frame.get("method")
    if not isinstance(request_id, str) or not isinstance(method, str):
        return None
    params = frame.get("params")
    return Request(request_id=request_id, method=method, params={} if params is None else params)
