"""`checkin init`, the encryption keys, and the purge after the retention period."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.base import app, fail, keys_app, out, runtime
from bot.settings import SettingsError, load_settings, new_key_text, read_key_file, write_key_file
from handlers import purge
from storage import audit, rekey
from storage.crypto import Keyring, key_id, new_key
from storage.db import current_revision, has_schema, make_engine, migrate, session_scope


@app.command()
def init() -> None:
    """Create or migrate the database (and, for a new one without keys, make the key file)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc), 2)
    if not settings.data_keys and not Path(settings.key_file).exists():
        engine = make_engine(settings.database_url)
        fresh = not has_schema(engine)
        engine.dispose()
        if not fresh:
            fail(f"the database has data but there are no keys to read it: set CHECKIN_DATA_KEYS and "
                  f"CHECKIN_INDEX_KEY, or CHECKIN_KEY_FILE (not found: {settings.key_file})", 2)
        write_key_file(Path(settings.key_file), new_key_text())
        out.print(f"[yellow]made new encryption keys in {settings.key_file} (readable by you only): keep a copy "
                  "apart from the database; without them its personal data cannot be read[/]")
    rt = runtime(schema=False)
    before = current_revision(rt.engine)
    migrate(rt.engine)
    after = current_revision(rt.engine)
    where = rt.engine.url.render_as_string(hide_password=True)
    if before == after:
        out.print(f"database {where} is up to date (revision {after})")
    else:
        out.print(f"database {where} migrated from {before or 'empty'} to revision {after}")



@keys_app.command("generate")
def keys_generate(
    file: Annotated[Path | None, typer.Option("--file", help="Where to write (default CHECKIN_KEY_FILE)")] = None,
    print_: Annotated[bool, typer.Option("--print", help="Print the two settings instead of writing a file")] = False,
) -> None:
    """Make new keys: a key file readable by you only, or the two lines for your environment."""
    keys = new_key_text()
    if print_:
        for name, value in keys.items():
            out.print(f"{name}={value}", markup=False, soft_wrap=True)
        return
    try:
        path = file or Path(load_settings().key_file)
    except SettingsError as exc:
        fail(str(exc), 2)
    if path.exists():
        fail(f"{path} exists: keys are never overwritten (to change them, `checkin keys rotate`)", 2)
    write_key_file(path, keys)
    out.print(f"wrote new keys to {path} (mode 600); keep a copy apart from the database")


def _key_file_only(settings, what: str) -> Path:
    if settings.data_keys:
        fail(f"the keys come from CHECKIN_DATA_KEYS/CHECKIN_INDEX_KEY: {what} there (a new data key goes first, "
              "the old ones stay until `checkin keys rotate` says they are unused)", 2)
    return Path(settings.key_file)


@keys_app.command("add")
def keys_add() -> None:
    """Put a new data key first in the key file; new values are written with it once the service restarts."""
    rt = runtime()
    path = _key_file_only(rt.settings, "add the new key")
    values = read_key_file(path)
    values["CHECKIN_DATA_KEYS"] = ",".join([new_key(), values["CHECKIN_DATA_KEYS"]])
    write_key_file(path, values)
    ring = Keyring.parse(values["CHECKIN_DATA_KEYS"], values["CHECKIN_INDEX_KEY"])
    out.print(f"{path}: new data key {ring.primary} first, {len(ring.data_keys) - 1} older kept. Restart the service "
              "(so that it reads values under the new key), then run `checkin keys rotate`.")


