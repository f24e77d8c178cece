"""`checkin doctor`: the server's health, one line per check, with what to do (bot/doctor.py)."""

from __future__ import annotations

import typer

from bot.cli.base import app, fail, out
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
