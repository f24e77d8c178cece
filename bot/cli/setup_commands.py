"""`checkin init`, the encryption keys, and the purge after the retention period."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.base import app, fail, keys_app, out, runtime, say
from bot.cli.base import settings as current_settings
from bot.settings import SettingsError, new_key_text, read_key_file, write_key_file
from handlers import purge
from storage import audit, rekey
from storage.crypto import Keyring, key_id, new_key
from storage.db import current_revision, has_schema, make_engine, migrate, session_scope


@app.command()
def init() -> None:
    """Create or migrate the database (and, for a new one without keys, make the key file)."""
    try:
        settings = current_settings()
    except SettingsError as exc:
        fail(str(exc), 2)
    if not settings.data_keys and not Path(settings.key_file).exists():
        engine = make_engine(settings.database_url)
        fresh = not has_schema(engine)
        engine.dispose()
        if not fresh:
            fail(say("setup.no_keys", path=settings.key_file), 2)
        write_key_file(Path(settings.key_file), new_key_text())
        out.print(say("setup.made_keys", path=settings.key_file), style="yellow", markup=False)
    rt = runtime(schema=False)
    before = current_revision(rt.engine)
    migrate(rt.engine)
    after = current_revision(rt.engine)
    where = rt.engine.url.render_as_string(hide_password=True)
    if before == after:
        out.print(say("setup.up_to_date", where=where, revision=after), markup=False)
    else:
        out.print(say("setup.migrated", where=where, before=before or say("setup.empty"), revision=after),
                  markup=False)



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
        path = file or Path(current_settings().key_file)
    except SettingsError as exc:
        fail(str(exc), 2)
    if path.exists():
        fail(say("keys.exists", path=path), 2)
    write_key_file(path, keys)
    out.print(say("keys.written", path=path), markup=False)


def _key_file_only(settings, what: str) -> Path:
    """The key file, or (keys in the environment) an end saying to do `what` (an office text) there."""
    if settings.data_keys:
        fail(say("keys.from_environment", what=say(f"keys.{what}")), 2)
    return Path(settings.key_file)


@keys_app.command("add")
def keys_add() -> None:
    """Put a new data key first in the key file; new values are written with it once the service restarts."""
    rt = runtime()
    path = _key_file_only(rt.settings, "to_add")
    values = read_key_file(path)
    values["CHECKIN_DATA_KEYS"] = ",".join([new_key(), values["CHECKIN_DATA_KEYS"]])
    write_key_file(path, values)
    ring = Keyring.parse(values["CHECKIN_DATA_KEYS"], values["CHECKIN_INDEX_KEY"])
    out.print(say("keys.added", path=path, key=ring.primary, older=len(ring.data_keys) - 1), markup=False)


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
        path = _key_file_only(settings, "to_reindex")
        values = read_key_file(path)
        values["CHECKIN_INDEX_KEY"] = new_key()
        keyring = Keyring.parse(values["CHECKIN_DATA_KEYS"], values["CHECKIN_INDEX_KEY"])
        write_key_file(path, values)  # first: a reindex cut short is finished by `--reindex`
        out.print(say("keys.new_index", path=path), markup=False)
        reindex = True
    engine = make_engine(settings.database_url, keyring)
    report = rekey.reencrypt(engine)
    for column, n in sorted(report.rewritten.items()):
        out.print(say("keys.column", column=column, count=n), markup=False)
    out.print(say("keys.reencrypted", count=sum(report.rewritten.values()), key=keyring.primary), markup=False)
    if reindex:
        idx = rekey.reindex(engine)
        out.print(say("keys.reindexed", count=idx.reindexed, reset=idx.conversations_reset), markup=False)
    stale = sorted(k for k in report.keys_in_use if k != keyring.primary)
    if stale:
        fail(say("keys.stale", keys=", ".join(stale)), 1)
    with session_scope(engine) as session:
        audit.append(session, actor="cli", action="keys.rotate", now=rt.clock.now(), subject=f"key:{keyring.primary}",
                     details={"reencrypted": sum(report.rewritten.values()), "reindexed": reindex})
    unused = [key_id(k) for k in keyring.data_keys[1:]]
    if unused and from_file:
        values = read_key_file(path)
        values["CHECKIN_DATA_KEYS"] = values["CHECKIN_DATA_KEYS"].split(",")[0]
        write_key_file(path, values)
        out.print(say("keys.removed", keys=", ".join(unused), path=path), markup=False)
    elif unused:
        out.print(say("keys.remove_them", keys=", ".join(unused)), markup=False)
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
                out.print(say("purge.recordings_left", count=len(left), sids=", ".join(left)), style="yellow",
                          markup=False)
    out.print(say("purge.would" if dry_run else "purge.done", cutoff=result.cutoff, years=years,
                  people=len(result.people), notified=result.notified), markup=False)
    table = Table(say("purge.col_data"), say("purge.col_would" if dry_run else "purge.col_removed"))
    for name, n in result.removed.items():
        table.add_row(say(f"purge.table_{name}"), str(n))
    table.add_row(say("purge.recordings"), str(len(result.recordings)))
    out.print(table)
    if not dry_run and result.people:
        out.print(say("purge.kept"), markup=False)


def _delete_recordings(settings, urls: list[str]) -> list[str]:
    """The recordings' sids that could not be deleted at Twilio (all of them when Twilio is not configured)."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return [u.rsplit("/", 1)[-1] for u in urls]
    from bot.channels.voice import delete_recordings

    return delete_recordings(settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_api_base_url,
                             urls)
