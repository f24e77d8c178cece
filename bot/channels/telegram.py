"""The Telegram channel on python-telegram-bot 22: thin callbacks in, rendered messages out."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import AIORateLimiter, Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from handlers.contract import Inbound, Location
from handlers.menus import Menus
from scheduler.channels import PermanentSendError, SendResult, TransientSendError
from scheduler.drain import smooth_limiter
from storage.outbox import Outgoing

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
PAID_BROADCAST_RATE = 1000.0  # messages/s with allow_paid_broadcast (paid in Telegram Stars beyond the free 30/s)
PAID_KINDS = frozenset({"greeting", "broadcast"})
CHAT_SLOTS_KEPT = 10_000
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _seconds(value) -> float:
    """PTB 22 gives retry_after as int seconds or (opt-in) a timedelta."""
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class TelegramChannel:
    """Polling without a public URL, a webhook with one; sends under the overall and per-chat limits."""

    name = "telegram"
    rate = 30.0  # messages per second over all chats (the Bot API's broadcast limit); CHECKIN_TELEGRAM_RATE
    concurrency = 4

    def __init__(
        self,
        token: str,
        base_url: str,
        on_inbound: Callable[[Inbound], Awaitable[None]],
        *,
        now: Callable[[], datetime],
        public_url: str | None = None,
        webhook_secret: str | None = None,
        per_chat_rate: float = 1.0,
        poll_timeout: float = 10.0,
        rate: float = 30.0,
        paid_broadcast: bool = False,
        paid_rate: float = PAID_BROADCAST_RATE,
        concurrency: int = 8,
        menus: Callable[[], Menus] | None = None,
        default_language: str = "zh-CN",
    ) -> None:
        self.menus, self.default_language = menus, default_language  # setMyCommands at start
        # With paid broadcasts on, greetings and announcements go with allow_paid_broadcast at up to
        # `paid_rate`; everything else still keeps to the free `rate`, through a limiter of its own.
        self.paid_broadcast = paid_broadcast
        self.now = now  # the service's injected clock: it stamps what arrives (not the provider's `date`)
        self.rate = max(rate, paid_rate) if paid_broadcast else rate
        self._free = smooth_limiter(rate) if paid_broadcast else None
        # Sends in flight at once (to different chats): about rate x round trip is needed to keep up.
        self.concurrency = max(1, concurrency)
        self.poll_timeout = poll_timeout
        # httpx logs every request URL at INFO, and Bot API URLs carry the token; PTB's Bot
        # and httpcore log whole API answers (names, message text) at DEBUG.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        for chatty in ("telegram", "httpcore"):
            logging.getLogger(chatty).setLevel(max(logging.INFO, logging.getLogger(chatty).level))
        self.on_inbound = on_inbound
        self.public_url = public_url.rstrip("/") if public_url else None
        if self.public_url and not webhook_secret:
            # A webhook without a secret would take forged updates carrying an officer's chat id. With none
            # set, one is derived from the token: the same in every worker process, unknown without the token.
            webhook_secret = hmac.new(token.encode(), b"checkin telegram webhook secret", "sha256").hexdigest()
            log.info("telegram: no TELEGRAM_WEBHOOK_SECRET; using one derived from the bot token")
        self.webhook_secret = webhook_secret
        burst = max(2.0, self.rate / 50)  # as the outbox's limiter: small bursts
        builder = Application.builder().token(token).base_url(base_url).rate_limiter(
            AIORateLimiter(overall_max_rate=burst, overall_time_period=burst / self.rate, max_retries=0)
        ).connection_pool_size(max(8, self.concurrency + 4))
        if self.public_url:
            builder = builder.updater(None)  # updates come through our Starlette route
        self.application = builder.build()
        self.application.add_handler(CallbackQueryHandler(self._on_callback))
        self.application.add_handler(MessageHandler(
            filters.ChatType.PRIVATE & (filters.TEXT | filters.LOCATION | filters.COMMAND), self._on_message))
        # AIORateLimiter applies no per-chat limit to private chats: ours is one message a second.
        self._per_chat_rate = per_chat_rate
        self._chat_next: dict[int, float] = {}

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self, receive: bool = True) -> None:
        """Initialise; then (when `receive`) poll, or register the webhook when a public URL is set.

        `checkin tick` only sends: it must not take updates from a running service's poller.
        """
        app = self.application
        await app.initialize()
        await app.start()
        if not receive:
            return
        if self.menus is not None:
            await self.set_menus(self.menus())
        allowed = ["message", "callback_query"]
        if self.public_url:
            await app.bot.set_webhook(f"{self.public_url}{WEBHOOK_PATH}", secret_token=self.webhook_secret,
                                      allowed_updates=allowed)
            log.info("telegram: webhook mode")
        else:
            await app.bot.delete_webhook()
            await app.updater.start_polling(poll_interval=0.0, timeout=self.poll_timeout,
                                            allowed_updates=allowed)
            log.info("telegram: polling mode")

    async def set_menus(self, menus: Menus) -> None:
        """The "/" menus: people's by the app's language (the county's language for the rest), each officer's
        in their chat, and deactivated officers' chats back to the people's."""
        bot = self.application.bot
        for lang, commands in menus.people.items():
            await bot.set_my_commands([BotCommand(c, d) for c, d in commands],
                                      language_code=None if lang == self.default_language else lang.split("-")[0])
        for chat_id, commands in menus.officers.items():
            await self.set_chat_menu(chat_id, commands)
        for chat_id in menus.cleared:
            await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id))
        log.info("telegram: menus set (%s officers' chats, %s cleared)", len(menus.officers), len(menus.cleared))

    async def set_chat_menu(self, chat_id: int, commands: list[tuple[str, str]]) -> None:
        await self.application.bot.set_my_commands([BotCommand(c, d) for c, d in commands],
                                                   scope=BotCommandScopeChat(chat_id))

    async def stop(self) -> None:
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()

    async def webhook(self, request: Request) -> Response:
        """POST /telegram/webhook: refuse without the right secret header, else queue the update."""
        if self.webhook_secret and request.headers.get(SECRET_HEADER) != self.webhook_secret:
            log.warning("telegram webhook: wrong or missing secret header")
            return Response(status_code=403)
        try:
            data = await request.json()
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError):
            return Response(status_code=400)
        await self.application.update_queue.put(update)
        return Response(status_code=200)

    # ---- in: thin callbacks that convert and delegate ----------------------------------

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        location = None
        if msg.location is not None:
            location = Location(msg.location.latitude, msg.location.longitude, msg.location.horizontal_accuracy)
        reply_to = msg.reply_to_message
        await self.on_inbound(Inbound(
            channel=self.name, address=str(msg.chat.id), text=msg.text or "", location=location,
            received_at=self.now(), provider_id=str(update.update_id),
            reply_to_message_id=reply_to.message_id if reply_to and reply_to.from_user
            and reply_to.from_user.is_bot else None,
            origin_text=reply_to.text if reply_to else None,
        ))

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        try:
            await query.answer()  # stop the button's spinner at once; the result comes as a message or edit
        except TelegramError:
            log.info("telegram: could not answer callback query %s", query.id)
        message = query.message
        if message is None or message.chat.type != "private":
            return
        await self.on_inbound(Inbound(
            channel=self.name, address=str(message.chat.id), text="", button=(query.data or "")[:64],
            received_at=self.now(), provider_id=str(update.update_id),
            origin_message_id=message.message_id, origin_text=getattr(message, "text", None),
        ))

    # ---- out -------------------------------------------------------------------------

    @staticmethod
    def _markup(payload: dict):
        if payload.get("request_location"):
            label = payload.get("location_label") or "📍"
            rows = [[KeyboardButton(label, request_location=True)]]
            rows += [[KeyboardButton(str(key))] for key in payload.get("keyboard") or []]
            return ReplyKeyboardMarkup(rows, one_time_keyboard=True, resize_keyboard=True)
        buttons = payload.get("buttons") or []
        if buttons:
            return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)] for label, data in buttons])
        if payload.get("remove_keyboard"):
            return ReplyKeyboardRemove()
        return None

    async def _chat_turn(self, chat_id: int) -> None:
        """Wait for this chat's next slot (one message per 1/per_chat_rate seconds).

        One float per recently used chat, pruned as it grows: a greeting to
        100,000 chats must not leave 100,000 limiter objects behind.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._chat_next.get(chat_id, 0.0))
        self._chat_next[chat_id] = slot + 1.0 / self._per_chat_rate  # reserved before waiting: no race
        if len(self._chat_next) > CHAT_SLOTS_KEPT:
            self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        if slot > now:
            await asyncio.sleep(slot - now)

    async def send(self, message: Outgoing) -> SendResult:
        """Send (or, for an officer's action, edit) one outbox row; map Bot API errors to retry or give up."""
        try:
            chat_id = int(message.address)
        except ValueError:
            raise PermanentSendError(f"not a Telegram chat id: {message.address!r}", code="400") from None
        bot = self.application.bot
        edit = message.payload.get("edit")
        await self._chat_turn(chat_id)
        try:
            if edit:
                try:
                    text = f"{edit.get('prefix', '')}\n\n{message.body}".strip()
                    done = await bot.edit_message_text(text[:4096], chat_id=chat_id, message_id=edit["message_id"],
                                                       reply_markup=None)
                    return SendResult(provider_id=f"{chat_id}:{done.message_id}:edit")
                except BadRequest:
                    log.info("telegram: edit of message %s failed; sending instead", message.id)
            paid = self.paid_broadcast and message.kind in PAID_KINDS
            if self._free is not None and not paid:
                await self._free.acquire()
            sent = await bot.send_message(chat_id, message.body[:4096], reply_markup=self._markup(message.payload),
                                          allow_paid_broadcast=True if paid else None)
            return SendResult(provider_id=f"{chat_id}:{sent.message_id}")
        except RetryAfter as exc:
            raise TransientSendError("Too Many Requests", code="429", retry_after=_seconds(exc.retry_after)) from None
        except Forbidden as exc:
            raise PermanentSendError(str(exc), code="403") from None
        except BadRequest as exc:
            raise PermanentSendError(str(exc), code="400") from None
        except (TimedOut, NetworkError) as exc:
            raise TransientSendError(f"{type(exc).__name__}: {exc}", code="network") from None
