"""The roster written back as the office keeps it: the columns `checkin roster import` reads (English or Chinese
headers and words), in CSV with a BOM or an Excel workbook. Importing the file unchanged changes nothing."""

from __future__ import annotations

import csv
import io

from sqlmodel import Session, col, select

from content.formatting import phone_national
from handlers.roster import COLUMNS, HEADER_ALIASES, OPTIONAL, VALUE_ALIASES
from storage.models import SUPERVISED, Supervisee

EXPORTED = COLUMNS + OPTIONAL


def _first_alias(table: dict[str, str]) -> dict[str, str]:
    """value -> the first word the import reads for it (the office's usual one)."""
    out: dict[str, str] = {}
    for word, value in table.items():
        out.setdefault(value, word)
    return out


ZH_HEADERS = _first_alias(HEADER_ALIASES)
ZH_WORDS = {column: _first_alias(words) for column, words in VALUE_ALIASES.items()}


def roster_rows(session: Session, *, chinese: bool = False, township: str | None = None) -> list[list[str]]:
    """The header and a row per person under supervision (not those whose supervision ended), by case number."""
    query = select(Supervisee).where(col(Supervisee.status).in_(SUPERVISED)).order_by(Supervisee.case_number)
    if township:
        query = query.where(Supervisee.township == township)
    rows = [[ZH_HEADERS.get(c, c) for c in EXPORTED] if chinese else list(EXPORTED)]
    for p in session.exec(query):
        values = {"case_number": p.case_number, "name": p.name, "phone": phone_national(p.phone),
                  "language": p.language, "category": p.category, "level": p.level, "township": p.township,
                  "officer_id": str(p.officer_id), "supervision_start": p.supervision_start.isoformat(),
                  "supervision_end": p.supervision_end.isoformat(), "channel": _channel(p)}
        if chinese:
            values = {c: ZH_WORDS.get(c, {}).get(v, v) for c, v in values.items()}
        rows.append([values[c] for c in EXPORTED])
    return rows


def _channel(p: Supervisee) -> str:
    """The person's channel as the import takes it back: Telegram only while the chat works (else empty: kept)."""
    if p.preferred_channel == "telegram" and (p.telegram_chat_id is None or p.telegram_blocked_at is not None):
        return ""
    return p.preferred_channel


def as_csv(rows: list[list[str]]) -> bytes:
    """UTF-8 with a BOM: Excel on a Chinese Windows opens it as written."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def as_xlsx(rows: list[list[str]]) -> bytes:
    """An Excel workbook; every cell text (a phone number stays as written, a date as the import reads it)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "roster"
    for row in rows:
        sheet.append(row)
    for column in sheet.columns:  # wide enough to read
        sheet.column_dimensions[column[0].column_letter].width = max(10, *(len(str(c.value or "")) + 2
                                                                          for c in column[:50]))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
