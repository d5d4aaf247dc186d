"""A small fake Telegram Bot API for the tests: stdlib ``http.server`` on 127.0.0.1:0,
threaded, HTTP/1.1 keep-alive. It speaks what emonkd's connector uses, with Telegram's
wire behaviour (the Rust tests' ``tests/support/fake_telegram.rs`` is the full version):

- ``/bot<TOKEN>/<method>``, params as a JSON body (what the connector sends) or query;
  the ``{"ok":..}`` envelope with an HTTP status matching ``error_code``; a wrong token
  gets 401, an unknown method 404.
- ``getMe``, ``deleteWebhook``, ``sendMessage`` (recorded, numbered per chat).
- ``getUpdates`` with offset semantics (an offset confirms, and forgets, every earlier
  update), ``limit``, and real long polling up to ``timeout`` seconds; a newer poll ends
  an older waiting one with Telegram's 409.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_TOKEN = "123456:TEST-token"
FIRST_UPDATE_ID = 1000
# Longest long poll served, whatever the client asks, so a stop never waits long.
MAX_POLL = 5.0
CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)


class FakeTelegram:
    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.token = token
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next_update = FIRST_UPDATE_ID
        self._message_ids: dict[int, int] = {}
        self._generation = 0
        self._stopping = False
        self.sent: list[dict[str, Any]] = []
        self.answered: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests read the gateway's log, not this one

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-telegram", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # What tests do.

    def push_message(self, chat_id: int, from_id: int, text: str) -> int:
        """Queues a text message from user ``from_id`` in ``chat_id`` (private if
        positive, a group if negative); returns its update_id."""
        with self._cond:
            message_id = self._message_ids.get(chat_id, 0) + 1
            self._message_ids[chat_id] = message_id
            update_id = self._next_update
            self._next_update += 1
            chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
            if chat_id < 0:
                chat["title"] = f"Group {chat_id}"
            else:
                chat["first_name"] = f"User{chat_id}"
            self._updates.append(
                {
                    "update_id": update_id,
                    "message": {
                        "message_id": message_id,
                        "date": int(time.time()),
                        "chat": chat,
                        "from": {
                            "id": from_id,
                            "is_bot": False,
                            "first_name": f"User{from_id}",
                            "username": f"user{from_id}",
                        },
                        "text": text,
                    },
                }
            )
            self._cond.notify_all()
            return update_id

    def push_press(self, chat_id: int, message_id: int, from_id: int, data: str) -> str:
        """Queues a press by ``from_id`` on a button with ``data`` under ``message_id``
        (a ``callback_query``); returns the query id."""
        with self._cond:
            update_id = self._next_update
            self._next_update += 1
            query_id = f"q{update_id}"
            self._updates.append(
                {
                    "update_id": update_id,
                    "callback_query": {
                        "id": query_id,
                        "chat_instance": "-7",
                        "from": {"id": from_id, "is_bot": False, "first_name": f"User{from_id}"},
                        "message": {
                            "message_id": message_id,
                            "date": int(time.time()),
                            "chat": {"id": chat_id, "type": "private"},
                            "text": "...",
                        },
                        "data": data,
                    },
                }
            )
            self._cond.notify_all()
            return query_id

    def wait_answered(self, query_id: str, timeout: float = 15.0) -> None:
        """Waits until ``answerCallbackQuery`` answered ``query_id``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while query_id not in self.answered:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{query_id} not answered: {self.answered}")
                self._cond.wait(left)

    def wait_sent(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The first ``count`` sendMessage bodies, waiting for them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sent) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.sent)} of {count} messages sent: {self.sent}")
                self._cond.wait(left)
            return list(self.sent[:count])

    # HTTP.

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        target = urlsplit(http.path)
        params: dict[str, Any] = {}
        for key, value in parse_qsl(target.query):
            params[key] = _maybe_json(value)
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        if body:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = dict(parse_qsl(body.decode()))
            if isinstance(decoded, dict):
                params.update(decoded)
        parts = target.path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            status, reply = 404, _error(404, "Not Found")
        elif parts[0][3:] != self.token:
            status, reply = 401, _error(401, "Unauthorized")
        else:
            status, reply = self._method(parts[1].lower(), params)
        data = json.dumps(reply).encode()
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        http.wfile.write(data)

    def _method(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "getme":
            user = {"id": 4242000, "is_bot": True, "first_name": "Fake", "username": "fake_bot"}
            return 200, {"ok": True, "result": user}
        if method == "deletewebhook":
            return 200, {"ok": True, "result": True}
        if method == "getupdates":
            return self._get_updates(params)
        if method == "sendmessage":
            return self._send_message(params)
        if method == "answercallbackquery":
            with self._cond:
                self.answered.append(str(params.get("callback_query_id")))
                self._cond.notify_all()
            return 200, {"ok": True, "result": True}
        return 404, _error(404, "Not Found")

    def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        offset = _int(params.get("offset"))
        limit = max(1, min(100, _int(params.get("limit")) or 100))
        timeout = min(MAX_POLL, float(_int(params.get("timeout")) or 0))
        deadline = time.monotonic() + timeout
        with self._cond:
            self._generation += 1
            generation = self._generation
            self._cond.notify_all()
            if offset is not None:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
                if self._generation != generation:
                    return 409, _error(409, CONFLICT)
            return 200, {"ok": True, "result": self._updates[:limit]}

    def _send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = _int(params.get("chat_id"))
        text = params.get("text")
        if chat_id is None:
            return 400, _error(400, "Bad Request: chat not found")
        if not isinstance(text, str) or not text:
            return 400, _error(400, "Bad Request: message text is empty")
        with self._cond:
            message_id = self._message_ids.get(chat_id, 0) + 1
            self._message_ids[chat_id] = message_id
            self.sent.append(params)
            self._cond.notify_all()
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        message = {"message_id": message_id, "date": int(time.time()), "chat": chat, "text": text}
        return 200, {"ok": True, "result": message}


def _error(code: int, description: str) -> dict[str, Any]:
    return {"ok": False, "error_code": code, "description": description}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
