"""`checkin sms templates ...`: the templates an SMS provider that sends only approved ones needs (Tencent Cloud)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.base import fail, out, sms_app
from bot.settings import SettingsError, load_settings
from content.samples import SAMPLE
from content.sms_templates import TemplateError, check, expected_text, load_templates

templates_app = typer.Typer(help="Approved SMS templates (docs/sms-china.md).", no_args_is_help=True)
sms_app.add_typer(templates_app, name="templates")


@templates_app.command("check")
def templates_check(
    file: Annotated[Path | None, typer.Option("--file", help="Check this file instead of CHECKIN_SMS_TEMPLATES_FILE")]
    = None,
    texts: Annotated[bool, typer.Option("--texts", help="Print every template's text, to register")] = False,
) -> None:
    """Compare the templates with the messages: what goes as a notice, what drifted, what is over a limit.

    Exit 1 when an approved text is no longer the message's, or a value can be longer than its variable takes.
    """
    if file is None:
        try:
            file = load_settings().sms_templates_file
        except SettingsError as exc:
            fail(str(exc), 2)
    try:
        templates = load_templates(file)
    except TemplateError as exc:
        fail(str(exc), 2)
    found = check(templates, SAMPLE)
    for language, t in templates.notice.items():
        mine = sum(1 for (lang, _key) in templates.by_key if lang == language)
        out.print(f"[{language}] notice {t.id} ({t.max_chars} characters a part); {mine} templates; "
                  f"{len(found.without[language])} message keys without one (they go as notices)", markup=False)
        by_section: dict[str, list[str]] = {}
        for key in found.without[language]:
            section, _, rest = key.partition(".")
            by_section.setdefault(section, []).append(rest)
        for section, keys in sorted(by_section.items()):
            out.print(f"  as notices: {section}: {', '.join(keys)}", markup=False)
    if texts:
        for (language, key), t in sorted(templates.by_key.items()):
            out.print(f"\n[{language}] {key} (id {t.id}, variables {', '.join(t.names) or 'none'})", markup=False)
            out.print(expected_text(language, key), markup=False)
        for language, t in templates.notice.items():
            out.print(f"\n[{language}] notice (id {t.id})", markup=False)
            out.print(t.text, markup=False)
    for line in found.drifted:
        out.print(f"approved text is not the message's any more, register it again: {line}", markup=False)
    for line in found.too_long:
        out.print(f"over its limit: {line}", markup=False)
    if not found.ok:
        raise typer.Exit(1)
    out.print("templates match the messages")
