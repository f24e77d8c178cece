"""Column types and field helpers for the tables: UTC datetimes, enum kinds, encrypted values, blind indexes."""

from __future__ import annotations

from datetime import UTC
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, DateTime, Index, String, TypeDecorator, bindparam, literal, text
from sqlmodel import Field

from storage.crypto import INDEX_LEN, Encrypted, EncryptedFloat


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC everywhere."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _ts(nullable: bool = True, index: bool = False):
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class KindType(TypeDecorator):
    """A StrEnum stored as its value; only members go in, members come out (a CHECK in the schema too)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value, dialect):
        return None if value is None else self.enum(value).value  # ValueError names a value that is no member

    def process_result_value(self, value, dialect):
        return None if value is None else self.enum(value)


def _kind(enum: type[StrEnum], length: int, default=None):
    """A column holding members of `enum`."""
    return Field(default=default, sa_column=Column(KindType(enum, length), nullable=False))


def one_of(column: str, enum: type[StrEnum], name: str) -> CheckConstraint:
    """The schema's own guard that `column` holds a member of `enum` (migration 0012 adds it)."""
    values = ", ".join(f"'{m.value}'" for m in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name)


def partial_index(name: str, *columns: str, where: str) -> Index:
    """An index over the rows matching `where` only, on SQLite and PostgreSQL alike.

    For the few rows a sweep looks for among many (open obligations, people never
    planned, people in lost contact): SQLite's statistics keep one average per
    index, so a value held by almost every row makes a plain index look useless
    and the planner scans the table; a partial index is small and always chosen.
    """
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


def written_in(column, values) -> object:
    """`column IN (values)` with the values written into the statement instead of bound: SQLite uses a partial
    index only when it can see that the query's condition is the index's own."""
    if len(values) == 1:  # `= 'x'`, which SQLite's planner reads better than `IN ('x')`
        return column == literal(str(values[0]), column.type, literal_execute=True)
    return column.in_(bindparam(None, [str(v) for v in values], expanding=True, literal_execute=True))


def _secret(purpose: str, nullable: bool = False, float_: bool = False):
    """A column stored encrypted (storage.crypto); `purpose` is its table.column."""
    kind = EncryptedFloat if float_ else Encrypted
    return Field(default=None, sa_column=Column(kind(purpose), nullable=nullable))


def _blind():
    """A blind index (keyed HMAC) of an encrypted phone number: what lookups by phone use."""
    return Field(default=None, max_length=INDEX_LEN, unique=True)
