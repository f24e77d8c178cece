"""The office's console in a real browser: Debian's chromium driven by Playwright, the service on loopback with the
Telegram stand-in. Screenshots of the main pages go to CHECKIN_SCREENSHOT_DIR when it is set (docs/console/).

Without /usr/bin/chromium the test is skipped, unless CHECKIN_TEST_REQUIRE_BROWSER=1 (as .ci/run sets it): then it
fails, so that CI never passes without having run it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyotp
import pytest
from sqlmodel import select

from bot.office.app import office_routes
from bot.sandbox.loopback import LoopbackServer, free_port
from bot.sandbox.telegram_api import FakeTelegram
from bot.web import make_app
from handlers import officer_accounts
from scheduler.clock import FixedClock
from storage.db import session_scope
from storage.models import Escalation, Leave, Officer
from tests.bot.test_telegram import Harness
from tests.conftest import clear_env
from tests.sim import local

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.slow


def _browser_or_skip() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CHECKIN_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing and CHECKIN_TEST_REQUIRE_BROWSER=1 (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed")


async def sign_in(page, base: str, officer_id: int, code: str | None = None) -> None:
    await page.goto(f"{base}/console/login")
    await page.fill("input[name=login]", str(officer_id))
    await page.fill("input[name=password]", PASSWORD)
    if code is not None:
        await page.fill("input[name=code]", code)
    await page.click("button[type=submit]")


async def test_an_officers_evening_in_the_browser(db, monkeypatch, tmp_path):
    if db.kind != "sqlite":
        pytest.skip("one database is enough for the browser; the routes run on both in test_office.py")
    _browser_or_skip()
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("CHECKIN_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    fake = FakeTelegram()
    await fake.start()
    h = Harness(db, fake, FixedClock(local(2027, 3, 1, 8)))
    c = h.county
    secret = pyotp.random_base32()
    with session_scope(db.engine) as s:
        for o in (c.li, c.other, c.boss):
            officer_accounts.set_password(s, s.get(Officer, o.id), PASSWORD, local(2027, 3, 1), actor="test")
        officer_accounts.set_password(s, s.get(Officer, c.admin.id), PASSWORD, local(2027, 3, 1), actor="test",
                                      totp_secret=secret)
    routes, errors = office_routes(h.rt, h.stack.kick)
    port = free_port()
    web = LoopbackServer(make_app(h.clock, {}, h.stack.routes() + routes, errors))
    await web.start(port=port)
    await h.stack.start()
    base = f"http://127.0.0.1:{port}"
    try:
        # The day: Monday's check-ins go unanswered (three alerts to 李娜); 刘芳 sends a written report and asks
        # for leave through Telegram.
        for hour in (9, 11, 13):
            await h.tick(local(2027, 3, 1, hour))
        h.clock.set(local(2027, 3, 1, 15))
        for words in ("/report", "周一到周五在砖厂上班。", "周三参加了学习。", "/done"):
            await fake.send_text(7002, words)
        for words in ("请假", "贵阳", "3月20日到3月22日", "探望母亲"):
            await fake.send_text(7002, words)
        await fake.wait_for(lambda: any("请假申请 #" in m.text for m in fake.messages(5001)))
        await fake.send_location(7002, 27.10, 106.30, 20)  # in 两河镇: a point on her page's map
        await h.settle()
        h.clock.set(local(2027, 3, 1, 20))

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(f"{base}/console/")
            assert page.url.endswith("/console/login?next=/console/")
            await page.screenshot(path=shots / "login.png")
            await sign_in(page, base, c.li.id)
            await page.wait_for_url(f"{base}/console/")
            body = await page.inner_text("main")
            # (her location, shared late, closed her own alert: two are left)
            assert "待处理提醒（2）" in body and "周一到周五在砖厂上班。" in body  # the report, in full
            await page.screenshot(path=shots / "inbox.png", full_page=True)
            # Act on the alert the sweep raised for 王伟: reached.
            esc = next(e for e in c.escalations() if e.supervisee_id == c.strict.id)
            await page.click(f"#alert-{esc.id} button[value=reached]")
            await page.wait_for_selector(".flash")
            assert f"✅ 已联系上 #{esc.id}" in await page.inner_text(".flash")
            with session_scope(db.engine) as s:
                assert s.get(Escalation, esc.id).resolution == "reached"
            # 刘芳's leave, asked for on Telegram: approved from the inbox; she is told on Telegram.
            with session_scope(db.engine) as s:
                leave_id = s.exec(select(Leave)).one().id
            await page.click(f"#leave-{leave_id} button[value=approve]")
            await page.wait_for_selector(".flash")
            assert f"✅ 请假 #{leave_id}：已批准（范围改为目的地）" in await page.inner_text("main")
            await fake.wait_for(lambda: any(f"#{leave_id}" in m.text and "批准" in m.text
                                            for m in fake.messages(7002)))
            # The caseload, searched by the phone's last digits, and a person's page.
            await page.goto(f"{base}/console/people")
            await page.screenshot(path=shots / "people.png", full_page=True)
            await page.fill("input[name=q]", "0002")
            await page.click(".filters button")
            await page.click("text=JZ-O")
            await page.wait_for_url(re.compile(r".*/console/people/JZ-O$"))
            assert "周三参加了学习。" in await page.inner_text("main")
            assert await page.locator("svg.map circle.spot").count() == 1
            await page.screenshot(path=shots / "person.png", full_page=True)
            # How she is reached: from Telegram to calls, chosen in the page's case actions.
            await page.click("details.card summary")
            await page.select_option("select[name=channel]", "voice")
            await page.click("form[action$='/channel'] button")
            await page.wait_for_selector(".flash")
            assert "之后通过电话联系" in await page.inner_text(".flash")
            assert "联系方式\n电话" in await page.inner_text("section.profile")
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.screenshot(path=shots / "person-phone.png", full_page=True)
            await page.click("details.card summary")
            await page.select_option("select[name=channel]", "telegram")  # back: the announcement below reaches her
            await page.click("form[action$='/channel'] button")
            await page.wait_for_selector(".flash")
            assert "之后通过Telegram联系" in await page.inner_text(".flash")
            # A phone's width.
            await page.goto(f"{base}/console/")
            await page.screenshot(path=shots / "inbox-phone.png", full_page=True)
            # A form without its CSRF token is refused, and changes nothing.
            refused = await page.request.post(f"{base}/console/alerts/{esc.id}", form={"action": "ack"})
            assert refused.status == 403
            await page.context.clear_cookies()

            # 赵强 of another township: 王伟's page is a 404.
            await sign_in(page, base, c.other.id)
            await page.wait_for_url(f"{base}/console/")
            response = await page.goto(f"{base}/console/people/JZ-S")
            assert response.status == 404
            await page.context.clear_cookies()
            # 张主任, the township's supervisor: everyone in 红果镇.
            await sign_in(page, base, c.boss.id)
            await page.wait_for_url(f"{base}/console/")
            await page.goto(f"{base}/console/people")
            listed = await page.inner_text("table.list")
            assert all(case in listed for case in ("JZ-S", "JZ-O", "JZ-L"))
            await page.context.clear_cookies()

            # An administrator without the TOTP code cannot get in; with it, can.
            await sign_in(page, base, c.admin.id)
            assert "需要正确的动态验证码" in await page.inner_text(".error")
            await sign_in(page, base, c.admin.id, pyotp.TOTP(secret).at(h.clock.now()))
            await page.wait_for_url(f"{base}/console/")
            # The roster: a file with a bad row is refused whole, naming the row; the corrected one imports.
            await page.set_viewport_size({"width": 1100, "height": 900})
            header = "案号,姓名,手机号,语言,矫正类别,管理等级,司法所,协管员编号,矫正开始,矫正结束"
            row = f"JZ-NEW,新人,13900001001,中文,缓刑,宽管,红果镇,{c.li.id},2027-03-01,2028-03-01"
            roster = tmp_path / "花名册.csv"
            await page.goto(f"{base}/console/admin/roster")
            roster.write_bytes(f"{header}\r\n{row.replace('宽管', '特管')}\r\n".encode("gbk"))
            await page.set_input_files("input[name=file]", roster)
            await page.uncheck("input[name=dry_run]")
            await page.click("form[enctype] button")
            assert "整份没有导入" in await page.inner_text("#roster-result")
            assert "特管" in await page.inner_text("#roster-result table")
            assert "须为以下之一：strict (严管), ordinary (普管)" in await page.inner_text("#roster-result table")
            await page.screenshot(path=shots / "roster.png", full_page=True)
            roster.write_bytes(f"{header}\r\n{row}\r\n".encode("gbk"))
            await page.set_input_files("input[name=file]", roster)
            await page.uncheck("input[name=dry_run]")
            await page.click("form[enctype] button")
            assert "已导入：新增 1 人" in await page.inner_text("#roster-result")
            # The month's report with its chart, and the officers.
            await page.goto(f"{base}/console/admin/report?month=2027-03")
            assert "红果镇" in await page.inner_text(".chart")
            await page.screenshot(path=shots / "report.png", full_page=True)
            await page.goto(f"{base}/console/admin/officers")
            await page.screenshot(path=shots / "officers.png", full_page=True)
            # An announcement to the ordinary level (刘芳, on Telegram): previewed, sent, watched as it goes.
            await page.goto(f"{base}/console/admin/broadcast")
            await page.fill("textarea[name='text_zh-CN']", "{name}，您好：下周一司法所集中学习，请准时参加。")
            await page.select_option("select[name=level]", "ordinary")
            await page.click("button[value=preview]")
            assert "共 1 人" in await page.inner_text("#preview")
            await page.screenshot(path=shots / "broadcast.png", full_page=True)
            await page.click("button[value=send]")
            await page.wait_for_url(re.compile(r".*/console/admin/broadcast/progress\?key=.*"))
            await page.wait_for_function("document.getElementById('done').textContent === '1'", timeout=15000)
            await fake.wait_for(lambda: any("下周一司法所集中学习" in m.text for m in fake.messages(7002)))
            assert any(m.text.startswith("刘芳，您好：下周一") for m in fake.messages(7002))
            await browser.close()
        with session_scope(db.engine) as s:
            assert s.get(Leave, leave_id).state == "approved"
    finally:
        await h.stack.stop()
        await web.stop()
        await fake.stop()
