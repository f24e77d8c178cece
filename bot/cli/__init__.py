"""The `checkin` command line (typer + rich): one module per command group, registered on `base.app`."""

from __future__ import annotations

import logging

from bot.cli import (  # noqa: F401  (importing a group registers its commands)
    areas_commands,
    audit_commands,
    bulk_commands,
    case_commands,
    community_service_commands,
    console_commands,
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
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()
