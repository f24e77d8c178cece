"""A small county driven by `now`: sweeps, people answering, officers acting. No sleeps, no clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from content.areas import load_areas
from content.policy import Policy, load_policy
from handlers.contract import Inbound
from handlers.router import default_router
from scheduler.sweep import SweepConfig, SweepReport, sweep
from storage.db import session_scope
from storage.models import Escalation, Message, Obligation, Supervisee
from tests.factories import officer, supervisee

SH = ZoneInfo("Asia/Shanghai")


def local(y, m, d, hh=0, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH).astimezone(UTC)


class County:
    """Two townships: a supervisor and an assistant in 红果镇, an assistant in 两河镇; three people."""

    def __init__(self, db, policy: Policy | None = None, start: datetime | None = None) -> None:
        self.db, self.engine = db, db.engine
        now = start or local(2027, 3, 1)
        self.policy = policy or load_policy()
        self.cfg = SweepConfig(self.policy, SH)
        self.router = default_router(policy=self.policy, areas=load_areas(), zone=SH)
        self.boss = officer(self.engine, now, name="张主任", role="supervisor", telegram_id=9000)
        self.li = officer(self.engine, now, name="李娜", supervisor_id=self.boss.id, telegram_id=5001)
        self.other = officer(self.engine, now, name="赵强", township="两河镇", telegram_id=5002)
        self.admin = officer(self.engine, now, name="管理员", township="县", role="admin", telegram_id=1)
        self.strict = supervisee(self.engine, now, self.li.id, case_number="JZ-S", name="王伟",
                                 phone="+8613800000001", level="strict")
        self.ordinary = supervisee(self.engine, now, self.li.id, case_number="JZ-O", name="刘芳",
                                   phone="+8613800000002", level="ordinary", telegram_chat_id=7002,
                                   preferred_channel="telegram")
        self.lenient = supervisee(self.engine, now, self.li.id, case_number="JZ-L", name="Tom Lee",
                                  phone="+8613800000003", level="lenient", language="en")

    def sweep(self, now: datetime) -> SweepReport:
        return sweep(self.engine, now, self.cfg)

    async def send(self, channel: str, address: str, now: datetime, text: str = "", button: str | None = None):
        return await self.router.handle(self.engine, Inbound(channel, address, text=text, button=button), now)

    async def sms(self, person, text: str, now: datetime):
        return await self.send("sms", person.phone, now, text)

    def out(self, **where) -> list[Message]:
        with session_scope(self.engine) as s:
            q = select(Message).where(Message.direction == "out")
            address = where.pop("address", None)  # stored encrypted: matched after decryption
            for k, v in where.items():
                q = q.where(col(getattr(Message, k)).in_(v) if isinstance(v, (list, tuple)) else getattr(Message, k) == v)
            rows = list(s.exec(q.order_by(Message.id)))
        if address is None:
            return rows
        wanted = set(address) if isinstance(address, (list, tuple)) else {address}
        return [m for m in rows if m.address in wanted]

    def last_buttons(self, address: str) -> list[tuple[str, str]]:
        msgs = [m for m in self.out(address=address) if m.payload and "buttons" in m.payload]
        return [tuple(b) for b in json.loads(msgs[-1].payload)["buttons"]] if msgs else []

    def obligations(self, person, kind: str = "checkin") -> list[Obligation]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(Obligation).where(Obligation.supervisee_id == person.id, Obligation.kind == kind)
                               .order_by(Obligation.due_at)))

    def escalations(self) -> list[Escalation]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(Escalation).order_by(Escalation.id)))

    def person(self, p) -> Supervisee:
        with session_scope(self.engine) as s:
            return s.get(Supervisee, p.id)


def steps(start: datetime, end: datetime, minutes: int = 30):
    t = start
    while t < end:
        yield t
        t += timedelta(minutes=minutes)
