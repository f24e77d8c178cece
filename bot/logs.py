"""Logging for the command line and the service: the level (CHECKIN_LOG_LEVEL) and the format, text or one JSON
object a line (CHECKIN_LOG_FORMAT=json) for a log collector. Lines carry ids, never numbers or message texts
(tests/bot/test_sms.py reads a service's whole log for them)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """{"at", "level", "logger", "message"} (and "error" with the exception's type when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["trace"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str | None, fmt: str = "text", *, default: int = logging.WARNING) -> None:
    """The root logger's level (`level`, else `default`) and its one handler's format."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT))
    root.setLevel(getattr(logging, level.upper()) if level else default)
