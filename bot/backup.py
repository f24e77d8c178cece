"""`checkin backup FILE` and `checkin restore FILE`: the database, never the keys.

SQLite: the online backup API (`sqlite3.Connection.backup`), a consistent copy
taken while the service runs (a drain writing, a sweep); the copy is checked
(`PRAGMA integrity_check`) before it is called done. PostgreSQL: `pg_dump
--format=custom` of the service's schema (the one its search_path names, else
`public`), and `pg_restore` into an empty database; both programs must be on
the PATH (Debian: `postgresql-client`), and the command says so when they are
not. The key file is never in a backup: a stolen backup is then unreadable,
and the keys' copy must be kept apart from the backups (docs/operations.md).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from content.refusals import Refused
from storage.crypto import keyring_for
from storage.db import current_revision, has_schema, make_engine, session_scope
from storage.models import AuditEntry, Message, Supervisee


class BackupError(Refused):
    """A backup or restore that cannot be done; `render` says what to do in the reader's language."""

    section = "backup"


@dataclass(frozen=True)
class Copied:
    revision: str | None
    messages: int
    people: int
    audit_entries: int


def _counts(engine: Engine) -> Copied:
    with session_scope(engine) as db:
        count = lambda model: db.execute(select(func.count()).select_from(model)).scalar()  # noqa: E731
        return Copied(current_revision(engine), count(Message), count(Supervisee), count(AuditEntry))


def _sqlite_path(engine: Engine) -> Path:
    return Path(engine.url.database or "")


def _pg(engine: Engine) -> tuple[str, str]:
    """The libpq connection string (without the driver's name) and the schema the service uses."""
    url = engine.url
    options = unquote(str(url.query.get("options", "")))
    schema = options.partition("search_path=")[2].split()[0] if "search_path=" in options else "public"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return plain, schema


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError("no_program", program=name)
    return found


def backup(engine: Engine, target: Path) -> Copied:
    """A consistent copy of the database in `target` (which must not exist)."""
    if target.exists():
        raise BackupError("exists", path=target)
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            with sqlite3.connect(target) as copy:
                raw.driver_connection.backup(copy)  # the online backup API: pages copied under a read lock
                if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    raise BackupError("copy_damaged", path=target)
        finally:
            raw.close()
        copied = make_engine(f"sqlite:///{target}", keyring_for(engine))
        try:
            return _counts(copied)
        finally:
            copied.dispose()
    dsn, schema = _pg(engine)
    done = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--schema={schema}",
                           f"--file={target}", f"--dbname={dsn}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError("failed", program="pg_dump", error=done.stderr.strip()[:300])
    return _counts(engine)


def restore(source: Path, engine: Engine) -> Copied:
    """Put the backup `source` into the empty database of `engine`."""
    if not source.exists():
        raise BackupError("no_file", path=source)
    if has_schema(engine):
        raise BackupError("not_empty", where=engine.url.render_as_string(hide_password=True))
    if engine.dialect.name == "sqlite":
        with sqlite3.connect(source) as backup_db, sqlite3.connect(_sqlite_path(engine)) as target:
            if backup_db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError("damaged", path=source)
            backup_db.backup(target)
    else:
        dsn, _schema = _pg(engine)
        done = subprocess.run([_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={dsn}", str(source)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError("failed", program="pg_restore", error=done.stderr.strip()[:300])
    engine.dispose()  # connections opened before the restore saw an empty database
    return _counts(engine)
