"""The inbound pipeline: store, deduplicate, resolve the sender, dispatch through one table, enqueue replies."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import case, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from content.areas import Areas
from content.catalog import text
from content.policy import Policy
from handlers import (
    case_chat,
    checkin,
    community_service,
    enrol,
    escalation,
    formal_warnings,
    guide,
    leave,
    location,
    officer,
    officer_accounts,
    optout,
    report,
    study,
)
from handlers.contract import (
    MAX_STORED_TEXT,
    Context,
    Handler,
    Inbound,
    Location,
    Recipient,
    Recording,
    Reply,
    Sender,
    SenderKind,
    clean,
    row_id,
)
from handlers.delivery import deliver
from storage import outbox, queries
from storage.db import insert_ignoring, session_scope
from storage.models import (
    ChannelName,
    ConversationState,
    Direction,
    Message,
    MessageStatus,
    Officer,
    Supervisee,
)

log = logging.getLogger(__name__)

ANYONE = frozenset(SenderKind)
PERSON = frozenset({SenderKind.supervisee})
OFFICER = frozenset({SenderKind.officer})
SAID_IN_CALL = timedelta(minutes=2)  # how long a reply to a key pressed in a call waits to be said in it


@dataclass(frozen=True)
class Route:
    """Keywords (matched on the first word, or as a prefix for CJK keywords) for some senders."""

    keywords: tuple[str, ...]
    who: frozenset[SenderKind]
    handler: Handler


@dataclass
class Handled:
    """What the pipeline did with one inbound message."""

    message_id: int | None
    duplicate: bool = False
    replies: list[Reply] = field(default_factory=list)
    error: bool = False


def _is_cjk(word: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in word)


def stored_text(raw: str) -> str:
    """The text as stored: capped, with a note saying how much was cut."""
    if len(raw) <= MAX_STORED_TEXT:
        return raw
    return raw[:MAX_STORED_TEXT] + f"\n[truncated: {len(raw)} characters received]"


def reply_key(message_id: int, i: int) -> str:
    """The outbox dedupe key of the `i`th reply to inbound message `message_id`: once each, however often handled."""
    return f"reply:{message_id}:{i}"


def _stored_row(inbound: Inbound, now: datetime) -> dict:
    """The message table's row of an inbound message as received (the sender is filled in when handled)."""
    row = dict(
        direction=Direction.inbound, channel=inbound.channel, address=inbound.address,
        supervisee_id=None, officer_id=None,
        kind="button" if inbound.button else ("location" if inbound.location else
                                              ("recording" if inbound.recording else "text")),
        body=stored_text(inbound.text), payload=None, status=MessageStatus.received,
        provider_id=inbound.provider_id, attempts=0, created_at=inbound.received_at or now, updated_at=now,
    )
    if inbound.button:
        row["payload"] = json.dumps({"button": inbound.button[:200]}, ensure_ascii=False)
    elif inbound.location is not None:  # kept only until handled (recovery needs it), then cleared
        loc = inbound.location
        row["payload"] = json.dumps({"location": [loc.latitude, loc.longitude, loc.accuracy]})
    elif inbound.recording is not None:  # likewise: the report keeps it once handled
        rec = inbound.recording
        row["payload"] = json.dumps({"recording": [rec.url, rec.seconds, rec.sid]})
    return row


def _mark_handled(session: Session, message_id: int, sender: Sender, now: datetime, *, only_received: bool = False,
                  error: str | None = None) -> bool:
    """Mark a stored message handled, with its sender; `only_received` makes it a claim. True if the row changed."""
    where = [Message.id == message_id] + ([Message.status == MessageStatus.received] if only_received else [])
    return bool(session.execute(
        update(Message).where(*where)
        .values(status=MessageStatus.handled, error_code=error, updated_at=now,
                supervisee_id=sender.supervisee.id if sender.supervisee else None,
                officer_id=sender.officer.id if sender.officer else None,
                # a shared point lives in location_check, a recording in its report, not in the message log
                payload=case((Message.kind.in_(("location", "recording")), None), else_=Message.payload))
        .execution_options(synchronize_session=False)
    ).rowcount)


