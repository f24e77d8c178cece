"""Who may do what: every command and button against every kind of sender, one test per cell.

The matrix is docs/security.md's. Senders: 刘芳 (a supervisee on Telegram),
李娜 (her assistant officer), 赵强 (an assistant in another township), 张主任
(李娜's township supervisor), an administrator, and a stranger. The case
acted on is always 刘芳's (JZ-O).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import select

from content.policy import load_policy
from handlers import community_service, escalation
from storage.db import session_scope
from storage.models import (
    Escalation,
    EscalationKind,
    Leave,
    Obligation,
    Officer,
    ServiceAttendance,
    Supervisee,
    Warning_,
    WrittenReport,
)
from tests.factories import officer
from tests.sim import SH, County, local

NOW = local(2027, 3, 1, 10)
SENDERS = {"person": "7002", "assistant": "5001", "other_township": "5002", "supervisor": "9000", "admin": "1",
           "unknown": "4242", "departed": "5003"}  # departed: an officer of 红果镇, deactivated
OFFICERS = ("assistant", "other_township", "supervisor", "admin")
SCOPED = ("assistant", "supervisor", "admin")  # may act on 李娜's caseload

# What each kind of refusal looks like.
NOT_YOURS_CASE = "JZ-O 不在您的管辖范围内"
PERSON_FALLBACK = "没有看懂您的消息"
PASSED_ON = "已转给协管员李娜"  # a person's text that is no command of theirs reaches their officer
OFFICER_FALLBACK = "没有看懂这条命令"
STRANGER = "本服务仅供社区矫正对象使用"


def _world(db, waiting: bool = True) -> tuple[County, dict]:
    c = County(db)
    departed = officer(c.engine, NOW, name="周离", supervisor_id=c.boss.id, telegram_id=5003)
    with session_scope(c.engine) as s:
        gone = s.get(Officer, departed.id)
        gone.active = False
        s.add(gone)
    if waiting:  # today's check-ins: 刘芳's waits (and any text of hers answers it)
        c.sweep(local(2027, 3, 1, 9))
    with session_scope(c.engine) as s:
        person = s.get(Supervisee, c.ordinary.id)
        ob = s.exec(select(Obligation).where(Obligation.supervisee_id == person.id,
                                             Obligation.kind == "checkin")).first()
        esc = escalation.open_escalation(s, person, EscalationKind.asked_officer, NOW, load_policy(), SH)
        lv = Leave(supervisee_id=person.id, officer_id=person.officer_id, destination="贵阳",
                   destination_area="guiyang", starts_on=datetime(2027, 3, 10).date(),
                   ends_on=datetime(2027, 3, 12).date(), reason="探亲", state="requested", requested_at=NOW)
        s.add(lv)
        s.add(WrittenReport(supervisee_id=person.id, receipt="R-2027-0001", parts=1, body="本周按时上班。",
                            submitted_at=NOW))
        svc = community_service.create(s, s.get(Officer, c.li.id), c.policy, place="敬老院", starts_at=local(2027, 3, 1, 8),
                             ends_at=local(2027, 3, 1, 12), hours=3, case_numbers=["JZ-O"], now=local(2027, 2, 28))
        s.flush()
        attendance = s.exec(select(ServiceAttendance).where(ServiceAttendance.session_id == svc.id)).one()
        ids = dict(ob=ob.id if ob else 0, esc=esc.id, leave=lv.id, att=attendance.id, other=c.other.id)
    return c, ids


def officer_only(allowed: str, refused: str = NOT_YOURS_CASE, scoped: bool = True) -> dict[str, str]:
    """An officer command on 刘芳: allowed for those whose scope holds her, refused for the rest."""
    out = {"person": PERSON_FALLBACK, "unknown": STRANGER}
    for role in OFFICERS:
        out[role] = allowed if (role in SCOPED or not scoped) else "!" + refused
    return out


def person_only(allowed: str) -> dict[str, str]:
    return {"person": allowed, "unknown": STRANGER, **{role: OFFICER_FALLBACK for role in OFFICERS}}


# action -> (text, button) and the expected reply per sender ("!" marks a refusal).
MATRIX: dict[str, tuple[str, str | None, dict[str, str]]] = {
    "/case": ("/case JZ-O", None, officer_only("刘芳（JZ-O，普管，红果镇")),
    "/case page": ("/case JZ-O 2", None, officer_only("刘芳（JZ-O，普管，红果镇")),
    "/find": ("/find 刘芳", None, officer_only("找到 1 人", "您的管辖范围内没有与“刘芳”相符的人")),
    "/pause": ("/pause JZ-O 3 住院", None, officer_only("✅ 刘芳（JZ-O）从")),
    "/resume": ("/resume JZ-O", None, officer_only("JZ-O 没有在暂停中")),
    "/level": ("/level JZ-O 严管", None, officer_only("✅ 刘芳（JZ-O）改为严管")),
    "/transfer": ("/transfer JZ-O {other}", None, {
        **officer_only("✅ 刘芳（JZ-O）已转给赵强"), "assistant": "!/transfer 只能由乡镇负责人或管理员使用",
        "other_township": "!/transfer 只能由乡镇负责人或管理员使用"}),
    "/end": ("/end JZ-O 迁出", None, {
        **officer_only("✅ 刘芳（JZ-O）已解矫：迁出"), "assistant": "!/end 只能由乡镇负责人或管理员使用",
        "other_township": "!/end 只能由乡镇负责人或管理员使用"}),
    "/say": ("/say JZ-O 明天上午来一趟司法所", None, officer_only("已发送给刘芳")),
    "/warn": ("/warn JZ-O 未按时报到", None, officer_only("已记录警告")),
    "/warnings": ("/warnings JZ-O", None, officer_only("刘芳没有警告记录")),
    "ack (text)": ("知悉 {esc}", None, officer_only("✅ 已知悉 #{esc}", "提醒 #{esc} 不归您处理")),
    "ack (button)": ("", "esc:{esc}:ack", officer_only("✅ 已知悉 #{esc}", "提醒 #{esc} 不归您处理")),
    "show alert (button)": ("", "esc:{esc}:show", officer_only("☎ 请求联系 #{esc}：刘芳", "提醒 #{esc} 不归您处理")),
    "excuse (text)": ("免除 {esc} 已电话联系", None, officer_only("✅ 已免除 #{esc}", "提醒 #{esc} 不归您处理")),
    "approve leave (text)": ("批准 {leave}", None, officer_only("✅ 请假 #{leave}", "请假申请 #{leave} 不归您审批")),
    "refuse leave (button)": ("", "leave:{leave}:refuse",
                              officer_only("✅ 请假 #{leave}", "请假申请 #{leave} 不归您审批")),
    "verify service (button)": ("", "svc:{att}:ok", officer_only("✅ 已核实：刘芳", "#{att} 不在您的管辖范围内")),
    "/service": ("/service 2027-03-02 09:00-12:00 3 敬老院 JZ-O", None,
                 officer_only("已安排公益劳动", "用法：/service")),
    "/web": ("/web", None, officer_only("工作台还没有对外地址", scoped=False)),
    "/list": ("/list", None, officer_only("您", scoped=False)),
    "/open": ("/open", None, officer_only("", scoped=False)),
    "/leaves": ("/leaves", None, officer_only("", scoped=False)),
    "check-in answer (text)": ("1", None, person_only("已收到，谢谢")),
    "check-in answer (button)": ("", "checkin:{ob}:ok", person_only("已收到，谢谢")),
    "/report": ("/report", None, {"person": "请写书面汇报", "unknown": STRANGER,
                                  **{role: "用法：/report 编号" for role in OFFICERS}}),
    "/report N": ("/report 1", None, {**officer_only("书面汇报 R-2027-0001：刘芳（JZ-O）"), "person": "请写书面汇报"}),
    "/reports": ("/reports JZ-O", None, officer_only("书面汇报（最近1份，共1份）")),
    "/leave": ("/leave", None, person_only("请问要去哪里")),
    "/study": ("/study", None, person_only("")),
    "/officer": ("找协管员 我明天要去医院", None, person_only("已转告李娜")),
    "/help": ("/help", None, {"person": "您可以：", "unknown": STRANGER,
                              **{role: "协管员功能：" for role in OFFICERS}}),
}
for _, _, _expected in MATRIX.values():  # a deactivated officer's chat is a stranger's, for every action
    _expected["departed"] = _expected["unknown"]
CELLS = [(action, sender) for action in MATRIX for sender in SENDERS]


@pytest.mark.parametrize("action, sender", CELLS, ids=[f"{a}-{s}" for a, s in CELLS])
async def test_cell(db, action, sender):
    c, ids = _world(db, waiting=action.startswith("check-in"))
    words, button, expected = MATRIX[action]
    handled = await c.send("telegram", SENDERS[sender], NOW, words.format(**ids),
                           button=button.format(**ids) if button else None)
    assert not handled.error
    reply = "\n".join(r.text for r in handled.replies)
    want = expected[sender].format(**ids)
    if sender == "person" and want == PERSON_FALLBACK and words and not words.startswith("/"):
        want = PASSED_ON
    refused = want.startswith("!")
    assert want.lstrip("!") in reply, (action, sender, reply)
    # A refusal changes nothing: no warning, no decision, no acknowledgement, no verification.
    with session_scope(c.engine) as s:
        esc = s.get(Escalation, ids["esc"])
        lv = s.get(Leave, ids["leave"])
        att = s.get(ServiceAttendance, ids["att"])
        warned = s.exec(select(Warning_)).all()
        fang = s.get(Supervisee, c.ordinary.id)
    changed = {"warn": bool(warned), "esc": esc.acknowledged_at is not None, "leave": lv.state != "requested",
               "att": att.state == "verified",
               "case": (fang.level, fang.status, fang.officer_id, fang.paused_until) != ("ordinary", "active",
                                                                                          c.li.id, None)}
    if refused or sender in ("person", "unknown", "departed"):
        touched = {"/warn": "warn", "ack (text)": "esc", "ack (button)": "esc", "excuse (text)": "esc",
                   "approve leave (text)": "leave", "refuse leave (button)": "leave",
                   "verify service (button)": "att", "/pause": "case", "/level": "case", "/transfer": "case",
                   "/end": "case"}.get(action)
        if touched:
            assert not changed[touched], (action, sender)


async def test_forged_buttons_change_nothing(db):
    c, ids = _world(db)
    for sender, data in (("person", f"esc:{ids['esc']}:reached"), ("person", f"leave:{ids['leave']}:move"),
                         ("assistant", f"checkin:{ids['ob']}:ok"), ("unknown", f"svc:{ids['att']}:ok"),
                         ("admin", "esc:1:launch"), ("admin", "nonsense"), ("person", "report:" + "x" * 60)):
        handled = await c.send("telegram", SENDERS[sender], NOW, button=data)
        assert not handled.error and handled.replies, (sender, data)
    with session_scope(c.engine) as s:
        assert s.get(Escalation, ids["esc"]).acknowledged_at is None
        assert s.get(Leave, ids["leave"]).state == "requested"
        assert s.get(ServiceAttendance, ids["att"]).state != "verified"
        assert s.get(Obligation, ids["ob"]).state == "prompted"
    # A check-in button with someone else's id or garbage answers only the presser's own waiting check-in.
    other = await c.send("telegram", SENDERS["person"], NOW, button="checkin:99999:ok")
    assert other.replies[0].text.startswith("已收到，谢谢")
    with session_scope(c.engine) as s:
        assert s.get(Obligation, ids["ob"]).state == "done"
        mine = s.exec(select(Obligation).where(Obligation.id != ids["ob"], Obligation.state == "done")).all()
        assert mine == []