@keys_app.command("rotate")
def keys_rotate(
    new_index_key: Annotated[bool, typer.Option(
        "--new-index-key", help="Replace the blind-index key in the key file and recompute the phone indexes "
                                "(stop the service first)")] = False,
    reindex: Annotated[bool, typer.Option(
        "--reindex", help="Recompute the phone indexes with the current index key (after changing it)")] = False,
) -> None:
    """Re-encrypt every stored value under the newest data key (resumable; safe while the service runs).

    First put the new data key first (`checkin keys add`, or in CHECKIN_DATA_KEYS keeping the old ones)
    and restart the service; then this re-encrypts and says which old keys are no longer used (and
    removes them from the key file). Changing the index key needs the service stopped: conversations
    in progress are reset.
    """
    rt = runtime()
    settings = rt.settings
    from_file = not settings.data_keys
    keyring, path = rt.engine.dialect.checkin_keyring, Path(settings.key_file)
    if new_index_key:
        path = _key_file_only(settings, "set the new CHECKIN_INDEX_KEY, then run `checkin keys rotate --reindex`")
        values = read_key_file(path)
        values["CHECKIN_INDEX_KEY"] = new_key()
        keyring = Keyring.parse(values["CHECKIN_DATA_KEYS"], values["CHECKIN_INDEX_KEY"])
        write_key_file(path, values)  # first: a reindex cut short is finished by `--reindex`
        out.print(f"{path}: new index key")
        reindex = True
    engine = make_engine(settings.database_url, keyring)
    report = rekey.reencrypt(engine)
    for column, n in sorted(report.rewritten.items()):
        out.print(f"  {column}: {n} re-encrypted")
    out.print(f"re-encrypted {sum(report.rewritten.values())} values under key {keyring.primary}")
    if reindex:
        idx = rekey.reindex(engine)
        out.print(f"recomputed {idx.reindexed} phone indexes; reset {idx.conversations_reset} conversations")
    stale = sorted(k for k in report.keys_in_use if k != keyring.primary)
    if stale:
        fail(f"values under keys {', '.join(stale)} remain (written meanwhile by a service holding old keys?): "
              "run this again", 1)
    with session_scope(engine) as session:
        audit.append(session, actor="cli", action="keys.rotate", now=rt.clock.now(), subject=f"key:{keyring.primary}",
                     details={"reencrypted": sum(report.rewritten.values()), "reindexed": reindex})
    unused = [key_id(k) for k in keyring.data_keys[1:]]
    if unused and from_file:
        values = read_key_file(path)
        values["CHECKIN_DATA_KEYS"] = values["CHECKIN_DATA_KEYS"].split(",")[0]
        write_key_file(path, values)
        out.print(f"old keys {', '.join(unused)} no longer used: removed from {path}")
    elif unused:
        out.print(f"old keys {', '.join(unused)} no longer used: remove them from CHECKIN_DATA_KEYS")
    engine.dispose()


@app.command("purge")
def purge_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed")] = False,
    years: Annotated[int | None, typer.Option(
        "--years", min=1, help="Retention in years (default: the policy's [retention] personal_data_years)")] = None,
) -> None:
    """Remove the personal data of people whose supervision ended more than the retention period ago."""
    rt = runtime()
    years = years or rt.policy.retention.personal_data_years
    with session_scope(rt.engine) as session:
        result = purge.purge(session, now=rt.clock.now(), years=years, zone=rt.settings.zone, dry_run=dry_run)
        if dry_run:
            session.rollback()
        elif result.recordings:  # spoken reports' audio, kept by Twilio: deleted there before the purge commits
            left = _delete_recordings(rt.settings, result.recordings)
            if left:
                out.print(f"[yellow]{len(left)} recordings could not be deleted at Twilio; delete them in the Twilio "
                          f"console: {', '.join(left)}")
    verb = "would remove" if dry_run else "removed"
    out.print(f"supervision ended before {result.cutoff} ({years} years): {len(result.people)} people; "
              f"{result.notified} still reachable {'would be' if dry_run else 'were'} sent a last message")
    table = Table("personal data", verb)
    for name, n in result.removed.items():
        table.add_row(name.replace("_", " "), str(n))
    table.add_row("recordings at Twilio", str(len(result.recordings)))
    out.print(table)
    if not dry_run and result.people:
        out.print("kept for the monthly report: obligations, escalations, study, service and warning counts; "
                  "every purge is in the audit trail (checkin audit verify)")


def _delete_recordings(settings, urls: list[str]) -> list[str]:
    """The recordings' sids that could not be deleted at Twilio (all of them when Twilio is not configured)."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return [u.rsplit("/", 1)[-1] for u in urls]
    from bot.channels.voice import delete_recordings

    return delete_recordings(settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_api_base_url,
                             urls)
