"""A Telegram Bot API stand-in on loopback, for the tests and `checkin demo`.

It answers the methods checkin uses with objects shaped as the real ones
(`date` in seconds, `from.is_bot`, `chat`, a callback query's `chat_instance`),
keeps what the bot sent per chat, lets a test act as a user (text, commands,
button presses, locations), delivers updates by long polling or to a webhook
with the secret header, and fails on demand (429 with retry_after, 403 blocked,
5xx).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.sandbox.loopback import LoopbackServer

# Parameters PTB sends as plain strings (everything else arrives JSON-encoded).
_STRING_PARAMS = {"text", "url", "secret_token", "callback_query_id", "parse_mode", "description",
                  "short_description", "language_code", "allowed_updates_raw", "inline_message_id"}


@dataclass
class Fault:
    """What the next call of a method answers instead of succeeding."""

    status: int
    description: str
    retry_after: int | None = None


@dataclass
class SentMessage:
    """A message the bot sent, as it stands now (edits applied)."""

    message_id: int
    chat_id: int
    text: str
    reply_markup: dict | None
    date: int
    edits: list[str] = field(default_factory=list)

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of the inline keyboard, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]

    @property
    def asks_location(self) -> bool:
        rows = (self.reply_markup or {}).get("keyboard") or []
        return any(b.get("request_location") for row in rows for b in row)


class FakeTelegram(LoopbackServer):
    """The Bot API on loopback: `await start()`, then point `TELEGRAM_BASE_URL` at `base_url`."""

    def __init__(self, token: str = "123456:TEST-TOKEN", username: str = "checkin_test_bot",
                 now: Callable[[], float] = time.time, keep_sent: bool = True) -> None:
        self.keep_sent = keep_sent  # False (benchmarks): count sends, keep no messages
        self.sent_count = 0
        self.paid_count = 0
        self.send_times: list[float] = []
        self.token = token
        self.bot_id = int(token.split(":")[0])
        self.username = username
        self.now = now
        self.bot_user = {"id": self.bot_id, "is_bot": True, "first_name": "checkin", "username": username}
        self.updates: list[dict] = []
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.blocked: set[int] = set()
        self.sent: dict[int, list[SentMessage]] = defaultdict(list)
        self.calls: list[tuple[str, dict]] = []
        self.callback_answers: list[dict] = []
        self.webhook: dict | None = None
        self.webhook_deliveries: list[int] = []  # HTTP status of each delivery
        self.commands: list = []  # the default menu
        self.menus: dict[tuple, list] = {}  # (scope type, chat id, language code) -> commands
        self._update_ids = itertools.count(1)
        self.pushed = 0  # the last update_id the users made
        self.confirmed = 0  # the last update_id the bot confirmed (a getUpdates with a higher offset)
        self._message_ids = itertools.count(1)
        self._queries = itertools.count(1)
        self._changed = asyncio.Condition()
        super().__init__(Starlette(routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])]))

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What goes into TELEGRAM_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/bot"

    # ---- the user's side -------------------------------------------------------------

    def user(self, user_id: int, first_name: str = "User") -> dict:
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "zh-hans"}

    def _chat(self, user_id: int, first_name: str = "User") -> dict:
        return {"id": user_id, "type": "private", "first_name": first_name}

    async def send_text(self, user_id: int, text: str, *, reply_to: int | None = None) -> dict:
        """The user types `text` (a leading /command gets its bot_command entity)."""
        msg = self._user_message(user_id)
        msg["text"] = text
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if reply_to is not None:
            original = self.message(user_id, reply_to)
            msg["reply_to_message"] = self._bot_message_dict(original)
        return await self._push({"message": msg})

    async def send_location(self, user_id: int, latitude: float, longitude: float,
                            accuracy: float | None = None) -> dict:
        """The user shares a location."""
        msg = self._user_message(user_id)
        msg["location"] = {"latitude": latitude, "longitude": longitude}
        if accuracy is not None:
            msg["location"]["horizontal_accuracy"] = accuracy
        return await self._push({"message": msg})

    async def press(self, user_id: int, message_id: int, data: str) -> dict:
        """The user presses the inline button carrying `data` on message `message_id`."""
        original = self.message(user_id, message_id)
        if data not in [d for _, d in original.buttons]:
            raise ValueError(f"message {message_id} has no button {data!r}")
        return await self.forge_press(user_id, message_id, data)

    async def forge_press(self, user_id: int, message_id: int, data: str) -> dict:
        """A callback query with any data (hostile clients can send what they like)."""
        original = self.message(user_id, message_id)
        query = {"id": str(next(self._queries)), "from": self.user(user_id),
                 "message": self._bot_message_dict(original), "chat_instance": f"ci-{user_id}", "data": data}
        return await self._push({"callback_query": query})

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends to them answer 403 from now on."""
        self.blocked.add(user_id)

    def fail_next(self, method: str, status: int, description: str, retry_after: int | None = None,
                  times: int = 1) -> None:
        """The next `times` calls of `method` fail so."""
        self.faults[method].extend(Fault(status, description, retry_after) for _ in range(times))

    def messages(self, chat_id: int) -> list[SentMessage]:
        """What the bot has sent to a chat, oldest first."""
        return list(self.sent.get(chat_id, []))

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        for m in self.sent.get(chat_id, []):
            if m.message_id == message_id:
                return m
        raise KeyError(f"no message {message_id} in chat {chat_id}")

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (on a condition, not the clock) until `predicate()` holds."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def wait_for_confirmed(self, timeout: float = 10.0) -> None:
        """Wait until a polling bot has taken (and confirmed) every update made so far; a webhook's are at once."""
        if self.webhook is None:
            await self.wait_for(lambda: self.confirmed >= self.pushed, timeout)

    async def wait_for_messages(self, chat_id: int, count: int, timeout: float = 10.0) -> list[SentMessage]:
        """Wait until the bot has sent at least `count` messages to `chat_id`."""
        await self.wait_for(lambda: len(self.sent.get(chat_id, [])) >= count, timeout)
        return self.messages(chat_id)

    # ---- internals -------------------------------------------------------------------

    def _user_message(self, user_id: int) -> dict:
        return {"message_id": next(self._message_ids), "from": self.user(user_id),
                "chat": self._chat(user_id), "date": int(self.now())}

    def _bot_message_dict(self, m: SentMessage) -> dict:
        out = {"message_id": m.message_id, "from": self.bot_user, "chat": self._chat(m.chat_id),
               "date": m.date, "text": m.text}
        if m.edits:
            out["edit_date"] = int(self.now())
        if m.reply_markup and "inline_keyboard" in m.reply_markup:  # as Telegram: only inline keyboards come back
            out["reply_markup"] = m.reply_markup
        return out

    async def _push(self, body: dict) -> dict:
        update = {"update_id": next(self._update_ids), **body}
        self.pushed = update["update_id"]
        if self.webhook is not None:
            headers = {}
            if self.webhook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
            async with httpx.AsyncClient(timeout=30) as client:
                resp = await client.post(self.webhook["url"], json=update, headers=headers)
            self.webhook_deliveries.append(resp.status_code)
        else:
            self.updates.append(update)
        await self._notify()
        return update

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @staticmethod
    async def _params(request: Request) -> dict:
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.body()
            return json.loads(body) if body else {}
        form = await request.form()
        out = {}
        for key, value in form.items():
            if key in _STRING_PARAMS:
                out[key] = value
                continue
            try:
                out[key] = json.loads(value)
            except (TypeError, ValueError):
                out[key] = value
        return out

    @staticmethod
    def _ok(result) -> JSONResponse:
        return JSONResponse({"ok": True, "result": result})

    @staticmethod
    def _error(status: int, description: str, retry_after: int | None = None) -> JSONResponse:
        body = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return JSONResponse(body, status_code=status)

    async def _endpoint(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.path_params["method"]
        params = await self._params(request)
        if self.keep_sent:
            self.calls.append((method, params))
        if self.faults.get(method):
            fault = self.faults[method].pop(0)
            return self._error(fault.status, fault.description, fault.retry_after)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        return await handler(params)

    async def _m_sandboxStats(self, p: dict) -> JSONResponse:
        """Not Bot API: what a benchmark in another process needs (sends, paid sends, busiest second)."""
        times, busiest, j = self.send_times, 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - 1.0:
                j += 1
            busiest = max(busiest, i - j + 1)
        return self._ok({"sent": self.sent_count, "paid": self.paid_count, "busiest_second": busiest})

    async def _m_getMe(self, p: dict) -> JSONResponse:
        return self._ok({**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": False})

    async def _m_getUpdates(self, p: dict) -> JSONResponse:
        offset = int(p.get("offset") or 0)
        if offset:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            if offset - 1 > self.confirmed:  # as Telegram: asking from `offset` confirms everything before it
                self.confirmed = offset - 1
                await self._notify()
        timeout = min(float(p.get("timeout") or 0), 5.0)  # bounded long poll
        if not self.updates and timeout > 0:
            try:
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait_for(lambda: bool(self.updates)), timeout)
            except TimeoutError:
                pass
        limit = int(p.get("limit") or 100)
        return self._ok(self.updates[:limit])

    async def _m_setWebhook(self, p: dict) -> JSONResponse:
        self.webhook = {"url": p["url"], "secret_token": p.get("secret_token")}
        return self._ok(True)

    async def _m_deleteWebhook(self, p: dict) -> JSONResponse:
        self.webhook = None
        if p.get("drop_pending_updates"):
            self.updates.clear()
        return self._ok(True)

    async def _m_getWebhookInfo(self, p: dict) -> JSONResponse:
        return self._ok({"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                         "pending_update_count": len(self.updates)})

    @staticmethod
    def _menu_key(p: dict) -> tuple:
        """Menus are kept per scope and language, as Telegram keeps them."""
        scope = p.get("scope") or {"type": "default"}
        return scope.get("type"), scope.get("chat_id"), p.get("language_code") or ""

    async def _m_setMyCommands(self, p: dict) -> JSONResponse:
        commands = p.get("commands", [])
        if not isinstance(commands, list) or len(commands) > 100:
            return self._error(400, "Bad Request: too many commands specified")
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", ""))):
                return self._error(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                return self._error(400, "Bad Request: command description is empty")
        key = self._menu_key(p)
        if key[2] and not re.fullmatch(r"[a-z]{2}", key[2]):
            return self._error(400, "Bad Request: LANGUAGE_CODE_INVALID")
        self.menus[key] = commands
        if key == ("default", None, ""):
            self.commands = commands
        await self._notify()
        return self._ok(True)

    async def _m_deleteMyCommands(self, p: dict) -> JSONResponse:
        self.menus.pop(self._menu_key(p), None)
        await self._notify()
        return self._ok(True)

    def menu_for(self, chat_id: int, language_code: str = "") -> list[str]:
        """The commands a chat shows, as Telegram resolves them: the chat's own, else the default for the app's
        language, else the default."""
        for key in (("chat", chat_id, language_code), ("chat", chat_id, ""), ("default", None, language_code),
                    ("default", None, "")):
            if key in self.menus:
                return [c["command"] for c in self.menus[key]]
        return []

    def _chat_id(self, p: dict) -> int | None:
        try:
            return int(p["chat_id"])
        except (KeyError, TypeError, ValueError):
            return None

    async def _m_sendMessage(self, p: dict) -> JSONResponse:
        chat_id = self._chat_id(p)
        if chat_id is None or not str(p.get("text", "")).strip():
            return self._error(400, "Bad Request: message text is empty" if chat_id else "Bad Request: chat not found")
        if chat_id in self.blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        if len(str(p["text"])) > 4096:
            return self._error(400, "Bad Request: message is too long")
        m = SentMessage(next(self._message_ids), chat_id, str(p["text"]), p.get("reply_markup"), int(self.now()))
        self.sent_count += 1
        self.paid_count += str(p.get("allow_paid_broadcast", "")).lower() == "true"
        if not self.keep_sent:
            self.send_times.append(time.monotonic())
            return self._ok(self._bot_message_dict(m))
        self.sent[chat_id].append(m)
        await self._notify()
        return self._ok(self._bot_message_dict(m))

    async def _m_sendLocation(self, p: dict) -> JSONResponse:
        chat_id = self._chat_id(p)
        if chat_id in self.blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        m = SentMessage(next(self._message_ids), chat_id, f"[location {p.get('latitude')},{p.get('longitude')}]",
                        None, int(self.now()))
        self.sent[chat_id].append(m)
        await self._notify()
        return self._ok({**self._bot_message_dict(m), "text": None,
                         "location": {"latitude": p.get("latitude"), "longitude": p.get("longitude")}})

    async def _edit(self, p: dict, text: str | None, markup_given: bool) -> JSONResponse:
        chat_id = self._chat_id(p)
        try:
            m = self.message(chat_id, int(p["message_id"]))
        except (KeyError, TypeError, ValueError):
            return self._error(400, "Bad Request: message to edit not found")
        if text is not None:
            if text == m.text and p.get("reply_markup") == m.reply_markup:
                return self._error(400, "Bad Request: message is not modified")
            m.edits.append(m.text)
            m.text = text
        if markup_given or text is not None:
            m.reply_markup = p.get("reply_markup")
        await self._notify()
        return self._ok(self._bot_message_dict(m))

    async def _m_editMessageText(self, p: dict) -> JSONResponse:
        return await self._edit(p, str(p.get("text", "")), "reply_markup" in p)

    async def _m_editMessageReplyMarkup(self, p: dict) -> JSONResponse:
        return await self._edit(p, None, True)

    async def _m_answerCallbackQuery(self, p: dict) -> JSONResponse:
        self.callback_answers.append(p)
        await self._notify()
        return self._ok(True)
