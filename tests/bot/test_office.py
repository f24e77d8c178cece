"""The office's web console through Starlette's TestClient: signing in, sessions, CSRF, throttling, scopes, and
the same actions as the chat (audited with the signed-in officer as the actor)."""

from __future__ import annotations

import functools
import re
from datetime import timedelta

import pyotp
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from bot.office import auth
from bot.office.app import office_routes
from bot.runtime import Runtime
from bot.settings import load_settings
from bot.web import make_app
from handlers import officer_accounts
from scheduler.clock import FixedClock
from storage.db import session_scope
from storage.models import AuditEntry, Escalation, Message, Officer, Supervisee, Warning_
from tests.conftest import clear_env
from tests.sim import County, local, steps

PASSWORD = "correct horse battery"


@functools.cache
def _hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(PASSWORD)


class Office:
    """A county after Monday's missed check-ins, every officer with a console password."""

    def __init__(self, db, monkeypatch, tmp_path) -> None:
        monkeypatch.chdir(tmp_path)
        clear_env(monkeypatch)
        self.county = c = County(db)
        for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 13, 30), minutes=30):
            c.sweep(now)
        self.clock = FixedClock(local(2027, 3, 1, 20))
        with session_scope(db.engine) as s:
            for o in (c.li, c.other, c.boss):  # one argon2 hash for all (hashing is slow on purpose)
                s.get(Officer, o.id).password_hash = _hash()
            self.secret = auth.new_totp_secret()
            officer_accounts.set_password(s, s.get(Officer, c.admin.id), PASSWORD, local(2027, 3, 1), actor="test",
                                          totp_secret=self.secret)
        self.rt = Runtime(load_settings(database_url=db.url), db.engine, self.clock)
        routes, errors = office_routes(self.rt)
        self.app = make_app(self.clock, {}, routes, errors)

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="http://testserver", follow_redirects=False)

    def sign_in(self, officer, password: str = PASSWORD, code: str | None = None, client: TestClient | None = None):
        client = client or self.client()
        data = {"login": str(officer.id), "password": password, "next": "/console/"}
        if code is not None:
            data["code"] = code
        return client, client.post("/console/login", data=data)

    def audit(self) -> list[tuple[str, str]]:
        with session_scope(self.county.engine) as s:
            return [(a.actor, a.action) for a in s.exec(select(AuditEntry).order_by(AuditEntry.id))]


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture
def office(db, monkeypatch, tmp_path) -> Office:
    return Office(db, monkeypatch, tmp_path)