def resolve_sender(session: Session, channel: str, address: str, default_language: str) -> Sender:
    """Officer, supervisee or unknown, by channel and address."""
    officer: Officer | None = None
    person: Supervisee | None = None
    if channel == ChannelName.telegram and address.lstrip("-").isdigit():
        officer = queries.officer_by_telegram(session, int(address))
        person = None if officer else queries.supervisee_by_telegram(session, int(address))
    elif channel in (ChannelName.sms, ChannelName.voice):  # a text or a call from a phone number
        officer = queries.officer_by_phone(session, address)
        person = None if officer else queries.supervisee_by_phone(session, address)
    elif channel == ChannelName.console:
        kind, _, ref = address.partition(":")
        if kind == "officer" and row_id(ref):
            officer = session.get(Officer, row_id(ref))
        elif kind == "case":
            person = queries.supervisee_by_case(session, ref)
    if officer is not None and not officer.active:  # a departed officer: a stranger, whatever they held
        return Sender(SenderKind.unknown, language=default_language)
    if officer is not None:
        return Sender(SenderKind.officer, officer=officer, language=officer.language)
    if person is not None:
        return Sender(SenderKind.supervisee, supervisee=person, language=person.language)
    return Sender(SenderKind.unknown, language=default_language)


def cleaned(inbound: Inbound) -> Inbound:
    """The message without NUL characters (no database stores them in text)."""
    if "\x00" in inbound.text or (inbound.button and "\x00" in inbound.button):
        return replace(inbound, text=clean(inbound.text), button=clean(inbound.button or "") or None)
    return inbound


