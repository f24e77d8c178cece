"""Holiday greetings and announcements in bulk: dates and names, once per person, resumable, dry runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date

import pytest
from sqlmodel import func, select
from typer.testing import CliRunner

from bot.cli import app
from handlers import greetings
from handlers.addressing import route_for
from handlers.roster import import_roster
from scheduler.drain import Outbox
from storage.db import session_scope
from storage.models import Broadcast, Message, Supervisee
from tests.conftest import NOW, roster_csv
from tests.factories import officer
from tests.scheduler.test_outbox import RecordingChannel
from tests.sim import SH, County, local


def test_cn_holidays_2027_with_names_in_both_languages():
    found = [(h.day, h.slug, h.names["zh-CN"], h.names["en"]) for h in greetings.holidays_in("CN", 2027)]
    assert found == [
        (date(2027, 1, 1), "new_year", "元旦", "New Year's Day"),
        (date(2027, 2, 6), "spring_festival", "春节", "Chinese New Year"),
        (date(2027, 4, 5), "qingming", "清明节", "Tomb-Sweeping Day"),
        (date(2027, 5, 1), "labour_day", "劳动节", "Labor Day"),
        (date(2027, 6, 9), "dragon_boat", "端午节", "Dragon Boat Festival"),
        (date(2027, 9, 15), "mid_autumn", "中秋节", "Mid-Autumn Festival"),
        (date(2027, 10, 1), "national_day", "国庆节", "National Day"),
    ]
    assert greetings.find_holiday("CN", today=date(2027, 3, 1), name="中秋节").day == date(2027, 9, 15)
    assert greetings.find_holiday("CN", today=date(2027, 3, 1), name="spring_festival").day.year == 2028
    assert greetings.find_holiday("CN", today=date(2027, 3, 1), day=date(2027, 3, 3)) is None


def test_greeting_texts_are_personal(db):
    h = greetings.find_holiday("CN", today=date(2027, 1, 1), name="春节")
    assert greetings.sample("greeting", h.slug, "zh-CN", h) == "王伟，春节快乐！祝您和家人新年平安、顺利。——协管员李娜和县社区矫正中心"
    other = greetings.Holiday(date(2027, 7, 4), "independence_day", {"en": "Independence Day"})
    assert greetings.sample("greeting", other.slug, "en", other).startswith("王伟, happy Independence Day!")


@pytest.fixture
def county_1297(db):
    boss = officer(db.engine, local(2027, 1, 1), name="张主任", role="supervisor")
    ids = [officer(db.engine, local(2027, 1, 1), name=f"协管员{i}", supervisor_id=boss.id).id for i in range(39)]
    with session_scope(db.engine) as s:
        assert import_roster(s, roster_csv(1297, ids), now=local(2027, 1, 1)).created == 1297
        chats = s.exec(select(Supervisee).order_by(Supervisee.id).limit(300)).all()
        for i, p in enumerate(chats):  # some on Telegram, some of those blocked or preferring SMS
            p.telegram_chat_id = 100000 + i
            p.preferred_channel = "telegram" if i % 3 else "sms"
            p.telegram_blocked_at = local(2027, 1, 1) if i % 50 == 0 else None
            s.add(p)
    return db


async def test_greeting_a_county_once_interrupted_and_resumed(county_1297):
    db = county_1297
    h = greetings.find_holiday("CN", today=date(2027, 1, 1), name="spring_festival")
    key, now = greetings.greeting_key(h), local(2027, 2, 6, 9)

    def enqueue():
        with session_scope(db.engine) as s:
            return greetings.enqueue_bulk(s, key=key, kind="greeting", section="greeting", template=h.slug,
                                          now=now, audience=greetings.Audience(), holiday=h)

    first = enqueue()
    assert (first.audience, first.queued) == (1297, 1297)
    channels = {"sms": RecordingChannel("sms"), "telegram": RecordingChannel("telegram")}
    halfway = await Outbox(db.engine, channels, batch=100).drain(now, max_batches=6)  # then the process dies
    assert halfway.sent == 600
    again = enqueue()
    assert (again.queued, again.already) == (0, 1297)
    rest = await Outbox(db.engine, channels, batch=100).drain(now)
    sent = Counter(channels["sms"].sent + channels["telegram"].sent)
    assert halfway.sent + rest.sent == 1297 and len(sent) == 1297 and max(sent.values()) == 1
    with session_scope(db.engine) as s:
        assert greetings.progress(s, key) == {"sent": 1297}
        assert s.exec(select(func.count()).select_from(Broadcast)).one() == 1
        people = {p.id: p for p in s.exec(select(Supervisee))}
        rows = s.exec(select(Message).where(Message.kind == "greeting")).all()
        for row in rows:  # the set-based routing agrees with route_for, person by person
            assert (row.channel, row.address) == route_for(people[row.supervisee_id])
        # 300 on Telegram: a third prefer SMS, and 6 blocked the bot; everyone else by SMS.
        assert Counter(r.channel for r in rows) == {"telegram": 196, "sms": 1101}


async def test_sweep_greets_on_the_holiday_morning_once(db):
    c = County(db, start=local(2027, 2, 5))
    assert c.sweep(local(2027, 2, 6, 8, 30)).greeted == 0  # before the greeting time
    assert c.sweep(local(2027, 2, 6, 9, 0)).greeted == 3
    assert c.sweep(local(2027, 2, 6, 9, 1)).greeted == 0
    assert c.sweep(local(2027, 2, 7, 9, 0)).greeted == 0  # the second day of the holiday
    assert {m.body for m in c.out(kind="greeting")} == {""}  # queued without the text: written when sent
    channels = {"sms": RecordingChannel("sms"), "telegram": RecordingChannel("telegram")}
    await Outbox(db.engine, channels).drain(local(2027, 2, 7, 9, 1))
    assert {m.status for m in c.out(kind="greeting")} == {"sent"}
    bodies = sorted(m.body for m in c.out(kind="greeting"))
    assert {m.address for m in c.out(kind="greeting")} == {c.strict.phone, "7002", c.lenient.phone}
    assert bodies[0].startswith("Tom Lee, happy Spring Festival!") and "刘芳，春节快乐！" in bodies[1]


runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})


def test_greet_command_dry_run_writes_nothing_then_sends(env):
    """In the office's default language, Chinese (the holiday's name too)."""
    c = County(env)
    office = CliRunner(env={"COLUMNS": "200"})
    dry = office.invoke(app, ["greet", "--holiday", "春节", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "春节" in dry.output and "2027-02-06（试运行" in dry.output and "王伟，春节快乐！" in dry.output
    assert "人通过 sms 联系，该渠道未配置：他们的消息在发件箱等待，" in dry.output and "未发出即丢弃" in dry.output
    assert c.out() == []
    with session_scope(env.engine) as s:
        assert s.exec(select(func.count()).select_from(Broadcast)).one() == 0
    real = office.invoke(app, ["greet", "--date", "2028-01-26"])
    assert real.exit_code == 0, real.output
    assert "3 人，本次排队 3 人" in real.output and "该渠道未配置" in real.output
    again = office.invoke(app, ["greet", "--date", "2028-01-26"])
    assert "本次排队 0 人，此前已排 3 人" in again.output
    assert len(c.out(kind="greeting")) == 3
    bad = office.invoke(app, ["greet", "--date", "2027-03-03"])
    assert bad.exit_code == 2 and "在 2027-03-03 没有节日" in bad.output
    english = runner.invoke(app, ["greet", "--date", "2028-01-26"], env={"COLUMNS": "200"})
    assert "Chinese New Year 2028-01-26: 3 people, 0 queued now, 3 from an earlier run" in english.output


def test_broadcast_to_one_township(env):
    c = County(env)
    with session_scope(env.engine) as s:
        tom = s.get(Supervisee, c.lenient.id)
        tom.township = "两河镇"
        s.add(tom)
    result = runner.invoke(app, ["broadcast", "--template", "office_closed", "--township", "红果镇"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    asyncio.run(Outbox(env.engine, {"sms": RecordingChannel("sms"), "telegram": RecordingChannel("telegram")})
                .drain(NOW))
    rows = c.out(kind="broadcast")
    assert sorted(r.supervisee_id for r in rows) == [c.strict.id, c.ordinary.id]
    assert rows[0].body.startswith("王伟，您好：司法所下周一闭所一天")
    bad = runner.invoke(app, ["broadcast", "--template", "nope"])
    assert bad.exit_code == 2 and "office_closed" in bad.output


async def test_a_bulk_row_whose_person_lost_the_address_fails_when_claimed(db):
    c = County(db, start=local(2027, 2, 5))
    c.sweep(local(2027, 2, 6, 9, 0))  # greetings queued for all three
    with session_scope(db.engine) as s:
        wang = s.get(Supervisee, c.strict.id)
        wang.phone = None  # his number was removed from the roster after the greeting was queued
        s.add(wang)
    channels = {"sms": RecordingChannel("sms"), "telegram": RecordingChannel("telegram")}
    await Outbox(db.engine, channels).drain(local(2027, 2, 6, 9, 1))
    rows = {m.supervisee_id: m for m in c.out(kind="greeting")}
    assert rows[c.strict.id].status == "failed" and rows[c.strict.id].error_code == "no_address"
    assert rows[c.lenient.id].status == "sent" and rows[c.lenient.id].body.startswith("Tom Lee, happy")
    with session_scope(db.engine) as s:
        assert greetings.failures(s, "greet:spring_festival:2027-02-06") == {"no_address": 1}


def test_holidays_know_their_last_day():
    spring = greetings.find_holiday("CN", today=date(2027, 1, 1), name="spring_festival")
    assert (spring.day, spring.last) == (date(2027, 2, 6), date(2027, 2, 8))
    assert spring.ends_at(SH) == local(2027, 2, 9)
    qingming = greetings.find_holiday("CN", today=date(2027, 1, 1), name="qingming")
    assert qingming.ends_at(SH) == local(2027, 4, 6)


async def test_a_greeting_not_sent_by_the_end_of_its_holiday_is_dropped_and_counted(db):
    c = County(db, start=local(2027, 2, 5))
    c.sweep(local(2027, 2, 6, 9, 0))  # greetings queued for all three, to expire at the end of 2027-02-08
    telegram_only = {"telegram": RecordingChannel("telegram")}  # SMS is not configured yet
    await Outbox(db.engine, telegram_only).drain(local(2027, 2, 6, 9, 1))
    on_sms = [m for m in c.out(kind="greeting") if m.channel == "sms"]
    assert len(on_sms) == 2 and {m.status for m in on_sms} == {"queued"}
    assert c.sweep(local(2027, 2, 8, 23, 59)).expired == 0
    assert c.sweep(local(2027, 2, 9, 0, 0)).expired == 2  # the two on SMS: never sent, now dropped
    assert c.sweep(local(2027, 2, 9, 0, 1)).expired == 0  # counted once
    sms = RecordingChannel("sms")  # SMS set up afterwards: the greeting does not go out late
    await Outbox(db.engine, {"sms": sms, **telegram_only}).drain(local(2027, 3, 1, 9))
    assert not set(sms.sent) & {m.id for m in on_sms}
    with session_scope(db.engine) as s:
        assert greetings.progress(s, "greet:spring_festival:2027-02-06") == {"sent": 1, "expired": 2}


async def test_an_expired_row_is_not_claimed_even_before_the_sweep_marks_it(db):
    c = County(db, start=local(2027, 2, 5))
    c.sweep(local(2027, 2, 6, 9, 0))
    sms = RecordingChannel("sms")
    await Outbox(db.engine, {"sms": sms}).drain(local(2027, 2, 9, 0, 30))  # past the end, no sweep since
    greetings_by_sms = [m for m in c.out(kind="greeting") if m.channel == "sms"]
    assert not set(sms.sent) & {m.id for m in greetings_by_sms} and {m.status for m in greetings_by_sms} == {"queued"}
