"""The `checkin` command line (typer + rich): one module per command group, registered on `base.app`."""

from __future__ import annotations

from bot.cli import (  # noqa: F401  (importing a group registers its commands)
    areas_commands,
    audit_commands,
    bulk_commands,
    case_commands,
    community_service_commands,
    console_commands,
    doctor_commands,
    leave_commands,
    officer_commands,
    process_commands,
    report_commands,
    roster_commands,
    setup_commands,
    sms_commands,
    warning_commands,
)
from bot.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `checkin` console script."""
    from bot import logs
    from bot.settings import SettingsError, load_settings

    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
    except SettingsError:  # the command says what is wrong with them
        logs.configure(None)
    app()
