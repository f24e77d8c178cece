"""`checkin sms templates ...`: the templates an SMS provider that sends only approved ones needs (Tencent Cloud)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.base import fail, office_language, out, say, settings, sms_app
from bot.settings import SettingsError
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
            file = settings().sms_templates_file
        except SettingsError as exc:
            fail(str(exc), 2)
    try:
        templates = load_templates(file)
    except TemplateError as exc:
        fail(exc.render(office_language()), 2)
    found = check(templates, SAMPLE)
    for language, t in templates.notice.items():
        mine = sum(1 for (lang, _key) in templates.by_key if lang == language)
        out.print(say("sms.notice", language=language, id=t.id, chars=t.max_chars, templates=mine,
                      without=len(found.without[language])), markup=False)
        by_section: dict[str, list[str]] = {}
        for key in found.without[language]:
            section, _, rest = key.partition(".")
            by_section.setdefault(section, []).append(rest)
        for section, keys in sorted(by_section.items()):
            out.print(say("sms.as_notices", section=section, keys=", ".join(keys)), markup=False)
    if texts:
        for (language, key), t in sorted(templates.by_key.items()):
            out.print("\n" + say("sms.template", language=language, key=key, id=t.id,
                                 names=", ".join(t.names) or say("sms.no_variables")), markup=False)
            out.print(expected_text(language, key), markup=False)
        for language, t in templates.notice.items():
            out.print("\n" + say("sms.notice_text", language=language, id=t.id), markup=False)
            out.print(t.text, markup=False)
    for line in found.drifted:
        out.print(say("sms.drifted", line=line), markup=False)
    for over in found.too_long:
        out.print(say("sms.too_long", **over), markup=False)
    if not found.ok:
        raise typer.Exit(1)
    out.print(say("sms.match"), markup=False)
