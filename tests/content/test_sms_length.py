"""Every text in content/ against SMS segment limits (Chinese is UCS-2: 70, or 67 per part)."""

from __future__ import annotations

import string

import pytest

from content.catalog import LANGUAGES, catalogue
from content.samples import SAMPLE
from content.sms import encoding, segments

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
        if key.startswith(("console.", "menu.", "role.", "category.", "voice.", "office.")):
            continue  # the web console's and the office's words, Telegram's menu, what a call says: no SMS
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
