"""The service's side of phone calls: what a call says, who is calling, a key answered within the call.

The voice adapter (bot/channels/voice.py) asks; this answers from the
database, in worker threads, and feeds the keys pressed into the inbox like
any inbound message. A key's reply (the handler's "Received, thank you") is
queued to the call and held back from the drain for a moment
(`handlers.router.SAID_IN_CALL`): here it is taken and said in the same call
instead of calling back; when the handling takes longer than the call can
wait, the reply stays queued and goes as a call of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from bot.channels.voice import MENU_KINDS, Script
from bot.inbox import Inbox
from handlers.contract import Inbound
from handlers.router import Handled, reply_key
from storage import queries
from storage.db import session_scope
from storage.models import SUPERVISED, ChannelName, Direction, Message, MessageStatus, Supervisee

log = logging.getLogger(__name__)

WAIT_FOR_HANDLING = 8.0  # seconds a call waits for its key's reply (Twilio allows a webhook 15)
MAX_REPLIES = 10  # replies one message can have (dedupe keys reply:ID:0 .. reply:ID:9)


class CallDesk:
    """Callbacks for the voice adapter."""

    def __init__(self, engine, inbox: Inbox, now: Callable[[], datetime], default_language: str) -> None:
        self.engine, self.inbox, self.now, self.default_language = engine, inbox, now, default_language
        self._waiting: dict[str, asyncio.Future] = {}  # provider id of a key -> its stored message's id

    # ---- what a call says, who calls -------------------------------------------------

    async def script(self, message_id: int) -> Script | None:
        return await asyncio.to_thread(self._script, message_id)

    def _script(self, message_id: int) -> Script | None:
        with session_scope(self.engine) as s:
            msg = s.get(Message, message_id)
            if msg is None or msg.channel != ChannelName.voice or msg.direction != Direction.outbound:
                return None
            person = s.get(Supervisee, msg.supervisee_id) if msg.supervisee_id is not None else None
            language = person.language if person is not None else self.default_language
            return Script(language=language, text=msg.body, menu=msg.kind in MENU_KINDS, address=msg.address)

    async def caller(self, phone: str) -> str | None:
        """The language of the person under supervision calling from `phone`; None for anyone else."""
        return await asyncio.to_thread(self._caller, phone)

    def _caller(self, phone: str) -> str | None:
        with session_scope(self.engine) as s:
            person = queries.supervisee_by_phone(s, phone)
            return person.language if person is not None and person.status in SUPERVISED else None

    # ---- a key pressed ---------------------------------------------------------------

    async def key(self, inbound: Inbound) -> list[str]:
        """Store the key as an inbound message, wait for its handling, take its replies and give their words."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[inbound.provider_id] = waiter
        try:
            if await self.inbox.submit(inbound) is None:  # Twilio's repeat of a key already taken
                return []
            message_id = await asyncio.wait_for(waiter, WAIT_FOR_HANDLING)
        except TimeoutError:
            log.warning("call key %s: not handled in %s s; its reply goes as a call", inbound.provider_id,
                        WAIT_FOR_HANDLING)
            return []
        finally:
            self._waiting.pop(inbound.provider_id, None)
        call_sid = inbound.provider_id.partition(":")[0]
        return await asyncio.to_thread(self._take_replies, message_id, call_sid)

    def handled(self, batch: list[tuple[Inbound, Handled]]) -> None:
        """The inbox handled a batch (on the event loop): wake the calls waiting for one of them."""
        for inbound, done in batch:
            waiter = self._waiting.get(inbound.provider_id or "")
            if waiter is not None and not waiter.done() and done.message_id is not None:
                waiter.set_result(done.message_id)

    def _take_replies(self, message_id: int, call_sid: str) -> list[str]:
        keys = [reply_key(message_id, i) for i in range(MAX_REPLIES)]
        now = self.now()
        with session_scope(self.engine) as s:
            rows = s.execute(
                select(Message).where(Message.dedupe_key.in_(keys), Message.channel == ChannelName.voice,
                                      Message.status == MessageStatus.queued)
                .order_by(Message.id).with_for_update(skip_locked=True)
            ).scalars().all()
            for row in rows:  # said in this call: sent, with the call's id
                row.status, row.provider_id, row.sent_at, row.updated_at = MessageStatus.sent, \
                    f"{call_sid}:{row.id}", now, now
                row.attempts += 1
            return [row.body for row in rows]
