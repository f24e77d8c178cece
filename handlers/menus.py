"""The command menus a chat shows (Telegram's setMyCommands): people's by language, officers' per chat and role."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from content.catalog import LANGUAGES, text
from storage.models import Officer, Role

PERSON = ("help", "report", "officer", "study", "leave", "back")
OFFICER = ("open", "list", "case", "find", "reports", "leaves", "say", "warn", "pause", "resume", "level", "service",
           "web", "help")
SUPERVISOR = OFFICER[:-1] + ("transfer", "end", "help")  # supervisors and administrators: the whole life of a case


def menu(commands: tuple[str, ...], language: str) -> list[tuple[str, str]]:
    """(command, description) in `language`: what the chat app lists when the user types "/"."""
    return [(c, text(language, f"menu.{c}")) for c in commands]


def person_menus() -> dict[str, list[tuple[str, str]]]:
    """People's menu in every language (Telegram picks by the app's language)."""
    return {lang: menu(PERSON, lang) for lang in LANGUAGES}


@dataclass(frozen=True)
class Menus:
    people: dict[str, list[tuple[str, str]]]  # by language
    officers: dict[int, list[tuple[str, str]]]  # by Telegram chat id, in the officer's language
    cleared: list[int]  # chats of officers no longer active: back to the people's menu (and no officer commands)


def menus(session: Session) -> Menus:
    officers, cleared = {}, []
    for o in session.exec(select(Officer).where(Officer.telegram_id.is_not(None)).order_by(Officer.id)).all():
        if not o.active:
            cleared.append(o.telegram_id)
            continue
        commands = SUPERVISOR if o.role in (Role.supervisor, Role.admin) else OFFICER
        officers[o.telegram_id] = menu(commands, o.language)
    return Menus(person_menus(), officers, cleared)
