"""Message catalogues (zh-CN, en) and a small renderer."""

from __future__ import annotations

import string
import tomllib
from functools import cache
from pathlib import Path

LOCALES = Path(__file__).with_name("locales")
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"


class MissingText(KeyError):
    """A key or placeholder the catalogue does not have."""


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


@cache
def catalogue(language: str) -> dict[str, str]:
    """All texts of one language, keyed by dotted name: what people and officers read (`locales/LANG.toml`),
    and the office's (the command line, the errors of what officers import and change: `locales/office/LANG.toml`,
    its keys under `office.`)."""
    if language not in LANGUAGES:
        raise MissingText(f"no catalogue for language {language!r}")
    with (LOCALES / f"{language}.toml").open("rb") as fh:
        texts = _flatten(tomllib.load(fh))
    if any(k.startswith("office.") for k in texts):
        raise MissingText(f"{language}.toml: the [office] texts live in office/{language}.toml")
    with (LOCALES / "office" / f"{language}.toml").open("rb") as fh:
        texts.update(_flatten(tomllib.load(fh), "office."))
    return texts


@cache
def placeholders(template: str) -> frozenset[str]:
    """The `{name}` fields a template uses."""
    return frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)


def language_or_default(language: str | None) -> str:
    """`language` when we have it, else the default."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


class Said(str):
    """A rendered text that remembers its key and values: an SMS provider that sends only approved templates
    (content/sms_templates.py) sends it as the key's template with these values. Anything made from it (joined,
    cut, added to) is a plain `str` again, and goes as a generic notice."""

    key: str
    lang: str
    params: dict[str, str]

    def remembered(self, hint: Said | None = None) -> dict:
        """What an outbox row keeps of it (its payload's `said`): key, language and values, and those of the SMS
        hint on its next line."""
        out = {"key": self.key, "lang": self.lang, "params": dict(self.params)}
        if hint:
            out["hint"] = hint.key
            out["params"].update(hint.params)
        return out


def text(language: str | None, key: str, /, **params: object) -> str:
    """Render `key` in `language` with `params`; a missing key or placeholder raises."""
    texts = catalogue(language_or_default(language))
    try:
        template = texts[key]
    except KeyError:
        raise MissingText(f"no text {key!r} in {language_or_default(language)}") from None
    try:
        said = Said(template.format(**params))
    except KeyError as exc:
        raise MissingText(f"text {key!r} needs {exc.args[0]!r}") from None
    said.key, said.lang = key, language_or_default(language)
    said.params = {k: str(v) for k, v in params.items() if k in placeholders(template)}
    return said