class Router:
    """One explicit dispatch table: conversation states first, then keywords, then buttons, then the fallback."""

    def __init__(
        self,
        routes: list[Route],
        fallbacks: dict[SenderKind, Handler],
        *,
        policy: Policy,
        areas: Areas,
        zone: tzinfo,
        states: dict[ConversationState, Handler] | None = None,
        buttons: dict[str, tuple[frozenset[SenderKind], Handler]] | None = None,
        default_language: str = "zh-CN",
        channel_routes: dict[str, list[Route]] | None = None,
        locations: dict[SenderKind, Handler] | None = None,
        recordings: dict[SenderKind, Handler] | None = None,
        console_url: str | None = None,
    ) -> None:
        self.console_url = console_url  # where the web console is reached from outside (a sign-in link's base)
        self.channel_routes = channel_routes or {}
        self.locations = locations or {}
        self.recordings = recordings or {}
        self.areas = areas
        self.routes = routes
        self.fallbacks = fallbacks
        self.states = states or {}
        self.buttons = buttons or {}
        self.default_language = default_language
        self.zone = zone
        self.policy = policy

    def match(self, inbound: Inbound, sender: Sender, state: ConversationState) -> tuple[Handler, str, str]:
        """The handler for this message, the keyword that chose it, and the text after the keyword.

        Buttons first (they name their flow), then the conversation's state for
        plain text (a report in progress takes its parts), then keywords, then
        the fallback for this kind of sender.
        """
        body = inbound.text.strip()
        # Words a channel reserves (SMS opt-out) come before everything, even a report in progress.
        found = self._keyword(self.channel_routes.get(inbound.channel, []), sender, body)
        if found:
            return found
        if inbound.button:
            prefix = inbound.button.split(":", 1)[0]
            if prefix in self.buttons:
                who, handler = self.buttons[prefix]
                if sender.kind in who:
                    return handler, prefix, inbound.button
            # A button that is not this sender's to press (or forged data) gets the sender's usual answer.
            return self.fallbacks[sender.kind], "", body
        if inbound.location is not None and sender.kind in self.locations:  # a shared point, whatever the state
            return self.locations[sender.kind], "", body
        if inbound.recording is not None:  # something spoken: a report from a person; nobody else's to leave
            return self.recordings.get(sender.kind, self.fallbacks[sender.kind]), "", body
        if state in self.states and (not body.startswith("/") or body in ("/done", "/cancel")):
            return self.states[state], "", body
        return self._keyword(self.routes, sender, body) or (self.fallbacks[sender.kind], "", body)

    @staticmethod
    def _keyword(routes: list[Route], sender: Sender, body: str) -> tuple[Handler, str, str] | None:
        """The first route whose keyword opens `body`: the first word, a phrase, or a CJK prefix."""
        lowered = body.lower()
        first = lowered.split(maxsplit=1)[0] if body else ""
        first = first.split("@", 1)[0] if first.startswith("/") else first  # /start@bot
        for route in routes:
            if sender.kind not in route.who:
                continue
            for kw in route.keywords:
                if kw.endswith("$"):  # the whole message, e.g. a lone quiz letter
                    if lowered == kw[:-1]:
                        return route.handler, kw[:-1], ""
                elif " " in kw:
                    if lowered == kw or lowered.startswith(kw + " "):
                        return route.handler, kw, body[len(kw):].strip()
                elif first == kw:
                    return route.handler, kw, body[len(body.split(maxsplit=1)[0]):].strip()
                elif _is_cjk(kw) and body.startswith(kw):
                    return route.handler, kw, body[len(kw):].strip()
        return None

    def store(self, session: Session, inbound: Inbound, now: datetime) -> int | None:
        """Store first: one INSERT of the message as received; its id, or None for a provider's repeat.

        Who sent it is resolved when it is handled (`process`), and recorded on
        the row then: storing stays one statement, so a burst is acknowledged fast.
        """
        return self.store_many(session, [inbound], now)[0]

    def store_many(self, session: Session, inbounds: list[Inbound], now: datetime) -> list[int | None]:
        """Store a group in one multi-row INSERT: each message's id, or None for a provider's repeat.

        A repeat within the group (a provider retrying before its first try was
        answered) is stored once: the second gets None, as it would a moment later.
        """
        rows = [_stored_row(inbound, now) for inbound in inbounds]
        keyed = [row for row in rows if row["provider_id"] is not None]
        ids: dict[tuple[str, str], int] = {}
        if keyed:
            table = Message.__table__
            stmt = (insert_ignoring(session, table).values(keyed)
                    .on_conflict_do_nothing(index_elements=["channel", "provider_id", "direction"])
                    .returning(table.c.id, table.c.channel, table.c.provider_id))
            ids = {(r.channel, r.provider_id): r.id for r in session.execute(stmt)}
        # A NULL provider id never conflicts: a message without one is always new.
        return [ids.pop((row["channel"], row["provider_id"]), None) if row["provider_id"] is not None
                else outbox.insert_ignore(session, row, ["channel", "provider_id", "direction"]) for row in rows]

    async def process(self, session: Session, inbound: Inbound, message_id: int, now: datetime) -> list[Reply] | None:
        """Handle a stored message in the caller's transaction: its replies, or None if it was handled already.

        The first write claims the row (received -> handled, with its sender): a
        recovery pass or another process never handles it twice, on PostgreSQL
        because the UPDATE waits for the row's lock and then finds it handled.
        """
        sender = resolve_sender(session, inbound.channel, inbound.address, self.default_language)
        if not _mark_handled(session, message_id, sender, now, only_received=True):
            return None
        conv = queries.conversation_for(session, inbound.channel, inbound.address, now)
        handler, keyword, args = self.match(inbound, sender, conv.state)
        ctx = Context(session=session, now=now, sender=sender, conversation=conv, message_id=message_id,
                      policy=self.policy, zone=self.zone, areas=self.areas, default_language=self.default_language,
                      args=args, keyword=keyword, console_url=self.console_url)
        log.info("message %s from %s -> %s", message_id, sender.label, handler.__qualname__)
        if sender.supervisee is not None:  # a handler may name the contact more precisely
            sender.supervisee.last_contact_at, sender.supervisee.last_contact_kind = now, "message"
            session.add(sender.supervisee)
        replies = await handler(inbound, ctx)
        self._enqueue(session, inbound, message_id, replies, now, ctx.sender)
        return replies

    def failed(self, session: Session, inbound: Inbound, message_id: int, now: datetime) -> Reply:
        """A handler failed on a stored message: mark it, and tell the sender (a fresh transaction)."""
        sender = resolve_sender(session, inbound.channel, inbound.address, self.default_language)
        reply = Reply(text(sender.language, "fallback.error"), kind="error")
        self._enqueue(session, inbound, message_id, [reply], now)
        _mark_handled(session, message_id, sender, now, error="handler_error")
        return reply

    async def handle(self, engine: Engine, inbound: Inbound, now: datetime) -> Handled:
        """Store the message, then handle it; it is stored and answered even when a handler fails."""
        inbound = cleaned(inbound)
        with session_scope(engine) as session:
            message_id = self.store(session, inbound, now)
        if message_id is None:
            log.info("duplicate inbound %s/%s ignored", inbound.channel, inbound.provider_id)
            return Handled(None, duplicate=True)
        return await self.handle_stored(engine, inbound, message_id, now)

    async def handle_stored(self, engine: Engine, inbound: Inbound, message_id: int, now: datetime) -> Handled:
        """Handle one stored message in a transaction of its own; a failing handler still gets an answer out."""
        try:
            with session_scope(engine) as session:
                replies = await self.process(session, inbound, message_id, now)
            return Handled(message_id, replies=replies or [])
        except Exception:
            log.exception("handler failed on message %s", message_id)
            with session_scope(engine) as session:
                reply = self.failed(session, inbound, message_id, now)
            return Handled(message_id, replies=[reply], error=True)

    async def handle_batch(self, engine: Engine, stored: list[tuple[Inbound, int]], now: datetime,
                           timing: dict | None = None) -> list[Handled]:
        """Handle stored messages in one transaction (one commit for all); on any failure, one by one.

        A failure rolls the whole batch back and each message is handled again in
        a transaction of its own, so one bad message costs only itself. `timing`,
        when given, gets the commit's seconds ("commit").
        """
        try:
            with Session(engine, expire_on_commit=False) as session:
                try:
                    done = [Handled(mid, replies=await self.process(session, inbound, mid, now) or [])
                            for inbound, mid in stored]
                    started = time.perf_counter()
                    session.commit()
                    if timing is not None:
                        timing["commit"] = time.perf_counter() - started
                except BaseException:
                    session.rollback()
                    raise
            return done
        except Exception:
            if len(stored) == 1:
                return [await self.handle_stored(engine, *stored[0], now)]
            log.warning("a batch of %s inbound messages failed; handling each alone", len(stored))
            return [await self.handle_stored(engine, inbound, mid, now) for inbound, mid in stored]

    @staticmethod
    def _enqueue(session: Session, inbound: Inbound, message_id: int, replies: list[Reply], now: datetime,
                 sender: Sender | None = None) -> None:
        for i, reply in enumerate(replies):
            if reply.to is not None and sender is not None and sender.supervisee is not None \
                    and reply.to == Recipient(SenderKind.supervisee, sender.supervisee.id):
                reply.to = None  # what answers the sender goes back where they wrote from
            extra = None
            if reply.edit_origin and reply.to is None and inbound.origin_message_id is not None:
                extra = {"edit": {"message_id": inbound.origin_message_id, "prefix": inbound.origin_text or ""}}
            # A key pressed in a call is answered in that call (bot/channels/voice.py takes these rows at once):
            # held back from the drain meanwhile, which would otherwise call back.
            held = now + SAID_IN_CALL if reply.to is None and inbound.channel == ChannelName.voice else None
            deliver(session, reply, now=now, dedupe_key=reply_key(message_id, i), not_before=held,
                    channel=inbound.channel, address=inbound.address, extra_payload=extra,
                    supervisee_id=sender.supervisee.id if sender and sender.supervisee else None,
                    officer_id=sender.officer.id if sender and sender.officer else None)

    async def recover(self, engine: Engine, now: datetime, limit: int = 10_000) -> int:
        """Handle messages stored but never handled (the process died in between); run at start-up.

        Each is handled as it would have been, once: the handling locks the row
        and checks it is still unhandled. Returns how many were handled.
        """
        with session_scope(engine) as session:
            rows = session.execute(
                select(Message.id, Message.channel, Message.address, Message.body, Message.payload,
                       Message.provider_id, Message.created_at)
                .where(Message.direction == Direction.inbound, Message.status == MessageStatus.received)
                .order_by(Message.id).limit(limit)).all()
        done = 0
        for r in rows:
            extra = json.loads(r.payload or "{}")
            point, rec = extra.get("location"), extra.get("recording")
            inbound = Inbound(r.channel, r.address, text=r.body, button=extra.get("button"),
                              location=Location(*point) if point else None, provider_id=r.provider_id,
                              received_at=r.created_at, recording=Recording(*rec) if rec else None)
            done += not (await self.handle_stored(engine, inbound, r.id, now)).error
        if rows:
            log.info("recovered %s of %s unhandled inbound messages", done, len(rows))
        return done


