"""Study modules: short lessons in zh-CN and en, each with a credited duration and a quiz."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from content.catalog import LANGUAGES, language_or_default

STUDY = Path(__file__).with_name("study")


@dataclass(frozen=True)
class Question:
    q: str
    choices: tuple[str, ...]
    answer: int  # 1-based, as people type it


@dataclass(frozen=True)
class Module:
    id: str
    minutes: int
    title: str
    parts: tuple[str, ...]
    quiz: tuple[Question, ...]


@cache
def modules(language: str) -> tuple[Module, ...]:
    """The modules of one language, in the order they are taught."""
    if language not in LANGUAGES:
        raise KeyError(language)
    with (STUDY / f"{language}.toml").open("rb") as fh:
        data = tomllib.load(fh)
    return tuple(
        Module(m["id"], int(m["minutes"]), m["title"], tuple(m["parts"]),
               tuple(Question(q["q"], tuple(q["choices"]), int(q["answer"])) for q in m["quiz"]))
        for m in data["module"]
    )


def module(language: str | None, module_id: str) -> Module:
    """One module by id, in `language` (or the default)."""
    for m in modules(language_or_default(language)):
        if m.id == module_id:
            return m
    raise KeyError(module_id)


def order() -> tuple[str, ...]:
    """Module ids in teaching order (the same in every language)."""
    return tuple(m.id for m in modules(LANGUAGES[0]))
