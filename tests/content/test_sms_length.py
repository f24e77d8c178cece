"""Every text in content/ against SMS segment limits (Chinese is UCS-2: 70, or 67 per part)."""

from __future__ import annotations

import string

import pytest

from content.catalog import LANGUAGES, catalogue
from content.sms import encoding, segments

# Plausible values, on the long side, for every placeholder the catalogues use.
SAMPLE = {
    "name": "欧阳明华", "officer": "李娜娜", "case_number": "JZ2013041", "township": "红果镇",
    "deadline": "3月7日 09:00", "next": "明天 09:00", "time": "13:25", "id": "1234", "text": "我下周要去医院复查。",
    "level": "严管", "what": "报到", "count": "12", "receipt": "R-2027-0412", "parts": "3", "phone": "138 1234 5678",
    "telegram": "Telegram 已绑定", "history": "09:00 已提醒，11:00 再次提醒，均未回复。", "last_contact": "3月1日 09:12（报到）",
    "prompted": "09:00", "reminded": "11:00", "opened": "3月1日 13:00", "action": "已联系上", "case": "JZ2013041",
    "status": "在矫", "last": "3月1日 09:12", "done": "20", "missed": "2", "alerts": "1", "at": "3月1日 09:12",
    "kind": "报到", "reason": "对方已退订短信", "fallback": "之后改用 Telegram 联系。", "holiday": "Mid-Autumn Festival",
    "title": "您的权利和义务", "n": "2", "total": "3", "q": "社区矫正期间，您是否还享有劳动的权利？",
    "choices": "A. 享有  B. 不享有", "minutes": "60", "month": "7小时0分钟", "required": "8小时0分钟",
    "missing": "1小时0分钟", "h": "8", "m": "0", "day": "20", "when": "3月1日 09:12", "start": "09:00", "end": "12:00",
    "place": "红果镇敬老院", "hours": "3", "code": "4827", "state": "有效", "why": "转入语音信箱，不算接听",
    "answered": "10:12", "destination": "广州市白云区太和镇", "area": "示例县", "where": "广州市", "distance": "612.4",
    "accuracy": "25", "asked": "3月1日 09:12", "acknowledged": "3月1日 13:05", "channel": "Telegram", "command": "/transfer", "leave": "1", "url": "https://checkin.example.gov.cn/console/link/Xq3V9kz2mB7pLr4TnW8sYc1dHf6gJ0aE", "oldest": "3月1日 13:00", "notes": "2", "reports": "1", "map": "https://www.openstreetmap.org/?mlat=23.13000&mlon=113.26000#map=13/23.13000/113.26000",
    "inside": "范围内", "first": "2027-03-01", "value": "2-30", "max": "30", "days": "5", "note": "外出时间太长",
    "check": "期间暂停位置核查。", "decision": "已批准（暂停位置核查）", "years": "5", "page": "1", "pages": "2",
    "query": "欧阳", "seconds": "40",
}
# What a person receives from the scheduler: at most two segments each, hint included.
PROMPTS = {"checkin.prompt": "checkin.sms_hint", "checkin.reminder": "checkin.sms_hint",
           "location.prompt": None, "location.reminder": None, "location.reminder_partial": None,
           "leave.last_day": None,
           "report.prompt_week": None, "report.prompt_month": None, "report.reminder": None}
# Officer alerts are long on purpose (facts first); everything else a person gets stays short.
LONG_OK = ("escalation.", "help.", "officer.", "enrol.welcome", "leave.officer_alert", "leave.usage",
           "report.officer_notice", "report.page", "report.list_")


def render(language: str, key: str) -> str:
    template = catalogue(language)[key]
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    return template.format(**{f: SAMPLE[f] for f in fields})


@pytest.mark.parametrize("language", LANGUAGES)
def test_prompts_and_reminders_fit_two_segments(language):
    for key, hint in PROMPTS.items():
        body = render(language, key) + ("\n" + render(language, hint) if hint else "")
        assert segments(body) <= 2, (key, encoding(body), len(body), segments(body))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_within_limits(language):
    for key in catalogue(language):
        if key.startswith(("console.", "menu.", "role.", "category.", "voice.")):
            continue  # the web console's words, Telegram's menu and what a call says: never sent as SMS
        n = segments(render(language, key))
        limit = 6 if key.startswith(LONG_OK) else 3
        assert n <= limit, (key, n)


def test_segment_arithmetic():
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 306) == 2
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2  # extension characters count twice
    assert segments("报" * 70) == 1 and segments("报" * 71) == 2 and segments("报" * 134) == 2
    assert segments("报" * 135) == 3
    assert encoding("Reply 1 if all is well") == "GSM-7" and encoding("回复1") == "UCS-2"
    assert encoding("ok 😀") == "UCS-2" and segments("😀" * 35) == 1 and segments("😀" * 36) == 2
