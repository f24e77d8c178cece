"""`checkin doctor` (the server's health, one line per check, with what to do: bot/doctor.py), and `checkin backup`
and `checkin restore` (bot/backup.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.backup import BackupError, backup, restore
from bot.cli.base import app, fail, office_language, out, runtime, say, settings
from bot.doctor import examine
from bot.runtime import make_clock
from bot.settings import SettingsError

MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


@app.command()
def doctor() -> None:
    """Check settings, database, keys, providers, the public URL, the outbox and the sweep; exit 1 on a failure."""
    lang = office_language()
    label = say("doctor.check_settings")
    try:
        current = settings()
    except SettingsError as exc:
        out.print(f"{MARK['fail']} {label}: ", end="")
        out.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    out.print(f"{MARK['ok']} {label}: ", end="")
    out.print(say("doctor.settings_ok"), markup=False)
    found = examine(current, make_clock(current).now())
    for f in found:
        out.print(f"{MARK[f.level]} ", end="")
        out.print(f"{f.label(lang)}: {f.says(lang)}" + (f" -> {f.fix(lang)}" if f.todo else ""), markup=False)
    failed = sum(f.level == "fail" for f in found)
    if failed:
        fail(say("doctor.failed", count=failed), 1)
    out.print(say("doctor.all_well", count=sum(f.level == "warn" for f in found)), markup=False)


@app.command("backup")
def backup_command(file: Annotated[Path, typer.Argument(help="A new file for the copy")]) -> None:
    """A consistent copy of the database while the service runs (never the keys: keep their copy apart)."""
    rt = runtime()
    try:
        copied = backup(rt.engine, file)
    except BackupError as exc:
        fail(exc.render(office_language()), 1)
    out.print(say("backup.done", revision=copied.revision, people=copied.people, messages=copied.messages,
                  entries=copied.audit_entries, path=file), markup=False)
    out.print(say("backup.no_keys"), markup=False)


@app.command("restore")
def restore_command(file: Annotated[Path, typer.Argument(help="A file made by `checkin backup`")]) -> None:
    """Put a backup into the empty database CHECKIN_DATABASE_URL names (a new file, a new database)."""
    rt = runtime(schema=False)
    try:
        copied = restore(file, rt.engine)
    except BackupError as exc:
        fail(exc.render(office_language()), 1)
    out.print(say("backup.restored", revision=copied.revision, people=copied.people, messages=copied.messages,
                  entries=copied.audit_entries), markup=False)
