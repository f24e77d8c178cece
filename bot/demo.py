"""`checkin demo`: the whole service offline, on the sample county, for two simulated weeks on the fast clock.

The real stack runs: the Telegram adapter against the Bot API stand-in, the SMS
and voice adapters against the Twilio stand-in (signed webhooks both ways; two
people get their check-ins by phone call and answer on the keypad), the clock
job and the outbox. Simulated people answer (or forget), write reports, study and
confirm attendance, share their location (now and then from out of the county),
ask for leave and report back (or forget to); simulated officers act on alerts
and decide leave, or do not.

The people and the stand-ins run in a thread of their own, with their own event
loop, and reach the service only over loopback HTTP as real phones would: on a
clock thousands of times faster than real time, sharing the service's loop made
their answers land late and the county look as if nobody answered.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import shutil
import threading
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from sqlmodel import select

from bot import sample
from bot.demo_clock import Stopwatch, outbox_busy
from bot.demo_summary import Outcome, persona_rates, print_personas, summarise  # noqa: F401  (the CLI's)
from bot.runtime import build
from bot.sandbox.loopback import LoopbackServer, free_port
from bot.sandbox.telegram_api import FakeTelegram
from bot.sandbox.tencent_sms import FakeTencentSms
from bot.sandbox.twilio_api import FakeTwilio
from bot.settings import load_settings, own_keys
from bot.stack import Stack
from bot.web import make_app
from content.areas import METRES_PER_DEGREE
from content.catalog import text
from content.sms_templates import load_templates
from scheduler.clock import FastClock, RealClock
from scheduler.ticker import make_scheduler
from storage.db import migrate, session_scope
from storage.models import (
    Message,
    Officer,
    Supervisee,
)

START_HOUR = 7  # the simulation starts at 07:00, `days` before today, and ends about now
# Where people travel: (destination as typed, a point there, reason)
TRIPS = [("贵阳", (26.60, 106.70), "看望住院的母亲"), ("广州", (23.12, 113.25), "去工地打工"),
         ("遵义", (27.70, 106.92), "参加亲戚婚礼"), ("北京", (39.90, 116.40), "陪孩子看病")]


class Simulation:
    """People and officers who read what the stand-ins delivered and answer on the simulated clock."""

    def __init__(self, rt, tg: FakeTelegram, tw: FakeTwilio, seed: int, sms: FakeTencentSms | None = None) -> None:
        self.rt, self.tg, self.tw, self.rng = rt, tg, tw, random.Random(seed)
        self.sms = sms or tw  # the SMS network: Twilio's, or Tencent Cloud's (`checkin demo --sms tencent`)
        self.queue: list = []
        self.order = itertools.count()
        self.seen_tg: dict[int, int] = {}
        self.seen_sms = 0
        self.seen_calls = 0
        self.people_tg: dict[int, Supervisee] = {}
        self.people_sms: dict[str, Supervisee] = {}
        self.people_voice: dict[str, Supervisee] = {}
        self.answering: dict[int, bool] = {}  # a call's message -> whether the person picks up
        self.officers: set[int] = set()
        self.tasks: set[asyncio.Task] = set()
        self.trips: dict[int, tuple[tuple[float, float], date, date]] = {}  # chat -> where and when they travel
        self.intended: dict[int, list[bool]] = defaultdict(list)  # person -> for each check-in prompt: answer on time?

    def load(self) -> None:
        with session_scope(self.rt.engine) as s:
            for p in s.exec(select(Supervisee)).all():
                if p.telegram_chat_id:
                    self.people_tg[p.telegram_chat_id] = p
                elif p.preferred_channel == "voice":
                    self.people_voice[p.phone] = p
                else:
                    self.people_sms[p.phone] = p
            self.officers = {o.telegram_id for o in s.exec(select(Officer)).all() if o.telegram_id}

    def plan_leave(self, days: int) -> None:
        """A few people ask for leave during the fortnight, by Telegram and by SMS."""
        people = sorted(self.people_tg.items())[:3] + sorted(self.people_sms.items())[:2]
        for n, (address, person) in enumerate(people):
            dest, point, reason = TRIPS[n % len(TRIPS)]
            ask_day = 1 + (n * 2) % max(1, days - 5)
            first = (self.rt.clock.now() + timedelta(days=ask_day + 1)).astimezone(self.rt.settings.zone).date()
            last = first + timedelta(days=1 + n % 3)
            words = f"{dest} {first:%m-%d} {last:%m-%d} {reason}"

            def ask(address=address, words=words, trip=(point, first, last), telegram=isinstance(address, int)):
                if telegram:
                    self.trips[address] = trip
                    return self.tg.send_text(address, f"/leave {words}")
                return self.sms.send_sms(address, f"请假 {words}")
            self.later(ask_day * 24 * 60 + 3 * 60 + n * 7, ask)

    def point_at_home(self) -> tuple[float, float]:
        """A random point in the county."""
        home = self.rt.areas.home(self.rt.policy.location.home_area)
        minx, miny, maxx, maxy = home.geometry.bounds  # local metres
        lon0, lat0 = home.origin
        while True:
            x, y = self.rng.uniform(minx, maxx), self.rng.uniform(miny, maxy)
            lat = lat0 + y / METRES_PER_DEGREE
            lon = lon0 + x / (METRES_PER_DEGREE * math.cos(math.radians(lat0)))
            if home.check(lat, lon).inside:
                return lat, lon

    def later(self, minutes: float, action) -> None:
        when = self.rt.clock.now() + timedelta(minutes=minutes)
        heapq.heappush(self.queue, (when, next(self.order), action))

    def where(self, chat: int) -> tuple[float, float]:
        """Where a person on Telegram is now: on an approved trip, now and then out of the county, or at home."""
        trip = self.trips.get(chat)
        today = self.rt.clock.now().astimezone(self.rt.settings.zone).date()
        if trip and trip[1] <= today <= trip[2]:
            return trip[0]
        if self.rng.random() < 0.04:  # out of the county without leave
            return self.rng.choice(TRIPS)[1]
        return self.point_at_home()

    @staticmethod
    def persona(person: Supervisee) -> float:
        """How reliable this person is, 0..1, fixed per person."""
        return 0.55 + 0.4 * ((person.id * 37) % 10) / 10

    def intend(self, person: Supervisee, r: float) -> None:
        """Remember what this person meant to do with a check-in prompt: answer within the window or not."""
        self.intended[person.id].append(r < self.persona(person))

    def busy(self) -> bool:
        """Reactions running or due, or deliveries not yet read (read from the service's thread: a hint)."""
        if self.tasks or (self.queue and self.queue[0][0] <= self.rt.clock.now()):
            return True
        if len(self.sms.sent) > self.seen_sms or len(self.tw.calls.placed) > self.seen_calls:
            return True
        return any(len(msgs) > self.seen_tg.get(chat, 0) for chat, msgs in list(self.tg.sent.items()))

    async def step(self) -> None:
        """Read new deliveries, plan reactions, run the ones that are due."""
        for chat, msgs in list(self.tg.sent.items()):
            start = self.seen_tg.get(chat, 0)
            for m in msgs[start:]:
                self.react_tg(chat, m)
            self.seen_tg[chat] = len(msgs)
        for m in self.sms.sent[self.seen_sms:]:
            self.react_sms(m)
        self.seen_sms = len(self.sms.sent)
        calls = self.tw.calls.placed
        for call in calls[self.seen_calls:len(calls)]:
            self.react_call(call)
        self.seen_calls = len(calls)
        now = self.rt.clock.now()
        while self.queue and self.queue[0][0] <= now:
            _, _, action = heapq.heappop(self.queue)
            # Each reaction runs on its own: on a clock this fast, waiting for one would make the next late.
            task = asyncio.create_task(self._safely(action))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _safely(action) -> None:
        try:
            await action()
        except Exception:  # a simulated person's mistake must not stop the demo
            pass

    def react_tg(self, chat: int, m) -> None:
        r = self.rng.random()
        if chat in self.officers:
            if m.buttons and m.buttons[0][1].endswith(":show"):  # a list of alerts: open most of them, one by one
                for _, data in m.buttons:
                    if self.rng.random() < 0.8:
                        self.later(self.rng.uniform(10, 300),
                                   lambda data=data: self.tg.press(chat, m.message_id, data))
            elif m.buttons and m.buttons[0][1].startswith("esc:") and r < 0.6:
                data = m.buttons[self.rng.choice([0, 1, 1, 2])][1]
                self.later(self.rng.uniform(10, 200), lambda: self.tg.press(chat, m.message_id, data))
            elif m.buttons and m.buttons[0][1].startswith("svc:") and r < 0.9:
                self.later(30, lambda: self.tg.press(chat, m.message_id, m.buttons[0][1]))
            elif m.buttons and m.buttons[0][1].startswith("leave:"):  # the first button approves; the last refuses
                data = m.buttons[0 if r < 0.8 else -1][1]
                self.later(self.rng.uniform(20, 240), lambda: self.tg.press(chat, m.message_id, data))
            return
        person = self.people_tg.get(chat)
        if person is None:
            return
        reliable = self.persona(person)
        if m.asks_location and (m.text.startswith("今天的报到") or m.text.startswith("Time for your check-in")):
            self.intend(person, r)
            if r < reliable:  # shares the location (some answer "1" first and are asked for it)
                if self.rng.random() < 0.15:
                    self.later(self.rng.uniform(5, 30), lambda: self.tg.send_text(chat, "1"))
                self.later(self.rng.uniform(5, 100), lambda: self.tg.send_location(chat, *self.where(chat), 20))
            elif r < reliable + 0.1:  # "I am fine", and never the location
                self.later(self.rng.uniform(20, 100), lambda: self.tg.send_text(chat, "1"))
        elif m.text.startswith("今天的报到") or m.text.startswith("Time for your check-in"):
            self.intend(person, r)
            if r < reliable:
                self.later(self.rng.uniform(5, 100), lambda: self.tg.press(chat, m.message_id, m.buttons[0][1]))
            elif r < reliable + 0.1:
                self.later(self.rng.uniform(250, 400), lambda: self.tg.send_text(chat, "1"))
        elif m.buttons and m.buttons[0][1].startswith("study:") and r < reliable:
            right = self.rng.random() < 0.8
            data = m.buttons[0 if right else -1][1]
            self.later(self.rng.uniform(30, 600), lambda: self.tg.press(chat, m.message_id, data))
        elif ("书面汇报" in m.text or "written report" in m.text) and "前提交" in m.text and r < reliable:
            async def report():
                await self.tg.send_text(chat, "/report")
                await self.tg.send_text(chat, "本周按时上班，参加了学习。")
                await self.tg.send_text(chat, "/done")
            self.later(self.rng.uniform(60, 1500), report)
        elif m.text.startswith(("今天是您请假", "Today is the last day of your leave")) and r < 0.8:
            self.later(self.rng.uniform(300, 700), lambda: self.tg.send_text(chat, "/back"))

    def react_sms(self, m) -> None:
        # Someone on voice whose calls went unanswered is on SMS now (unreachable by voice): someone reads it out.
        person = self.people_sms.get(m.to) or self.people_voice.get(m.to)
        if person is None:
            return
        r, reliable = self.rng.random(), self.persona(person)
        body = m.body
        if body.startswith("今天的报到") or body.startswith("Time for your check-in"):
            self.intend(person, r)
            if r < reliable:
                self.later(self.rng.uniform(5, 100), lambda: self.sms.send_sms(m.to, "1"))
            elif r < reliable + 0.1:
                self.later(self.rng.uniform(250, 400), lambda: self.sms.send_sms(m.to, "1"))
        elif ("测验" in body or "Quiz" in body) and r < reliable:
            self.later(self.rng.uniform(30, 600), lambda: self.sms.send_sms(m.to, self.rng.choice("AAAB")))
        elif "前提交" in body and r < reliable:
            async def report():
                await self.sms.send_sms(m.to, "汇报 按时上班，在家附近打零工。")
                await self.sms.send_sms(m.to, "完成")
            self.later(self.rng.uniform(60, 1500), report)
        elif body.startswith(("今天是您请假", "Today is the last day of your leave")) and r < 0.8:
            self.later(self.rng.uniform(300, 700), lambda: self.sms.send_sms(m.to, "销假"))
        self.later(1, lambda: self.sms.report_status(m.sid, "delivered" if r < 0.97 else "undelivered", None
                                                     if r < 0.97 else self.sms.UNDELIVERED))


    def react_call(self, call) -> None:
        """A person on voice: a check-in call is answered (and 1 pressed) as the persona means, else rings out or
        reaches the voicemail; any other call is answered and heard."""
        person = self.people_voice.get(call.to)
        if person is None:
            return
        mid = int(call.url.rpartition("m=")[2])
        if mid not in self.answering:  # a call placed again for the same message meets the same intention
            with session_scope(self.rt.engine) as s:  # what the call is about, as the person hears it
                kind = s.get(Message, mid).kind
            r = self.rng.random()
            if kind == "checkin_prompt":
                self.intend(person, r)
            # As on SMS, a reminder is not what makes them answer: who meant to, answered the first call.
            self.answering[mid] = r < self.persona(person) if kind == "checkin_prompt" else kind != "checkin_reminder"
        if self.answering[mid]:
            self.later(self.rng.uniform(1, 60), lambda: self.tw.calls.ring(call.sid, keys=["1"]))
        else:
            outcome = "voicemail" if self.rng.random() < 0.2 else "no-answer"
            self.later(self.rng.uniform(1, 3), lambda: self.tw.calls.ring(call.sid, outcome=outcome))


class PeopleThread(threading.Thread):
    """The stand-ins and the simulated people, on an event loop of their own in this thread."""

    def __init__(self, sms: str = "twilio") -> None:
        super().__init__(name="demo-people", daemon=True)
        self.tg, self.tw = FakeTelegram(), FakeTwilio()
        self.tc = FakeTencentSms(load_templates()) if sms == "tencent" else None
        self.sim: Simulation | None = None
        self.ready, self.stop = threading.Event(), threading.Event()
        self.go = threading.Event()  # set once `sim` is in place
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        await self.tg.start()
        await self.tw.start()
        if self.tc is not None:
            await self.tc.start()
        self.ready.set()
        try:
            while not self.stop.is_set():
                if self.go.is_set() and self.sim is not None:
                    await self.sim.step()
                await asyncio.sleep(0.002)  # real time: the people react between the service's ticks
            if self.sim is not None and self.sim.tasks:
                await asyncio.gather(*self.sim.tasks, return_exceptions=True)
        finally:
            await self.tg.stop()
            await self.tw.stop()
            if self.tc is not None:
                await self.tc.stop()


async def run(directory: Path, *, days: int = 14, seconds: float = 90, seed: int = 7,
              console: Console | None = None, sms: str = "twilio"):
    """Run the demo; returns its runtime and the simulation (the database stays behind)."""
    out = console or Console(highlight=False)
    # The terminal shows the demo's own output: the libraries' INFO lines (PTB's "Application started") stay out.
    for name in ("telegram", "httpcore", "httpx", "uvicorn", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    db_file = (directory / "checkin.db").resolve()
    speed = days * 86400 / seconds
    zone = load_settings().zone
    today = RealClock().now().astimezone(zone).date()
    start = datetime.combine(today - timedelta(days=days), time(START_HOUR), tzinfo=zone)
    people = PeopleThread(sms)
    people.start()
    people.ready.wait(30)
    if people.error is not None:
        raise people.error
    tg, tw, tc = people.tg, people.tw, people.tc
    port = free_port()
    keys = own_keys(directory / "checkin.keys")
    by_tencent = {} if tc is None else dict(  # SMS through Tencent Cloud's stand-in; calls stay on Twilio's
        sms_provider="tencent", tencent_secret_id=tc.secret_id, tencent_secret_key=tc.secret_key,
        tencent_sms_app_id=tc.app_id, sms_sign_name=tc.sign_name, tencent_sms_endpoint=tc.endpoint,
        tencent_callback_secret=tc.callback_secret)
    settings = load_settings(
        **keys, database_url=f"sqlite:///{db_file}", clock=f"{start.isoformat()}@{speed:.0f}",
        public_url=f"http://127.0.0.1:{port}",
        telegram_bot_token=tg.token, telegram_base_url=tg.base_url, telegram_webhook_secret="demo",
        twilio_account_sid=tw.account_sid, twilio_auth_token=tw.auth_token, twilio_from_number=tw.number,
        twilio_api_base_url=tw.base_url, http_port=port,
        # Rate limits run in real time; on a clock this fast they would hold messages for simulated hours.
        sms_rate=500, telegram_rate=1000, telegram_chat_rate=100, **by_tencent,
    )
    rt = build(settings)
    watch = Stopwatch()
    # Held from the start, until the county is set up and the service listening: at this speed the seconds that
    # take are simulated hours, and the first morning's prompts went out minutes before their window closed.
    watch.hold(True)
    rt.clock = FastClock(start, speed, monotonic=watch)  # the same fast clock, held while the county is busy
    tg.now = lambda: rt.clock.now().timestamp()  # the stand-ins stamp messages on the simulated clock
    tw.now = rt.clock.now
    tw.service_url = settings.public_url
    if tc is not None:
        tc.now, tc.service_url = rt.clock.now, settings.public_url
    migrate(rt.engine)
    sample.seed(rt.engine, rt.clock.now())
    with session_scope(rt.engine) as s:  # officers and half the people on Telegram
        for i, o in enumerate(s.exec(select(Officer).order_by(Officer.id)).all()):
            o.telegram_id = 9000 + i
            s.add(o)
        for p in s.exec(select(Supervisee).order_by(Supervisee.id)).all():
            if p.id % 8 in (0, 1, 2, 7):  # half, strict people among them (and strict people on SMS only)
                p.telegram_chat_id, p.preferred_channel = 70000 + p.id, "telegram"
                s.add(p)
            elif p.id in (3, 4):  # two who cannot read: check-ins by phone call, answered on the keypad
                p.preferred_channel = "voice"
                s.add(p)
    stack = Stack(rt, poll_timeout=0.5)
    web = LoopbackServer(make_app(rt.clock, {}, stack.routes()))
    await web.start(port=port)
    await stack.start()
    sim = Simulation(rt, tg, tw, seed, sms=tc)
    sim.load()
    sim.plan_leave(days)
    people.sim = sim
    people.go.set()
    end = start + timedelta(days=days)
    done = asyncio.Event()
    ticking = asyncio.Lock()  # held while a tick runs: the demo ends between ticks, never inside one

    async def job() -> None:
        async with ticking:
            if done.is_set():
                return
            report = await stack.ticker.tick()
            if report.at >= end:
                done.set()

    # One tick every simulated minute would be hundreds a second at this speed, each taking the database's
    # write lock from the people's answers: tick every 50 ms of real time instead (a few simulated minutes).
    clock_job = make_scheduler(job, rt.clock, interval=max(0.05, 60.0 / speed))
    clock_job.start()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[now]}"),
                      console=out) as bar:
            task = bar.add_task(text(rt.settings.language, "office.demo.progress"), total=days * 24, now="")
            while not done.is_set():
                now = rt.clock.now()
                hours = (now - start).total_seconds() / 3600
                bar.update(task, completed=min(hours, days * 24),
                           now=now.astimezone(rt.settings.zone).strftime("%m-%d %H:%M"))
                # A tick that sends the morning's prompts may take a good part of a second on a slow machine:
                # hours at this speed, out of the people's windows. The clock waits for it too.
                watch.hold(ticking.locked() or sim.busy() or stack.busy() or outbox_busy(rt.engine, rt.clock.now()))
                await asyncio.sleep(0.01)
    finally:
        done.set()
        clock_job.shutdown(wait=False)
        async with ticking:  # a tick already running finishes first
            pass
        people.stop.set()
        await asyncio.to_thread(people.join, 30)
        await stack.stop()
        await web.stop()
        # A clock job the scheduler started as it shut down ends at once (`done` is set): let it, rather than
        # have asyncio.run cancel it and APScheduler print the CancelledError.
        # The scheduler may start one more as it shuts down, after a first look: look until none is left.
        for _ in range(100):
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
            if not others:
                break
            await asyncio.wait(others, timeout=0.05)
    summarise(rt, out)
    return Outcome(rt, start, end, sim)
