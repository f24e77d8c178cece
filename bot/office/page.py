"""What every page of the console works with: the signed-in officer's request (`Page`) and small readers of
the request's values."""

from __future__ import annotations

import json
from datetime import date

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request

from content.catalog import LANGUAGES, text
from handlers.case_life import Actor, CaseError
from handlers.contract import Context, Reply, Sender, SenderKind, row_id
from handlers.delivery import deliver
from handlers.officer import can_see
from storage import queries
from storage.models import Message, Officer, Supervisee

PAGE = 50  # rows on a page of the caseload and of a thread
LANG_COOKIE = "checkin_lang"


def cookie_language(request: Request, default: str) -> str:
    """The language the reader chose with the switch (a cookie), else `default`."""
    wanted = request.cookies.get(LANG_COOKIE)
    return wanted if wanted in LANGUAGES else default


class Page:
    """What a handler of the console gets: the request, a session, the signed-in officer and their session row."""

    def __init__(self, request: Request, db: Session, officer: Officer, web, rt) -> None:
        self.request, self.db, self.officer, self.web, self.rt = request, db, officer, web, rt
        self.now = rt.clock.now()
        self.lang = cookie_language(request, officer.language)

    def t(self, key: str, **params) -> str:
        return text(self.lang, f"console.{key}", **params)

    def context(self) -> Context:
        """A handler's context for an action of this officer (the same functions as the chat's)."""
        return Context(session=self.db, now=self.now, sender=Sender(SenderKind.officer, officer=self.officer,
                                                                    language=self.lang),
                       policy=self.rt.policy, zone=self.rt.settings.zone, areas=self.rt.areas,
                       default_language=self.rt.settings.language)

    def actor(self) -> Actor:
        return Actor(f"officer:{self.officer.id}", self.officer)

    def deliver(self, replies: list[Reply], what: str) -> list[str]:
        """Queue the messages an action owes others; return what it says to the officer (shown on the page)."""
        said = []
        for i, reply in enumerate(replies):
            if reply.to is None:
                said.append(reply.text)
            else:
                deliver(self.db, reply, now=self.now, dedupe_key=f"web:{self.web.id}:{what}:{self.now.isoformat()}:{i}")
        return said

    def person(self, case_number: str) -> Supervisee:
        """A person in the officer's scope, else 404 (the same answer whether or not the case exists)."""
        person = queries.supervisee_by_case(self.db, case_number)
        if person is None or not can_see(self.db, self.officer, person):
            raise HTTPException(404)
        return person

def about(m: Message) -> int | None:
    """The person a message passed on to an officer is about."""
    return row_id(str(json.loads(m.payload or "{}").get("about", "")))


def page_number(value: str) -> int:
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) < 100_000 else 1


def month_of(value: str, today: date) -> date:
    """`YYYY-MM` (the calendar's month), else this month."""
    try:
        year, month = (int(x) for x in value.split("-"))
        return date(year, month, 1)
    except ValueError:
        return today.replace(day=1)


def parse_date(value) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CaseError("pause_dates", value=str(value or "-")) from None