def default_router(*, policy: Policy, areas: Areas, zone: tzinfo, default_language: str = "zh-CN",
                   console_url: str | None = None) -> Router:
    """The service's routing table."""
    esc_words = tuple(escalation.WORDS) + tuple(f"/{w}" for w in ("ack", "reached", "unreachable", "excuse"))
    return Router(
        routes=[
            Route(("/start",), ANYONE, enrol.start),
            Route(tuple(checkin.TYPED), PERSON, checkin.answer),  # before help: "HELP ME" is an answer
            Route(("/help", "help", "帮助"), PERSON, guide.help_supervisee),
            Route(("/help", "help", "帮助"), OFFICER, guide.help_officer),
            Route(("/officer", "officer", "找协管员"), PERSON, guide.contact_officer),
            Route(("/report", "report", "汇报", "书面汇报"), PERSON, report.start),
            Route(("/study", "study", "学习"), PERSON, study.next_lesson),
            Route(("/attend", "attend", "签到"), PERSON, community_service.attend),
            Route(("/leave", "leave", "请假"), PERSON, leave.request),
            Route(("/back", "back", "销假"), PERSON, leave.report_back),
            Route(study.letters(), PERSON, study.answer),
            Route(("/list", "list"), OFFICER, officer.officer_caseload),
            Route(("/open", "open", "/overdue", "overdue", "待处理"), OFFICER, escalation.open_list),
            Route(("/case", "case", "查看"), OFFICER, officer.case),
            Route(("/find", "find", "查找"), OFFICER, officer.find),
            Route(("/web", "web", "网页"), OFFICER, officer_accounts.web_link),
            Route(("/pause", "pause", "暂停"), OFFICER, case_chat.pause),
            Route(("/resume", "resume", "恢复"), OFFICER, case_chat.resume),
            Route(("/level", "level", "等级"), OFFICER, case_chat.level),
            Route(("/transfer", "transfer", "转交"), OFFICER, case_chat.transfer),
            Route(("/end", "end", "解矫"), OFFICER, case_chat.end),
            Route(("/reports", "reports", "汇报记录"), OFFICER, officer.reports),  # before 汇报: CJK matches prefixes
            Route(("/report", "report", "汇报", "书面汇报"), OFFICER, officer.report_show),
            Route(("/say", "say", "发给"), OFFICER, officer.say),
            Route(("/service", "service", "公益劳动"), OFFICER, community_service.create_by_chat),
            Route(("/warnings", "warnings", "警告记录"), OFFICER, formal_warnings.list_warnings),  # before 警告
            Route(("/warn", "warn", "警告"), OFFICER, formal_warnings.warn),
            Route(esc_words, OFFICER, escalation.act),
            Route(("/leaves", "leaves", "请假记录"), OFFICER, leave.pending),
            Route(leave.APPROVE_WORDS + leave.REFUSE_WORDS, OFFICER, leave.act),
        ],
        buttons={"checkin": (PERSON, checkin.answer), "report": (PERSON, report.collect),
                 "study": (PERSON, study.answer), "esc": (OFFICER, escalation.act),
                 "svc": (OFFICER, community_service.verify_button), "leave": (OFFICER, leave.act)},
        states={ConversationState.report: report.collect, ConversationState.excuse_reason: escalation.excuse_reason,
                ConversationState.leave: leave.collect},
        locations={SenderKind.supervisee: location.share},
        recordings={SenderKind.supervisee: report.spoken},
        fallbacks={
            SenderKind.unknown: enrol.unknown,
            SenderKind.supervisee: checkin.free_text,
            SenderKind.officer: officer.fallback,
        },
        # As Twilio's own opt-out handling: the keyword must be the whole message ("stop by at 3" is not STOP).
        channel_routes={"sms": [Route(tuple(f"{w}$" for w in optout.STOP_WORDS), ANYONE, optout.stop),
                                Route(tuple(f"{w}$" for w in optout.START_WORDS), ANYONE, optout.start)]},
        policy=policy,
        areas=areas,
        zone=zone,
        default_language=default_language,
        console_url=console_url,
    )
