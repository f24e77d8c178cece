"""`checkin doctor` (the server's health, one line per check, with what to do: bot/doctor.py), and `checkin backup`
and `checkin restore` (bot/backup.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.backup import BackupError, backup, restore
from bot.cli.base import app, fail, out, runtime
from bot.doctor import examine
from bot.runtime import make_clock
from bot.settings import SettingsError, load_settings

MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


@app.command()
def doctor() -> None:
    """Check settings, database, keys, providers, the public URL, the outbox and the sweep; exit 1 on a failure."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        out.print(f"{MARK['fail']} settings: ", end="")
        out.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    out.print(f"{MARK['ok']} settings: valid")
    found = examine(settings, make_clock(settings).now())
    for f in found:
        out.print(f"{MARK[f.level]} {f.check}: ", end="")
        out.print(f.says + (f" -> {f.fix}" if f.fix else ""), markup=False)
    failed = sum(f.level == "fail" for f in found)
    if failed:
        fail(f"{failed} check(s) failed", 1)
    out.print(f"all well ({sum(f.level == 'warn' for f in found)} warning(s))")


@app.command("backup")
def backup_command(file: Annotated[Path, typer.Argument(help="A new file for the copy")]) -> None:
    """A consistent copy of the database while the service runs (never the keys: keep their copy apart)."""
    rt = runtime()
    try:
        copied = backup(rt.engine, file)
    except BackupError as exc:
        fail(str(exc), 1)
    out.print(f"backed up revision {copied.revision}: {copied.people} people, {copied.messages} messages, "
              f"{copied.audit_entries} audit entries to {file}", markup=False)
    out.print("the encryption keys are not in it: the backup is unreadable without the key file's copy, which "
              "must be kept apart from the backups (docs/operations.md)", markup=False)


@app.command("restore")
def restore_command(file: Annotated[Path, typer.Argument(help="A file made by `checkin backup`")]) -> None:
    """Put a backup into the empty database CHECKIN_DATABASE_URL names (a new file, a new database)."""
    rt = runtime(schema=False)
    try:
        copied = restore(file, rt.engine)
    except BackupError as exc:
        fail(str(exc), 1)
    out.print(f"restored revision {copied.revision}: {copied.people} people, {copied.messages} messages, "
              f"{copied.audit_entries} audit entries; next: `checkin audit verify`, then `checkin doctor`",
              markup=False)
