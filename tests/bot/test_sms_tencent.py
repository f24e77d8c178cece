"""What only Tencent Cloud SMS has: TC3-signed requests the stand-in checks, approved templates and notices, its
per-number codes, and callbacks that are not signed (a secret path, and the networks allowed). The flows a person
and an officer go through run on both providers in tests/bot/test_sms.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from storage import outbox
from storage.db import session_scope
from storage.models import Message
from tests.bot.test_sms import WANG, serving
from tests.sim import local


@pytest.fixture
async def tencent(db, monkeypatch, tmp_path):
    async with serving(db, monkeypatch, tmp_path, provider="tencent") as h:
        yield h


def setup_alerts(h) -> list[Message]:
    return [m for m in h.rows(kind="delivery_failed") if m.officer_id == h.county.admin.id]


async def test_a_wrong_secret_key_is_refused_by_the_api_and_the_administrators_are_told(tencent):
    """The stand-in checks TC3-HMAC-SHA256 as Tencent Cloud does: signed with another key, nothing is sent."""
    h, fake = tencent, tencent.fake
    fake.secret_key = "the key was rotated in the console"
    await h.tick(local(2027, 3, 1, 9))
    assert fake.sent == [] and set(fake.refused) == {"AuthFailure.SignatureFailure"}
    rows = [r for r in h.rows(kind="checkin_prompt") if r.channel == "sms"]
    assert rows and {(r.status, r.error_code) for r in rows} == {("failed", "AuthFailure.SignatureFailure")}
    (alert,) = setup_alerts(h)  # once, however many messages failed
    assert "AuthFailure.SignatureFailure" in alert.body and "checkin sms templates check" in alert.body
    assert h.county.person(h.county.strict).sms_blocked_at is None  # not the person's number
    assert [e for e in h.county.escalations() if e.kind == "unreachable"] == []


async def test_an_unapproved_template_fails_loudly_and_blames_nobody_s_number(tencent):
    h, fake = tencent, tencent.fake
    del fake.approved["1100001"]  # the check-in prompt's template was never approved
    await h.tick(local(2027, 3, 1, 9))
    (row,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (row.status, row.error_code) == ("failed", "FailedOperation.TemplateIncorrectOrUnapproved")
    (alert,) = setup_alerts(h)
    assert "FailedOperation.TemplateIncorrectOrUnapproved" in alert.body
    assert h.county.person(h.county.strict).sms_blocked_at is None


async def test_frequency_limits_are_tried_again_an_hour_later_not_at_once(tencent):
    h, fake = tencent, tencent.fake
    fake.fail_next(WANG, "LimitExceeded.PhoneNumberDailyLimit")
    await h.tick(local(2027, 3, 1, 9))
    (row,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (row.status, row.error_code) == ("queued", "LimitExceeded.PhoneNumberDailyLimit")
    assert row.next_attempt_at == local(2027, 3, 1, 10)
    await h.tick(local(2027, 3, 1, 9, 59))
    assert fake.to(WANG) == []
    await h.tick(local(2027, 3, 1, 10))
    assert len(fake.to(WANG)) == 1 and fake.to(WANG)[0].body.startswith("今天的报到时间到了。")


async def test_an_invalid_number_makes_the_person_unreachable_by_sms(tencent):
    h, fake = tencent, tencent.fake
    fake.fail_next(WANG, "InvalidParameterValue.IncorrectPhoneNumber")
    await h.tick(local(2027, 3, 1, 9))
    person = h.county.person(h.county.strict)
    assert person.sms_blocked_reason == "invalid_number"
    assert [e.kind for e in h.county.escalations() if e.supervisee_id == person.id] == ["unreachable"]


async def test_text_without_a_template_goes_as_notices_each_within_the_limit(tencent):
    """An officer's words have no template: the notice, cut into parts of at most its variable's length."""
    h, fake = tencent, tencent.fake
    words = "明天上午九点请到红果镇司法所参加集中学习，带上身份证和上个月的思想汇报，如有困难请提前告诉我。" * 2
    with session_scope(h.db.engine) as s:
        outbox.enqueue(s, channel="sms", address=WANG, body=words, now=local(2027, 3, 1, 8),
                       kind="officer_message", supervisee_id=h.county.strict.id)
    await h.tick(local(2027, 3, 1, 8, 1))
    (sms,) = fake.to(WANG)
    assert sms.body == words and len(sms.texts) == 4 and set(sms.template_ids) == {"1100000"}
    for i, part in enumerate(sms.texts, start=1):
        value = part.removeprefix("【示例县司法局】社区矫正中心通知：")
        assert len(value) <= 35 and value.endswith(f" ({i}/4)")
    (row,) = h.rows(kind="officer_message")
    assert row.provider_id == sms.sid and row.status == "sent"


async def test_callbacks_on_a_wrong_secret_change_nothing(tencent):
    h, fake = tencent, tencent.fake
    reply = {"extend": "", "mobile": "13800000001", "nationcode": "86", "sign": "x", "text": "2", "time": 1}
    assert (await fake.post_callback("reply", reply, secret="not-the-secret" * 3)).status_code == 404
    assert (await fake.post_callback("status", [{"sid": "x", "report_status": "SUCCESS"}],
                                     secret="")).status_code in (404, 405)
    await h.stack.idle()
    assert h.rows(direction="in") == [] and h.county.escalations() == []
    assert (await fake.post_callback("reply", reply)).status_code == 200  # the right path: taken
    await h.stack.idle()
    (taken,) = h.rows(direction="in")
    assert (taken.address, taken.body) == (WANG, "2")


@pytest.mark.parametrize(("networks", "answer"), [("203.0.113.0/24, 198.51.100.0/24", 403), ("127.0.0.0/8", 200)])
async def test_callbacks_only_from_the_networks_allowed(db, monkeypatch, tmp_path, networks, answer):
    async with serving(db, monkeypatch, tmp_path, provider="tencent", tencent_callback_networks=networks) as h:
        assert (await h.fake.send_sms(WANG, "2")).status_code == answer
        await h.stack.idle()
        assert len(h.rows(direction="in")) == (answer == 200)


def test_the_template_check_passes_for_content_and_catches_drift(tmp_path, monkeypatch):
    from content.sms_templates import DEFAULT_FILE

    monkeypatch.delenv("CHECKIN_SMS_TEMPLATES_FILE", raising=False)
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})
    ok = runner.invoke(app, ["sms", "templates", "check", "--texts"])
    assert ok.exit_code == 0, ok.output
    assert "templates match the messages" in ok.output and "[zh-CN] checkin.prompt+checkin.sms_hint" in ok.output
    assert "今天的报到时间到了。请在 {1} 前回复。" in ok.output
    drifted = tmp_path / "drifted.toml"
    drifted.write_text(DEFAULT_FILE.read_text(encoding="utf-8").replace("这次报到已经收到了，谢谢。", "报到已收到。"),
                       encoding="utf-8")
    bad = runner.invoke(app, ["sms", "templates", "check", "--file", str(drifted)])
    assert bad.exit_code == 1 and "checkin.already (id 1100007)" in bad.output
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(DEFAULT_FILE.read_text(encoding="utf-8").replace('"checkin.already"', '"checkin.alredy"'),
                       encoding="utf-8")
    wrong = runner.invoke(app, ["sms", "templates", "check", "--file", str(unknown)])
    assert wrong.exit_code == 2 and "'checkin.alredy': no such text in the catalogue" in wrong.output


def test_a_long_value_sends_the_message_as_notices_instead(tmp_path):
    """A value over its variable's limit (a long name) is never sent to be refused: that message goes as notices."""
    from content.catalog import text
    from content.sms_templates import load_templates

    templates = load_templates()
    said = text("zh-CN", "checkin.received_help", officer="欧阳" * 20)
    parts = templates.parts("zh-CN", {"key": said.key, "lang": said.lang, "params": said.params}, said)
    assert [p.template.key for p in parts] == ["notice"] * len(parts) and len(parts) == 2
    short = text("zh-CN", "checkin.received_help", officer="李娜")
    (part,) = templates.parts("zh-CN", {"key": short.key, "lang": short.lang, "params": short.params}, short)
    assert (part.template.id, part.values) == ("1100005", ("李娜",))


