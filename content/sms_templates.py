"""Approved SMS templates, for providers that send nothing else (Tencent Cloud SMS in mainland China).

Such a provider sends a template the county registered and the provider
approved, by its id, with the values of its variables in order ({1}, {2}, ...);
the words are the approved ones, not ours. Every message the service says is
a catalogue text (content/locales/) with named values: its template is the
text with each `{name}` numbered in order of appearance, and, for a message
that carries an SMS hint ("Reply 1 if all is well..."), the hint on the next
line (file key `KEY+HINT_KEY`). A message with no template of its own, or a
value longer than its template allows, or text made by hand (an officer's
words, an announcement) goes as the generic `notice` template, cut into as
many messages as its one value needs. So nothing is found unsendable at send
time; `checkin sms templates check` finds, before, what would go as notices,
what has drifted from the catalogue, and prints the texts to register.

The file (content/sms_templates.toml, or CHECKIN_SMS_TEMPLATES_FILE) has, per
language, the notice and the templates, each with the id the provider gave
and the text that was approved.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from content.catalog import LANGUAGES, catalogue
from content.refusals import Refused

DEFAULT_FILE = Path(__file__).with_name("sms_templates.toml")
# Catalogue sections never sent as an SMS of their own: the console's words, Telegram's menu, what a call says, and
# the words that only go inside other texts.
NOT_MESSAGES = ("console.", "menu.", "role.", "category.", "voice.", "level.", "status.", "end_reason.",
                "alert_kind.", "contact_kind.", "what.", "when.", "office.")


class TemplateError(Refused):
    """The templates file cannot be used; `render` names the entry and what is wrong."""

    section = "template_file"


def numbered(catalogue_text: str) -> tuple[str, tuple[str, ...]]:
    """A catalogue text as a provider template: `{name}` -> `{1}`, `{2}` ... in order; and the names in that order."""
    names: list[str] = []
    out: list[str] = []
    for literal, name, _spec, _conv in string.Formatter().parse(catalogue_text):
        out.append(literal)
        if name:
            if name not in names:
                names.append(name)
            out.append("{" + str(names.index(name) + 1) + "}")
    return "".join(out), tuple(names)


@dataclass(frozen=True)
class Template:
    """One approved template: the provider's id, the approved text, and the catalogue values that fill it."""

    key: str  # catalogue key, or KEY+HINT_KEY
    id: str
    text: str
    names: tuple[str, ...]
    max_chars: int  # the longest value the provider takes for one variable


@dataclass(frozen=True)
class Part:
    """One message as the provider sends it: a template and its values in order."""

    template: Template
    values: tuple[str, ...]


@dataclass
class Templates:
    """Every language's notice and templates."""

    notice: dict[str, Template]
    by_key: dict[tuple[str, str], Template] = field(default_factory=dict)

    def parts(self, language: str, said: dict | None, text: str) -> list[Part]:
        """What to send for one message: its own template when it has one and its values fit, else the notice."""
        language = language if language in self.notice else next(iter(self.notice))
        if said:
            key = said["key"] + (f"+{said['hint']}" if said.get("hint") else "")
            t = self.by_key.get((language, key))
            params = said.get("params", {})
            if t is not None and all(len(params.get(n, "")) <= t.max_chars for n in t.names):
                return [Part(t, tuple(params.get(n, "") for n in t.names))]
        return self.notices(language, text)

    def notices(self, language: str, text: str) -> list[Part]:
        """`text` in as many notices as the notice's one value needs, each marked (1/3), (2/3) ... when several."""
        t = self.notice[language]
        text = " ".join(text.split()) or "-"  # a value is one line
        if len(text) <= t.max_chars:
            return [Part(t, (text,))]
        room = t.max_chars - 8  # for " (12/34)"
        chunks = [text[i:i + room] for i in range(0, len(text), room)]
        return [Part(t, (f"{c} ({i}/{len(chunks)})",)) for i, c in enumerate(chunks, start=1)]


def load_templates(path: str | Path | None = None) -> Templates:
    """Read the templates file; TemplateError naming the entry when one cannot be used."""
    path = Path(path) if path else DEFAULT_FILE
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError("unreadable", path=path, error=exc) from None
    default_chars = raw.get("param_chars", 35)
    out = Templates(notice={})
    for language in LANGUAGES:
        section = raw.get(language)
        if section is None:
            continue
        notice = section.get("notice")
        if not isinstance(notice, dict) or "id" not in notice or "text" not in notice:
            raise TemplateError("no_notice", path=path, language=language)
        if notice["text"].count("{1}") != 1 or "{2}" in notice["text"]:
            raise TemplateError("notice_variables", path=path, language=language)
        chars = int(notice.get("max_chars", default_chars))
        if chars < 20:
            raise TemplateError("notice_chars", path=path, language=language, chars=chars)
        out.notice[language] = Template("notice", str(notice["id"]), notice["text"], ("text",), chars)
        for key, entry in section.get("templates", {}).items():
            if not isinstance(entry, dict) or "id" not in entry or "text" not in entry:
                raise TemplateError("no_id_text", path=path, language=language, key=repr(key))
            texts = catalogue(language)
            first, _, hint = key.partition("+")
            if first not in texts or (hint and hint not in texts):
                raise TemplateError("no_such_text", path=path, language=language, key=repr(key))
            _text, names = numbered(_with_hint(language, key))
            out.by_key[(language, key)] = Template(key, str(entry["id"]), entry["text"], names,
                                                   int(entry.get("max_chars", default_chars)))
    if not out.notice:
        raise TemplateError("no_language", path=path)
    return out


def _with_hint(language: str, key: str) -> str:
    """The catalogue text of KEY, or of KEY+HINT_KEY: the text, the hint on the next line (as the SMS says it)."""
    texts = catalogue(language)
    first, _, hint = key.partition("+")
    return texts[first] + (f"\n{texts[hint]}" if hint else "")


def expected_text(language: str, key: str) -> str:
    """The template text a key needs registered: its catalogue text (and hint) with the values numbered."""
    return numbered(_with_hint(language, key))[0]


@dataclass
class Check:
    """What `checkin sms templates check` found."""

    without: dict[str, list[str]] = field(default_factory=dict)  # language -> message keys going as notices
    drifted: list[str] = field(default_factory=list)  # approved text no longer the catalogue's
    too_long: list[dict] = field(default_factory=list)  # a value the sample shows over its limit: where, how long

    @property
    def ok(self) -> bool:
        return not self.drifted and not self.too_long


def check(templates: Templates, samples: dict[str, str]) -> Check:
    """Compare the templates with the catalogue: keys without a template (they go as notices), approved texts that
    differ from the catalogue's (to register again), and variables whose long sample value is over the limit."""
    out = Check()
    for language in templates.notice:
        keys = [k for k in catalogue(language) if not k.startswith(NOT_MESSAGES)]
        have = {k.partition("+")[0] for (lang, k) in templates.by_key if lang == language}
        out.without[language] = [k for k in keys if k not in have]
    for (language, key), t in sorted(templates.by_key.items()):
        if t.text != expected_text(language, key):
            out.drifted.append(f"[{language}] {key} (id {t.id})")
        for name in t.names:
            if len(samples.get(name, "")) > t.max_chars:
                out.too_long.append({"line": f"[{language}] {key} (id {t.id})", "name": name,
                                     "length": len(samples[name]), "limit": t.max_chars})
    return out
