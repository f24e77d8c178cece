"""The running service's parts wired together: channels, router, outbox, clock job, web routes."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.routing import Route

from bot.inbox import Inbox
from bot.runtime import Runtime
from handlers import voice_calls
from handlers.contract import Inbound
from handlers.failures import delivery_failed
from handlers.menus import Menus, menus
from handlers.router import Handled
from scheduler.channels import Channel, SendError
from scheduler.drain import Outbox
from scheduler.ticker import Ticker
from storage import outbox as outbox_rows
from storage.db import session_scope

if TYPE_CHECKING:
    from bot.calls import CallDesk
    from bot.channels.sms import SmsChannel
    from bot.channels.telegram import TelegramChannel
    from bot.channels.tencent_sms import TencentSmsChannel
    from bot.channels.voice import VoiceChannel

log = logging.getLogger(__name__)


class Stack:
    """Inbound is stored and handled by the inbox's workers, the outbox drained at once; the clock job does the rest.

    Nothing here touches the database on the event loop: the inbox and the
    outbox's drain work in threads, status callbacks and menus too.
    """

    def __init__(self, rt: Runtime, *, sweeps: bool = True, poll_timeout: float = 10.0) -> None:
        self.rt = rt
        self.inbox = Inbox(rt.engine, rt.router, rt.clock.now, self._handled)
        self._menus: set[asyncio.Task] = set()  # officers' menus being set after a /start
        s = rt.settings
        self.channels: dict[str, Channel] = {}
        self.telegram: TelegramChannel | None = None
        if s.telegram_enabled:  # a channel's library (16 MB for Telegram's) is imported only when it is configured
            from bot.channels.telegram import TelegramChannel

            self.telegram = TelegramChannel(
                s.telegram_bot_token, s.telegram_base_url, self.handle_inbound, now=rt.clock.now,
                public_url=s.public_url, webhook_secret=s.telegram_webhook_secret,
                per_chat_rate=s.telegram_chat_rate, poll_timeout=poll_timeout, rate=s.telegram_rate,
                paid_broadcast=s.telegram_paid_broadcast, concurrency=s.telegram_concurrency,
                menus=self.menus, default_language=s.language,
            )
            self.channels["telegram"] = self.telegram
        self.sms: SmsChannel | TencentSmsChannel | None = None
        if s.sms_enabled and s.sms_provider == "tencent":  # mainland China: approved templates (docs/sms-china.md)
            from bot.channels.tencent_sms import TencentSmsChannel
            from content.sms_templates import load_templates

            self.sms = TencentSmsChannel(
                s.tencent_secret_id, s.tencent_secret_key, app_id=s.tencent_sms_app_id, sign_name=s.sms_sign_name,
                templates=load_templates(s.sms_templates_file), on_inbound=self.handle_inbound,
                on_status=self.sms_status, now=rt.clock.now, callback_secret=s.tencent_callback_secret,
                networks=s.tencent_callback_networks, region=s.tencent_region, endpoint=s.tencent_sms_endpoint,
                default_language=s.language, rate=s.sms_rate,
            )
            self.channels["sms"] = self.sms
        elif s.sms_enabled:
            from bot.channels.sms import SmsChannel

            self.sms = SmsChannel(
                s.twilio_account_sid, s.twilio_auth_token, on_inbound=self.handle_inbound, on_status=self.sms_status,
                now=rt.clock.now,
                from_number=s.twilio_from_number, messaging_service_sid=s.twilio_messaging_service_sid,
                api_base_url=s.twilio_api_base_url, public_url=s.public_url, rate=s.sms_rate,
            )
            self.channels["sms"] = self.sms
        self.voice: VoiceChannel | None = None
        self.calls: CallDesk | None = None
        if s.voice_enabled:
            from bot.calls import CallDesk
            from bot.channels.voice import VoiceChannel

            self.calls = CallDesk(rt.engine, self.inbox, rt.clock.now, s.language)
            self.voice = VoiceChannel(
                s.twilio_account_sid, s.twilio_auth_token, from_number=s.twilio_voice_from or s.twilio_from_number,
                public_url=s.public_url, on_key=self.calls.key, on_status=self.call_status, script=self.calls.script,
                caller=self.calls.caller, now=rt.clock.now, api_base_url=s.twilio_api_base_url, rate=s.voice_rate,
            )
            self.channels["voice"] = self.voice
        self.outbox = Outbox(rt.engine, self.channels, on_failure=self._failed,
                             lease=timedelta(seconds=rt.settings.claim_lease_seconds))
        self.ticker = Ticker(rt.engine, self.outbox, rt.sweep_config, rt.clock, sweeps=sweeps)
        self._drainer: asyncio.Task | None = None
        self._again = False

    def _failed(self, session, row, error: SendError, now) -> None:
        delivery_failed(session, row.id, error.code, now, zone=self.rt.settings.zone,
                        policy=self.rt.policy)

    async def start(self, receive: bool = True) -> None:
        """Start the channels; `receive=False` only sends (a tick beside a running service).

        A receiving start first handles what an earlier run stored and did not
        get to handle (it died in between), before new messages come in.
        """
        if receive:
            await asyncio.to_thread(self._recover)
        for channel in self.channels.values():
            await channel.start(receive=receive)

    def _recover(self) -> None:
        asyncio.run(self.rt.router.recover(self.rt.engine, self.rt.clock.now()))

    async def stop(self) -> None:
        for channel in self.channels.values():
            await channel.stop()
        await self.inbox.stop()
        if self._drainer is not None:
            await self._drainer

    def routes(self) -> list[Route]:
        """Web routes the channels need on the service's Starlette app."""
        out = []
        if self.telegram is not None and self.rt.settings.public_url:
            from bot.channels.telegram import WEBHOOK_PATH

            out.append(Route(WEBHOOK_PATH, self.telegram.webhook, methods=["POST"]))
        if self.sms is not None and self.rt.settings.sms_provider == "tencent":
            from bot.channels.tencent_sms import REPLY_PATH, STATUS_PATH

            out.append(Route(REPLY_PATH, self.sms.reply, methods=["POST"]))
            out.append(Route(STATUS_PATH, self.sms.status, methods=["POST"]))
        elif self.sms is not None:
            from bot.channels.sms import INBOUND_PATH, STATUS_PATH

            out.append(Route(INBOUND_PATH, self.sms.inbound, methods=["POST"]))
            out.append(Route(STATUS_PATH, self.sms.status, methods=["POST"]))
        if self.voice is not None:
            from bot.channels import voice

            out += [Route(voice.ANSWER_PATH, self.voice.answer, methods=["POST"]),
                    Route(voice.GATHER_PATH, self.voice.gather, methods=["POST"]),
                    Route(voice.INCOMING_PATH, self.voice.incoming, methods=["POST"]),
                    Route(voice.RECORDED_PATH, self.voice.recorded, methods=["POST"]),
                    Route(voice.STATUS_PATH, self.voice.status, methods=["POST"])]
        return out

    async def sms_status(self, sid: str, status: str, error_code: str | None) -> None:
        """A Twilio status callback: update the row; an undelivered SMS may mean lost contact."""
        await asyncio.to_thread(self._record_status, sid, status, error_code)

    async def call_status(self, sid: str, status: str, error_code: str | None) -> None:
        """A Twilio call status callback: how the call ended."""
        await asyncio.to_thread(self._record_call_status, sid, status, error_code)

    def _record_call_status(self, sid: str, status: str, error_code: str | None) -> None:
        now = self.rt.clock.now()
        with session_scope(self.rt.engine) as session:
            msg = outbox_rows.record_call_status(session, sid, status, error_code, now)
            if msg is None or msg.status not in ("undelivered", "failed"):
                return
            zone, policy = self.rt.settings.zone, self.rt.policy
            if msg.status == "undelivered" and voice_calls.call_again(session, msg, now, policy=policy, zone=zone):
                return  # nobody answered: again a little later
            self._failed(session, msg, SendError(msg.status, code=msg.error_code), now)  # often enough: unreachable

    def _record_status(self, sid: str, status: str, error_code: str | None) -> None:
        now = self.rt.clock.now()
        with session_scope(self.rt.engine) as session:
            msg = outbox_rows.record_status(session, "sms", sid, status, error_code, now)
            if msg is not None and status in ("undelivered", "failed"):
                self._failed(session, msg, SendError(status, code=error_code), now)

    def menus(self) -> Menus:
        with session_scope(self.rt.engine) as session:
            return menus(session)

    async def handle_inbound(self, inbound: Inbound) -> None:
        """One message from any channel: returns once it is stored (the channel may acknowledge it then).

        The inbox's worker handles it next; `_handled` drains the replies out.
        """
        await self.inbox.submit(inbound)

    def _handled(self, handled: list[tuple[Inbound, Handled]]) -> None:
        """A batch was handled (on the event loop): send the replies now; an officer's /start gets their menu."""
        if self.calls is not None:  # a key pressed in a call: its reply is said in the call
            self.calls.handled(handled)
        self.kick()
        if self.telegram is None:
            return
        for inbound, _ in handled:
            if inbound.channel == "telegram" and inbound.text.startswith("/start"):
                task = asyncio.create_task(self._menu_after_start(int(inbound.address)))
                self._menus.add(task)
                task.add_done_callback(self._menus.discard)

    async def _menu_after_start(self, chat_id: int) -> None:
        """An officer who just bound their chat gets the officers' menu at once (not at the next restart)."""
        commands = (await asyncio.to_thread(self.menus)).officers.get(chat_id)
        if commands is None:
            return
        try:
            await self.telegram.set_chat_menu(chat_id, commands)
        except Exception:  # a menu is a convenience: never lose the message over it
            log.warning("telegram: could not set the menu of an officer's chat", exc_info=True)

    def busy(self) -> bool:
        """Messages being handled, or received by Telegram's adapter and not yet handed to the router."""
        waiting = self.telegram.application.update_queue.qsize() if self.telegram is not None else 0
        return self.inbox.pending > 0 or waiting > 0

    def kick(self) -> None:
        """Drain the outbox soon; kicks that arrive during a drain make one more pass."""
        self._again = True
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._again:
            self._again = False
            try:
                await self.outbox.drain(self.rt.clock.now())
            except Exception:  # the next kick or tick retries; the rows are in the database
                log.exception("drain after inbound failed")

    async def idle(self) -> None:
        """Wait until every message received is handled and no drain is running (tests)."""
        if self.telegram is not None:  # updates fetched and not yet through the adapter
            await self.telegram.application.update_queue.join()
        await self.inbox.join()
        while self._menus:
            await asyncio.wait(set(self._menus))
        while self._drainer is not None and not self._drainer.done():
            await asyncio.wait([self._drainer])