def test_settings_name_a_bad_templates_file_or_network(tmp_path, monkeypatch):
    from bot.settings import SettingsError, load_settings

    monkeypatch.delenv("CHECKIN_SMS_TEMPLATES_FILE", raising=False)
    broken = tmp_path / "t.toml"
    broken.write_text('[zh-CN]\nnotice = { id = "1", text = "no variable" }\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="exactly one variable"):
        load_settings(sms_templates_file=str(broken))
    with pytest.raises(SettingsError, match="'10.0.0.0/33' is not a network"):
        load_settings(tencent_callback_networks="10.0.0.0/33")


async def test_a_holiday_greeting_in_bulk_goes_as_its_approved_template(tencent):
    """Bulk rows are written when claimed: the greeting's text and values travel with them to the adapter."""
    from datetime import date

    from handlers import greetings

    h, fake = tencent, tencent.fake
    holiday = greetings.find_holiday("CN", today=date(2027, 1, 1), name="qingming")
    with session_scope(h.db.engine) as s:
        greetings.enqueue_bulk(s, key=greetings.greeting_key(holiday), kind="greeting", section="greeting",
                               template=holiday.slug, now=local(2027, 3, 1, 8), audience=greetings.Audience(),
                               holiday=holiday)
    await h.tick(local(2027, 3, 1, 8, 1))
    (sms,) = fake.to(WANG)
    t = h.stack.sms.templates.by_key[("zh-CN", f"greeting.{holiday.slug}")]
    assert sms.template_ids == [t.id] and sms.body == t.text.replace("{1}", "王伟").replace("{2}", "李娜")
