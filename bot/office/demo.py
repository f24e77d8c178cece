"""The console on the demo's database: sign-ins printed for whoever ran the demo, and the console served alone."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import select

from bot.office import auth
from bot.office.app import office_routes
from bot.sandbox.loopback import LoopbackServer
from bot.web import make_app
from handlers import officer_accounts
from scheduler.clock import FixedClock
from storage.db import session_scope
from storage.models import Officer, Role


@dataclass(frozen=True)
class ConsoleLogins:
    """Who can sign in to the console on the demo's database, and how."""

    officer_id: int
    officer_password: str
    admin_id: int
    admin_password: str
    totp_secret: str
    qr: Path


def console_logins(rt, directory: Path) -> ConsoleLogins:
    """Passwords for the first assistant officer and the administrator (and the administrator's TOTP, its QR
    beside the database): the demo's county only, printed on the terminal for whoever ran it."""
    now = rt.clock.now()
    with session_scope(rt.engine) as s:
        aide = s.exec(select(Officer).where(Officer.role == Role.assistant).order_by(Officer.id)).first()
        admin = s.exec(select(Officer).where(Officer.role == Role.admin).order_by(Officer.id)).first()
        passwords = [secrets.token_urlsafe(9), secrets.token_urlsafe(9)]
        secret = auth.new_totp_secret()
        officer_accounts.set_password(s, aide, passwords[0], now, actor="demo")
        officer_accounts.set_password(s, admin, passwords[1], now, actor="demo", totp_secret=secret)
        qr = directory / f"officer-{admin.id}-totp.png"
        auth.qr_png(auth.totp_uri(admin, secret), str(qr))
        return ConsoleLogins(aide.id, passwords[0], admin.id, passwords[1], secret, qr)


async def serve_console(rt, port: int, stop: asyncio.Event, listening: asyncio.Event | None = None) -> None:
    """The console alone on the demo's database (its clock stopped where the simulation ended), until `stop`;
    `listening` is set once the port takes connections."""
    clock = FixedClock(rt.clock.now())
    rt.clock = clock
    routes, errors = office_routes(rt)
    web = LoopbackServer(make_app(clock, {}, routes, errors))
    await web.start(port=port)
    if listening is not None:
        listening.set()
    try:
        await stop.wait()
    finally:
        await web.stop()