def test_signing_in_by_mobile_number_or_id_with_a_session_cookie(office):
    c = office.county
    with session_scope(c.engine) as s:
        li = s.get(Officer, c.li.id)
        li.phone = "+8613700000005"
    client = office.client()
    assert client.get("/console/").headers["location"] == "/console/login?next=/console/"
    page = client.get("/console/login")
    assert page.status_code == 200 and "手机号或编号" in page.text
    wrong = client.post("/console/login", data={"login": "137 0000 0005", "password": "nope", "next": "/console/"})
    assert wrong.status_code == 401 and "手机号、编号或密码不对。" in wrong.text
    ok = client.post("/console/login", data={"login": "137 0000 0005", "password": PASSWORD, "next": "/console/"})
    assert ok.status_code == 303 and ok.headers["location"] == "/console/"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith(f"{auth.COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind HTTPS (an https public URL) the cookie is Secure
    inbox = client.get("/console/")
    assert inbox.status_code == 200 and "待处理提醒（3）" in inbox.text and "王伟（JZ-S）" in inbox.text
    assert ("officer:2", "web.login_failed") in office.audit() and ("officer:2", "web.login") in office.audit()


def test_an_administrator_needs_the_totp_code(office):
    admin = office.county.admin
    _, without = office.sign_in(admin)
    assert without.status_code == 401 and "需要正确的动态验证码。" in without.text
    _, wrong = office.sign_in(admin, code="000000")
    assert wrong.status_code == 401
    code = pyotp.TOTP(office.secret).at(office.clock.now())
    client, ok = office.sign_in(admin, code=code)
    assert ok.status_code == 303
    assert "待处理提醒（3）" in client.get("/console/").text  # the county's


def test_sign_in_is_throttled_per_account(office):
    li = office.county.li
    for _ in range(auth.MAX_FAILURES_ACCOUNT):
        assert office.sign_in(li, password="wrong password")[1].status_code == 401
    _, blocked = office.sign_in(li)  # even the right password, for a while
    assert blocked.status_code == 429 and "15 分钟" in blocked.text
    office.clock.advance(auth.THROTTLE_WINDOW + timedelta(seconds=1))
    assert office.sign_in(li)[1].status_code == 303


def test_acting_on_an_alert_as_the_chat_does_and_csrf(office):
    c = office.county
    client, _ = office.sign_in(c.li)
    inbox = client.get("/console/").text
    esc = next(e for e in c.escalations() if e.supervisee_id == c.strict.id)
    refused = client.post(f"/console/alerts/{esc.id}", data={"action": "ack"})  # no token
    assert refused.status_code == 403
    assert c.escalations()[0].acknowledged_at is None
    done = client.post(f"/console/alerts/{esc.id}", data={"action": "ack", "csrf": csrf(inbox)})
    assert done.status_code == 200 and f"✅ 已知悉 #{esc.id}" in done.text
    again = client.post(f"/console/alerts/{esc.id}", data={"action": "excuse", "csrf": csrf(inbox)})
    assert "免除需要写明原因。" in again.text
    client.post(f"/console/alerts/{esc.id}", data={"action": "excuse", "reason": "住院", "csrf": csrf(inbox)})
    with session_scope(c.engine) as s:
        row = s.get(Escalation, esc.id)
        assert (row.state, row.resolution, row.note) == ("resolved", "excused", "住院")
    assert [a for a in office.audit() if a[1].startswith("escalation.")] == [
        ("officer:2", "escalation.ack"), ("officer:2", "escalation.excuse")]


def test_scopes_another_officers_person_is_a_404(office):
    c = office.county
    zhao, _ = office.sign_in(c.other)
    assert zhao.get("/console/people/JZ-S").status_code == 404
    assert zhao.get("/console/people/NO-SUCH").status_code == 404  # the same answer: nothing leaks
    assert "JZ-S" not in zhao.get("/console/people").text
    form = zhao.get("/console/").text
    esc = c.escalations()[0]
    assert zhao.post(f"/console/alerts/{esc.id}", data={"action": "ack", "csrf": csrf(form)}).status_code == 404
    assert zhao.post("/console/people/JZ-S/say", data={"text": "hi", "csrf": csrf(form)}).status_code == 404
    boss, _ = office.sign_in(c.boss)
    listed = boss.get("/console/people").text
    assert all(case in listed for case in ("JZ-S", "JZ-O", "JZ-L"))
    assert boss.get("/console/people?q=0002").text.count("/console/people/JZ-") == 1  # 刘芳 by her last digits


def test_a_persons_page_messages_and_the_life_of_a_case(office):
    c = office.county
    client, _ = office.sign_in(c.li)
    page = client.get("/console/people/JZ-S")
    assert page.status_code == 200 and "王伟" in page.text and "今天的报到时间到了" in page.text
    assert '<td class="missed today" title="未报到">1</td>' in page.text  # Monday's check-in, on the calendar
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page.text and "<title>红果镇</title>" in page.text
    assert page.text.count('class="spot') == 0 and "学习: 0.0 / 8 h" in page.text.replace("：", ": ")
    said = client.post("/console/people/JZ-S/say", data={"text": "明天上午来一趟司法所。", "csrf": csrf(page.text)})
    assert "已发送给王伟" in said.text
    with session_scope(c.engine) as s:
        (msg,) = s.exec(select(Message).where(Message.kind == "officer_message")).all()
        assert msg.body == "协管员李娜：明天上午来一趟司法所。" and msg.supervisee_id == c.strict.id
    paused = client.post("/console/people/JZ-S/pause", data={
        "start": "2027-03-02", "end": "2027-03-05", "reason": "住院", "csrf": csrf(page.text)})
    assert "从 2027-03-02 到 2027-03-05 暂停报到" in paused.text
    bad = client.post("/console/people/JZ-S/pause", data={
        "start": "2027-03-09", "end": "2027-03-05", "reason": "住院", "csrf": csrf(page.text)})
    assert "早于开始日期" in bad.text
    assert client.post("/console/people/JZ-S/transfer", data={"officer": str(c.other.id),
                                                              "csrf": csrf(page.text)}).status_code == 404
    assert ("officer:2", "case.pause") in office.audit() and ("officer:2", "message.sent") in office.audit()
    boss, _ = office.sign_in(c.boss)
    form = boss.get("/console/people/JZ-S").text
    moved = boss.post("/console/people/JZ-S/transfer", data={"officer": str(c.other.id), "csrf": csrf(form)})
    assert "已转给赵强（两河镇）" in moved.text
    with session_scope(c.engine) as s:
        assert s.get(Supervisee, c.strict.id).officer_id == c.other.id


def test_sessions_end_on_sign_out_on_deactivation_and_on_a_new_password(office):
    c = office.county
    client, _ = office.sign_in(c.li)
    page = client.get("/console/").text
    client.post("/console/logout", data={"csrf": csrf(page)})
    assert client.get("/console/").status_code == 303
    client, _ = office.sign_in(c.li)
    with session_scope(c.engine) as s:
        officer_accounts.deactivate(s, s.get(Officer, c.li.id), s.get(Officer, c.boss.id), office.clock.now(),
                                    actor="test")
    assert client.get("/console/").status_code == 303  # at once
    assert office.sign_in(c.li)[1].status_code == 401
    boss, _ = office.sign_in(c.boss)
    with session_scope(c.engine) as s:
        officer_accounts.set_password(s, s.get(Officer, c.boss.id), "another long password", office.clock.now(),
                                      actor="test")
    assert boss.get("/console/").status_code == 303


def test_english_switch(office):
    client, _ = office.sign_in(office.county.li)
    client.get("/console/lang/en")
    assert "Open alerts (3)" in client.get("/console/").text


def test_the_passwd_command_sets_a_password_and_an_administrators_totp_qr(db, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    c = County(db)
    monkeypatch.setenv("CHECKIN_DATABASE_URL", db.url)
    monkeypatch.setenv("CHECKIN_CLOCK", "2027-03-01T10:00+08:00@1")
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})
    short = runner.invoke(app, ["officer", "passwd", str(c.li.id), "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 10 characters" in short.output
    ok = runner.invoke(app, ["officer", "passwd", str(c.li.id), "--password-stdin"], input=f"{PASSWORD}\n")
    assert ok.exit_code == 0 and "password set" in ok.output and "TOTP" not in ok.output
    admin = runner.invoke(app, ["officer", "passwd", str(c.admin.id), "--password-stdin", "--qr", "qr.png"],
                          input=f"{PASSWORD}\n", env={"COLUMNS": "200"})
    assert admin.exit_code == 0 and "scan qr.png" in admin.output and "otpauth://totp/" in admin.output
    assert (tmp_path / "qr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with session_scope(c.engine) as s:
        li, boss = s.get(Officer, c.li.id), s.get(Officer, c.admin.id)
        assert officer_accounts.password_ok(li, PASSWORD) and not officer_accounts.password_ok(li, "short")
        assert li.password_hash.startswith("$argon2") and PASSWORD not in li.password_hash
        assert boss.totp_secret and boss.totp_secret in admin.output
    with db.engine.connect() as conn:  # the TOTP secret is stored encrypted
        raw = conn.exec_driver_sql(f"SELECT totp_secret FROM officer WHERE id = {c.admin.id}").scalar()
    assert boss.totp_secret not in raw
    with session_scope(c.engine) as s:
        changed = [a for a in s.exec(select(AuditEntry)) if a.action == "officer.password"]
    assert [(a.subject, a.actor.startswith("cli:")) for a in changed] == [
        (f"officer:{c.li.id}", True), (f"officer:{c.admin.id}", True)]


# The authorization matrix over the console's routes: the case is 刘芳's (JZ-O, 李娜's caseload). 200: allowed (the
# page or the action's result); 404: refused, as if the case did not exist.
CONSOLE_MATRIX = [  # (method, route, form, expected status for: assistant, other township, supervisor, admin)
    ("GET", "/console/people/JZ-O", None, (200, 404, 200, 200)),
    ("POST", "/console/people/JZ-O/say", {"text": "明天来一趟。"}, (200, 404, 200, 200)),
    ("POST", "/console/people/JZ-O/level", {"level": "strict"}, (200, 404, 200, 200)),
    ("POST", "/console/people/JZ-O/transfer", {"officer": "other"}, (404, 404, 200, 200)),
    ("POST", "/console/alerts/{esc}", {"action": "ack"}, (200, 404, 200, 200)),
    ("POST", "/console/people/JZ-O/warn", {"reason": "未按时报到"}, (200, 404, 200, 200)),
]
WHO = ("li", "other", "boss", "admin")


@pytest.mark.slow  # 24 cells a database: CI runs them; the default run keeps to about five minutes
@pytest.mark.parametrize("route", CONSOLE_MATRIX, ids=[r[1].rsplit("/", 1)[-1] for r in CONSOLE_MATRIX])
@pytest.mark.parametrize("who", range(4), ids=WHO)
def test_console_matrix(office, route, who):
    c = office.county
    officer = getattr(c, WHO[who])
    code = pyotp.TOTP(office.secret).at(office.clock.now()) if WHO[who] == "admin" else None
    client, signed = office.sign_in(officer, code=code)
    assert signed.status_code == 303
    token = csrf(client.get("/console/").text)
    esc = next(e for e in c.escalations() if e.supervisee_id == c.ordinary.id)
    method, path, form, expected = route
    path = path.format(esc=esc.id)
    if form is not None and form.get("officer") == "other":
        form = {**form, "officer": str(c.other.id)}
    response = client.get(path) if method == "GET" else client.post(path, data={**form, "csrf": token})
    assert response.status_code == expected[who], (WHO[who], path, response.text[:200])
    with session_scope(c.engine) as s:
        fang = s.get(Supervisee, c.ordinary.id)
        changed = ((fang.level, fang.officer_id) != ("ordinary", c.li.id) or s.get(Escalation, esc.id).acknowledged_at
                   or s.exec(select(Warning_)).first() is not None)
    if expected[who] == 404:
        assert not changed  # a refusal changes nothing


async def test_a_one_time_link_from_the_bot_signs_an_officer_in(office):
    from content.areas import load_areas
    from handlers.contract import Inbound
    from handlers.router import default_router
    from tests.sim import SH

    c = office.county
    router = default_router(policy=c.policy, areas=load_areas(), zone=SH, console_url="https://checkin.example/console")

    async def web(chat: str) -> str:
        handled = await router.handle(c.engine, Inbound("telegram", chat, text="/web"), office.clock.now())
        return handled.replies[0].text

    said = await web("5001")
    assert said.startswith("登录工作台（10 分钟内有效，只能用一次，请勿转发）：https://checkin.example/console/link/")
    path = said.split("https://checkin.example")[1]
    client = office.client()
    first = client.get(path)
    assert first.status_code == 303 and auth.COOKIE in first.headers["set-cookie"]
    assert "待处理提醒（3）" in client.get("/console/").text
    assert office.client().get(path).status_code == 401  # once only
    late = (await web("5001")).split("https://checkin.example")[1]
    office.clock.advance(timedelta(minutes=11))
    assert office.client().get(late).status_code == 401  # ten minutes
    # An administrator's link asks for the TOTP code before it is used.
    admin_path = (await web("1")).split("https://checkin.example")[1]
    asked = office.client().get(admin_path)
    assert asked.status_code == 200 and 'name="code"' in asked.text
    client = office.client()
    assert client.post(admin_path, data={"code": "000000"}).status_code == 401
    done = client.post(admin_path, data={"code": pyotp.TOTP(office.secret).at(office.clock.now())})
    assert done.status_code == 303
    with session_scope(c.engine) as s:  # 李娜 by SMS: no link (it could sit on a shared phone's lock screen)
        s.get(Officer, c.li.id).phone = "+8613700000005"
    by_sms = await router.handle(c.engine, Inbound("sms", "+8613700000005", text="/web"), office.clock.now())
    assert by_sms.replies[0].text == "登录链接只通过 Telegram 发送。请在 Telegram 里发 /web。"


async def test_shared_points_on_the_map_and_the_ones_beyond_it(office):
    from handlers.contract import Inbound, Location

    c = office.county
    for point, at in (((27.10, 106.30), local(2027, 3, 1, 14)), ((23.13, 113.26), local(2027, 3, 1, 15))):
        await c.router.handle(c.engine, Inbound("telegram", "7002", location=Location(*point, 20)), at)
    client, _ = office.sign_in(c.li)
    page = client.get("/console/people/JZ-O").text
    assert page.count('class="spot inside"') == 1  # in 两河镇, drawn
    assert "在地图范围以外（23.130, 113.260）" in page  # Guangzhou: listed, not drawn
    assert client.get("/console/people/JZ-O?month=2027-02").text.count('<td class="missed') == 0  # February: none


async def test_the_demo_serves_the_console_on_its_database_until_stopped(office):
    import asyncio

    import httpx

    from bot.office.demo import serve_console
    from bot.sandbox.loopback import free_port

    port, stop, listening = free_port(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve_console(office.rt, port, stop, listening))
    await asyncio.wait_for(listening.wait(), 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        page = await client.get("/console/login")
        assert page.status_code == 200 and "登录" in page.text
        signed = await client.post("/console/login", data={"login": str(office.county.li.id), "password": PASSWORD,
                                                           "next": "/console/"})
        assert signed.status_code == 303
    stop.set()
    await asyncio.wait_for(task, 10)


def _admin(office) -> TestClient:
    client, signed = office.sign_in(office.county.admin, code=pyotp.TOTP(office.secret).at(office.clock.now()))
    assert signed.status_code == 303
    return client


def test_administration_is_for_administrators_only(office):
    for who in (office.county.li, office.county.boss):
        client, _ = office.sign_in(who)
        for path in ("/console/admin/officers", "/console/admin/roster", "/console/admin/report",
                     "/console/admin/audit", "/console/admin/report.csv"):
            assert client.get(path).status_code == 404, (who.name, path)
        assert "/console/admin/" not in client.get("/console/").text  # no such links either


def test_officers_added_reset_and_deactivated_in_the_page(office):
    c = office.county
    client = _admin(office)
    page = client.get("/console/admin/officers")
    assert page.status_code == 200 and "李娜" in page.text and "赵强" in page.text
    token = csrf(page.text)
    bad = client.post("/console/admin/officers", data={"name": "孙新", "township": "两河镇", "role": "assistant",
                                                       "phone": "12345", "csrf": token})
    assert "12345" in bad.text and "不是 CN 地区的有效号码" in bad.text  # in the officer's language
    added = client.post("/console/admin/officers", data={"name": "孙新", "township": "两河镇", "role": "assistant",
                                                         "phone": "139 0000 7777", "csrf": token})
    assert "已添加 #" in added.text and "孙新" in added.text
    newcomer = re.search(r"已添加 #(\d+)", added.text).group(1)
    reset = client.post(f"/console/admin/officers/{newcomer}/password", data={"csrf": token})
    temporary = re.search(r"临时密码：(\S+)（", reset.text).group(1)
    other = office.client()
    assert other.post("/console/login", data={"login": "139 0000 7777", "password": temporary,
                                              "next": "/console/"}).status_code == 303
    gone = client.post(f"/console/admin/officers/{c.li.id}/deactivate", data={"successor": str(c.boss.id),
                                                                             "csrf": token})
    assert "已停用李娜：转交 3 人" in gone.text
    assert [a for _, a in office.audit() if a in ("officer.add", "officer.password", "officer.deactivate")][-3:] == [
        "officer.add", "officer.password", "officer.deactivate"]


def test_roster_upload_checks_every_row_then_imports_all_or_nothing(office):
    c = office.county
    client = _admin(office)
    token = csrf(client.get("/console/admin/roster").text)
    header = "案号,姓名,手机号,语言,矫正类别,管理等级,司法所,协管员编号,矫正开始,矫正结束"
    good = [f"JZ-N{i},新{i},1390000100{i},中文,缓刑,普管,红果镇,{c.li.id},2027-03-01,2028-03-01" for i in range(3)]
    bad = good[:2] + [good[2].replace("2027-03-01", "2027-13-01")]

    def upload(lines, dry):
        data = {"csrf": token, **({"dry_run": "1"} if dry else {})}
        files = {"file": ("花名册.csv", ("\r\n".join([header, *lines]) + "\r\n").encode("gbk"), "text/csv")}
        return client.post("/console/admin/roster", data=data, files=files)

    refused = upload(bad, dry=False)
    assert "有 1 处问题，整份没有导入" in refused.text and "2027-13-01" in refused.text
    assert "<td>没有这一天</td>" in refused.text  # the row's problem in the officer's language
    checked = upload(good, dry=True)
    assert "检查通过：将新增 3 人" in checked.text
    with session_scope(c.engine) as s:
        assert s.exec(select(Supervisee).where(Supervisee.case_number.like("JZ-N%"))).all() == []
    done = upload(good, dry=False)
    assert "已导入：新增 3 人" in done.text
    with session_scope(c.engine) as s:
        assert len(s.exec(select(Supervisee).where(Supervisee.case_number.like("JZ-N%"))).all()) == 3
    assert ("officer:4", "roster.import") in office.audit()


def test_the_report_page_with_its_chart_and_downloads(office):
    client = _admin(office)
    page = client.get("/console/admin/report?month=2027-03")
    assert page.status_code == 200 and "月度报表 2027-03" in page.text and "本月到目前为止" in page.text
    assert 'class="bar-row"><span class="bar-label">红果镇</span>' in page.text and "全县" in page.text
    assert "<th>学习未达标</th>" in page.text and "under_study" not in page.text  # figures named in words
    csv_file = client.get("/console/admin/report.csv?month=2027-03")
    assert csv_file.content.startswith(b"\xef\xbb\xbfmonth,township,")
    assert "红果镇" in csv_file.content.decode("utf-8-sig")
    xlsx = client.get("/console/admin/report.xlsx?month=2027-03")
    assert xlsx.content[:4] == b"PK\x03\x04" and "attachment" in xlsx.headers["content-disposition"]
    assert "这个月还没开始" in client.get("/console/admin/report?month=2027-05").text


def test_the_audit_page_verifies_the_chain(office):
    client = _admin(office)
    page = client.get("/console/admin/audit")
    assert page.status_code == 200 and "审计链完整" in page.text and "web.login" in page.text
    assert "case.pause" not in client.get("/console/admin/audit?case=JZ-S").text


def test_an_announcement_written_in_the_page_previewed_then_sent_once(office):
    from handlers import greetings

    c = office.county
    client = _admin(office)
    token = csrf(client.get("/console/admin/broadcast").text)
    bad = client.post("/console/admin/broadcast", data={"text_zh-CN": "{姓名}，明天停电。", "csrf": token})
    assert "unknown placeholder {姓名}" in bad.text
    words = {"text_zh-CN": "{name}，您好：3月8日司法所停电，报到照常用短信。{officer}", "text_en": "", "csrf": token,
             "township": "红果镇"}
    preview = client.post("/console/admin/broadcast", data={**words, "action": "preview"})
    assert "共 3 人" in preview.text and "王伟，您好：3月8日司法所停电" in preview.text and "短信约 1 条" in preview.text
    assert "发送给 3 人" in preview.text
    sent = client.post("/console/admin/broadcast", data={**words, "action": "send"})
    assert sent.status_code == 303 and "/console/admin/broadcast/progress?key=broadcast:web:" in sent.headers["location"]
    key = sent.headers["location"].split("key=")[1]
    progress = client.get(f"/console/admin/broadcast/progress?key={key}&format=json").json()
    assert progress == {"counts": {"queued": 3}, "total": 3, "done": 0}
    again = client.post("/console/admin/broadcast", data={**words, "action": "send"})  # the same words, same day
    assert client.get(again.headers["location"] + "&format=json").json()["total"] == 3  # nothing twice
    with session_scope(c.engine) as s:  # as the drain claims them: each person's own name, the English-speaker's too
        rows = s.exec(select(Message).where(Message.dedupe_key.like(f"{key}:%"))).all()
        import json

        from storage.outbox import Outgoing

        claimed = greetings.render_claimed(s, [Outgoing(r.id, r.channel, r.address, r.body, json.loads(r.payload),
                                                        r.attempts, r.kind, r.supervisee_id) for r in rows],
                                           office.clock.now())
    bodies = sorted(r.body for r in claimed)
    assert bodies[0].startswith("Tom Lee，您好：3月8日") and bodies[1].startswith("刘芳，您好") and "李娜" in bodies[2]
    assert ("officer:4", "broadcast.send") in office.audit()


def test_free_text_placeholders():
    from handlers.greetings import free_text_problem

    assert free_text_problem("{name}，{officer} 找您。") is None
    assert free_text_problem("价格 {{10}} 元") is None  # doubled braces are literal
    assert free_text_problem("{name").startswith("a brace out of place")
    assert free_text_problem("   ") == "empty" and free_text_problem("x" * 501).startswith("longer than")


def test_community_service_and_warnings_from_the_console(office):
    c = office.county
    client, _ = office.sign_in(c.li)
    token = csrf(client.get("/console/service").text)
    refused = client.post("/console/service", data={"day": "2027-03-05", "start": "09:00", "end": "12:00",
                                                    "hours": "3", "place": "敬老院", "cases": "JZ-O,JZ-X",
                                                    "csrf": token})
    assert "没有安排：没有案号为 &#39;JZ-X&#39; 的矫正对象" in refused.text  # in the officer's language (escaped)
    made = client.post("/console/service", data={"day": "2027-03-05", "start": "09:00", "end": "12:00", "hours": "3",
                                                 "place": "敬老院", "cases": "JZ-O，JZ-S", "csrf": token})
    assert "已安排 #1" in made.text and "2 人会收到通知" in made.text and "待参加" in made.text
    with session_scope(c.engine) as s:
        from storage.models import ServiceAttendance

        first = s.exec(select(ServiceAttendance).order_by(ServiceAttendance.id)).first().id
    verified = client.post(f"/console/service/attendance/{first}", data={"result": "ok", "hours": "2.5",
                                                                         "csrf": token})
    assert "已核实：刘芳，2.5 小时。" in verified.text
    zhao, _ = office.sign_in(c.other)  # another township: not theirs
    assert zhao.post(f"/console/service/attendance/{first}", data={"result": "absent", "csrf": token}
                     ).status_code in (403, 404)
    page = client.get("/console/people/JZ-S").text
    warned = client.post("/console/people/JZ-S/warn", data={"reason": "三次未报到", "csrf": csrf(page)})
    assert "已记录对王伟的警告" in warned.text and "三次未报到" in warned.text
    with session_scope(c.engine) as s:
        wid = s.exec(select(Warning_)).one().id
    withdrawn = client.post("/console/people/JZ-S/withdraw", data={"warning": str(wid), "reason": "已核实住院",
                                                                  "csrf": csrf(page)})
    assert f"已撤销警告 #{wid}" in withdrawn.text and "已撤销" in withdrawn.text
    assert [a for _, a in office.audit() if a.startswith(("service.", "warning."))] == [
        "service.verified", "warning.add", "warning.withdrawal"]
    told = [m.body for m in c.out(kind="warning")]
    assert any("三次未报到" in b for b in told) and len(told) == 2


def test_an_officer_edited_in_the_page_as_the_cli_checks(office):
    c = office.county
    client = _admin(office)
    token = csrf(client.get("/console/admin/officers").text)
    bad = client.post(f"/console/admin/officers/{c.other.id}", data={"phone": "12345", "csrf": token})
    assert "phone=&#39;12345&#39;：不是 CN 地区的有效号码" in bad.text
    taken = client.post(f"/console/admin/officers/{c.other.id}", data={"telegram_id": "5001", "csrf": token})
    assert "已被工作人员 2 使用" in taken.text
    ok = client.post(f"/console/admin/officers/{c.other.id}", data={
        "name": "赵强", "township": "红果镇", "role": "assistant", "phone": "139 0000 8888", "supervisor_id": str(c.boss.id),
        "telegram_id": "5002", "language": "en", "csrf": token})
    assert "已修改赵强：township, supervisor_id, phone, language。" in ok.text
    with session_scope(c.engine) as s:
        zhao = s.get(Officer, c.other.id)
        assert (zhao.township, zhao.supervisor_id, zhao.language, zhao.phone) == ("红果镇", c.boss.id, "en",
                                                                                 "+8613900008888")
    assert ("officer:4", "officer.edit") in office.audit()


def test_sign_in_is_throttled_per_address_too(office):
    client = office.client()
    for n in range(auth.MAX_FAILURES_ADDRESS):  # unknown accounts, all from one address
        wrong = client.post("/console/login", data={"login": f"13900000{n:03d}", "password": "guess",
                                                    "next": "/console/"})
        assert wrong.status_code == 401
    _, blocked = office.sign_in(office.county.li, client=client)  # a real account, from that address: not now
    assert blocked.status_code == 429
    with session_scope(office.county.engine) as s:  # the address is kept only as a keyed hash
        from storage.console_models import LoginAttempt

        keys = {a.key for a in s.exec(select(LoginAttempt))}
    assert all("testclient" not in k for k in keys) and any(k.startswith("addr:") for k in keys)


async def test_a_spoken_report_is_heard_in_the_console_only_by_those_allowed(office):
    """The audio comes from Twilio through the service (never a link to Twilio), to officers who may see the
    person, each listening audited; an address that is not the Twilio API's is never fetched."""
    import asyncio

    from bot.sandbox.twilio_api import FakeTwilio
    from bot.sandbox.twilio_calls import Call
    from storage.models import WrittenReport

    c = office.county
    fake = FakeTwilio()
    await fake.start()
    try:
        rec = "RE" + "7" * 32
        call = Call("CA" + "1" * 32, fake.number, "+8613800000001", "", None, None)
        call.recorded.append(rec)
        fake.calls.by_sid[call.sid] = call
        settings = load_settings(database_url=c.engine.url.render_as_string(hide_password=False),
                                 twilio_account_sid=fake.account_sid, twilio_auth_token=fake.auth_token,
                                 twilio_from_number=fake.number, twilio_api_base_url=fake.base_url)
        routes, errors = office_routes(Runtime(settings, c.engine, office.clock))
        office.app = make_app(office.clock, {}, routes, errors)
        with session_scope(c.engine) as s:
            heard = WrittenReport(supervisee_id=c.strict.id, receipt="R-2027-0901", parts=1, body="（电话汇报，40秒）",
                                  submitted_at=local(2027, 3, 1, 9), recording_seconds=40,
                                  recording_url=f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Recordings/{rec}")
            elsewhere = WrittenReport(supervisee_id=c.strict.id, receipt="R-2027-0902", parts=1, body="x",
                                      submitted_at=local(2027, 3, 1, 9), recording_seconds=5,
                                      recording_url="https://elsewhere.example/Recordings/RE1")
            s.add(heard)
            s.add(elsewhere)
            s.flush()
            ids = heard.id, elsewhere.id
        li, _ = await asyncio.to_thread(office.sign_in, c.li)
        page = (await asyncio.to_thread(li.get, "/console/people/JZ-S")).text
        assert f'<audio controls preload="none" src="/console/recording/{ids[0]}">' in page
        got = await asyncio.to_thread(li.get, f"/console/recording/{ids[0]}")
        assert got.status_code == 200 and got.headers["content-type"] == "audio/mpeg"
        assert got.content == fake.calls.audio(rec) and got.headers["cache-control"] == "no-store"
        assert (await asyncio.to_thread(li.get, f"/console/recording/{ids[1]}")).status_code == 404
        zhao, _ = await asyncio.to_thread(office.sign_in, c.other)
        assert (await asyncio.to_thread(zhao.get, f"/console/recording/{ids[0]}")).status_code == 404
        assert (await asyncio.to_thread(office.client().get, f"/console/recording/{ids[0]}")).status_code == 303
        assert office.audit().count((f"officer:{c.li.id}", "recording.listen")) == 1
        assert [r for r in fake.requests if "recording" in r] == [{"recording": rec}]  # elsewhere: never fetched
    finally:
        await fake.stop()


def test_call_outcomes_in_the_thread_and_the_channel_chosen_in_the_page(office):
    """How each call went, beside it in the person's thread (and in /case in the chat); the channel changed from the
    page as `checkin case channel` does, audited, refused with the reason when it cannot be."""
    from handlers.contract import Context, Sender, SenderKind
    from handlers.officer import _thread_line

    c = office.county
    calls = [("checkin_prompt", "undelivered", "busy", None), ("checkin_prompt", "queued", "no-answer",
             local(2027, 3, 1, 9, 45)), ("checkin_reminder", "delivered", None, None), ("reply", "sent", None, None)]
    with session_scope(c.engine) as s:
        for i, (kind, status, code, again) in enumerate(calls):
            s.add(Message(direction="out", channel="voice", address="+8613800000001", supervisee_id=c.strict.id,
                          kind=kind, body=f"电话{i}", status=status, error_code=code, next_attempt_at=again,
                          provider_id=f"CA{i}:9" if kind == "reply" else f"CA{i}", created_at=local(2027, 3, 1, 9, i),
                          updated_at=local(2027, 3, 1, 9, i)))
        s.add(Message(direction="in", channel="voice", address="+8613800000001", supervisee_id=c.strict.id,
                      kind="text", body="1", status="handled", created_at=local(2027, 3, 1, 11),
                      updated_at=local(2027, 3, 1, 11)))
        s.add(Message(direction="out", channel="sms", address="+8613800000001", supervisee_id=c.strict.id,
                      kind="reply", body="短信", status="failed", error_code="30003", created_at=local(2027, 3, 1, 12),
                      updated_at=local(2027, 3, 1, 12)))
    client, _ = office.sign_in(c.li)
    page = client.get("/console/people/JZ-S").text
    for said in ("📞 电话0 <span class=\"muted\">· 占线</span>", "📞 电话1 <span class=\"muted\">· 无人接听；09:45 再次呼叫",
                 "📞 电话2 <span class=\"muted\">· 已接听", "📞 电话3 <span class=\"muted\">· 已在通话中告知", "📞 1</li>",
                 "短信 <span class=\"muted\">· 未送达"):
        assert said in page, said
    with session_scope(c.engine) as s:
        ctx = Context(session=s, now=office.clock.now(), sender=Sender(SenderKind.officer, officer=c.li,
                                                                       language="en"),
                      policy=office.rt.policy, zone=office.rt.settings.zone, areas=office.rt.areas)
        busy = s.exec(select(Message).where(Message.channel == "voice", Message.status == "undelivered")).one()
        assert _thread_line(ctx, busy).endswith("→ 📞 电话0 (busy)")
    assert "<dt>联系方式</dt><dd>短信</dd>" in page
    changed = client.post("/console/people/JZ-S/channel", data={"channel": "voice", "csrf": csrf(page)})
    assert "✅ 王伟（JZ-S）：之后通过电话联系。" in changed.text and "<dt>联系方式</dt><dd>电话</dd>" in changed.text
    with session_scope(c.engine) as s:
        assert s.get(Supervisee, c.strict.id).preferred_channel == "voice"
        told = s.exec(select(Message).where(Message.kind == "case_change")).one()
        assert told.channel == "voice"  # the person hears it by the channel they now have
    assert ("officer:2", "case.channel") in office.audit()
    refused = client.post("/console/people/JZ-S/channel", data={"channel": "telegram", "csrf": csrf(page)})
    assert "JZ-S 没有可用的 Telegram。" in refused.text
    with session_scope(c.engine) as s:
        assert s.get(Supervisee, c.strict.id).preferred_channel == "voice"
