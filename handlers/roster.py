"""Roster import: validate every row of the contract CSV, then import all of it or nothing."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime

import phonenumbers
from sqlalchemy import delete, text
from sqlmodel import Session, col, select

from content import catalog
from content.formatting import MOBILE_TYPES, is_mobile
from content.refusals import PhoneError
from handlers import case_life
from handlers.case_life import Actor
from handlers.contract import row_id
from handlers.delivery import deliver
from handlers.schedule import PLANNED_KINDS
from storage.crypto import keyring_for
from storage.models import Category, Level, Obligation, ObligationState, Officer, Role, Status, Supervisee

COLUMNS = (
    "case_number", "name", "phone", "language", "category", "level",
    "township", "officer_id", "supervision_start", "supervision_end",
)
OPTIONAL = ("channel",)  # columns a file may leave out (an empty cell keeps what the person has)
CHANNELS = ("sms", "telegram", "voice")
LANGUAGE_ALIASES = {"zh-cn": "zh-CN", "zh_cn": "zh-CN", "zh": "zh-CN", "en": "en", "en-us": "en", "en-gb": "en"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-/]{0,39}$")
# Fields compared to tell an unchanged row from an update.
_FIELDS = COLUMNS[1:]
# Fields whose change invalidates the planned obligations.
_CADENCE = ("level", "supervision_start", "supervision_end")


@dataclass(frozen=True)
class RowError:
    """One bad value: where it is and what is wrong with it (`key`, under `office.`, and its values), said in the
    reader's language by `render`."""

    line: int
    column: str
    value: str
    key: str
    params: dict = field(default_factory=dict, compare=False)

    def message(self, lang: str) -> str:
        return catalog.text(lang, f"office.{self.key}", **self.params)

    def render(self, lang: str) -> str:
        return catalog.text(lang, "office.roster.row_error", line=self.line, column=self.column, value=repr(self.value),
                    message=self.message(lang))

    def __str__(self) -> str:
        return self.render("en")


@dataclass(frozen=True)
class Ref:
    """What a row says that only the database can check (its officer, its phone, Telegram as its channel), from
    every row read, valid or not, so that one round of fixes answers every problem."""

    line: int
    case_number: str
    officer_id: int | None
    phone: str | None
    channel: str = ""
    landline_as_is: str = ""  # a landline, as written, in a row keeping the channel as is: the person must be on voice


@dataclass
class RosterRow:
    """One validated row."""

    line: int
    case_number: str
    name: str
    phone: str
    language: str
    category: str
    level: str
    township: str
    officer_id: int
    supervision_start: date
    supervision_end: date
    channel: str = ""  # sms, telegram, voice; empty: as it is (SMS for someone new)


@dataclass
class ImportResult:
    """What an import did (or, dry run, would do)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    notices: int = 0  # messages queued to people and officers about transfers and level or language changes
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


def normalise_phone(raw: str, region: str, *, landline: bool = False) -> str:
    """E.164 for a valid mobile number (any valid number with `landline`: calls reach a fixed line), else
    PhoneError saying why."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise PhoneError("not_a_number") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("invalid", region=region)
    if not landline and phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise PhoneError("not_mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# The office's spreadsheets: Chinese headers, and Chinese words for the coded values.
HEADER_ALIASES = {
    "案号": "case_number", "案件编号": "case_number", "姓名": "name", "电话": "phone", "手机": "phone",
    "手机号": "phone", "语言": "language", "类别": "category", "矫正类别": "category", "等级": "level",
    "管理等级": "level", "乡镇": "township", "司法所": "township", "协管员编号": "officer_id",
    "协管员": "officer_id", "矫正开始": "supervision_start", "开始日期": "supervision_start",
    "矫正结束": "supervision_end", "结束日期": "supervision_end", "联系方式": "channel", "渠道": "channel",
}
VALUE_ALIASES = {
    "level": {"严管": "strict", "普管": "ordinary", "宽管": "lenient"},
    "category": {"缓刑": "probation", "假释": "parole", "管制": "control", "暂予监外执行": "medical_parole",
                 "剥夺政治权利": "deprivation"},
    "language": {"中文": "zh-CN", "英文": "en", "英语": "en"},
    "channel": {"短信": "sms", "电话": "voice", "语音": "voice", "语音电话": "voice"},
}
XLSX_MAGIC = b"PK\x03\x04"


def _choices(column: str, values) -> str:
    """The values a column takes, each with the Chinese word a spreadsheet may use: `strict (严管), ...`."""
    words = {code: word for word, code in reversed(VALUE_ALIASES[column].items())}
    return ", ".join(f"{v} ({words[v]})" if v in words else str(v) for v in values)


def xlsx_to_csv(data: bytes) -> str:
    """The first sheet of an XLSX workbook as CSV text (dates as YYYY-MM-DD, numbers without '.0')."""
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in sheet.iter_rows(values_only=True):
        cells = []
        for v in row:
            if isinstance(v, datetime):
                v = v.date().isoformat()
            elif isinstance(v, date):
                v = v.isoformat()
            elif isinstance(v, float) and v.is_integer():
                v = int(v)
            cells.append("" if v is None else str(v))
        writer.writerow(cells if any(cells) else [])  # an empty row too: errors name rows as Excel numbers them
    return out.getvalue()


def _decode(data: bytes | str) -> str:
    """UTF-8 (with or without a BOM, as Excel saves it), else GBK (as a Chinese Windows saves CSV); XLSX read."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if data.startswith(XLSX_MAGIC):
        return xlsx_to_csv(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gbk")


def parse_roster(data: bytes | str, region: str, default_language: str,
                 refs: list[Ref] | None = None) -> tuple[list[RosterRow], list[RowError]]:
    """Parse and validate the CSV text; every problem is reported, none is fatal here.

    `refs`, when given, receives each row's officer and phone for the database's checks.
    """
    errors: list[RowError] = []
    try:
        text = _decode(data)
    except UnicodeDecodeError as exc:
        return [], [RowError(1, "file", "", "roster.encoding", {"offset": exc.start})]
    except Exception as exc:  # a damaged XLSX
        return [], [RowError(1, "file", "", "roster.bad_xlsx", {"error": type(exc).__name__})]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [HEADER_ALIASES.get(h.strip(), h.strip()) for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in COLUMNS if c not in header]
    extra = [c for c in header if c not in COLUMNS + OPTIONAL]
    for c in missing:
        errors.append(RowError(1, c, "", "roster.missing_column"))
    for c in extra:
        errors.append(RowError(1, c, c, "roster.unknown_column", {"expected": ",".join(COLUMNS + OPTIONAL)}))
    if missing or extra:
        return [], errors

    rows: list[RosterRow] = []
    seen_case: dict[str, int] = {}
    seen_phone: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if raw.get(None):
            errors.append(RowError(line, "row", ",".join(raw[None]), "roster.extra_fields"))
            continue
        values = {c: (raw.get(c) or "").strip() for c in COLUMNS + OPTIONAL}
        for column, words in VALUE_ALIASES.items():
            values[column] = words.get(values[column], values[column])
        if not any(values.values()):
            continue
        row_errors: list[RowError] = []

        def bad(column: str, key: str, **params: object) -> None:
            row_errors.append(RowError(line, column, values[column], key, params))

        case = values["case_number"]
        if not _CASE.match(case):
            bad("case_number", "roster.bad_case")
        elif case in seen_case:
            bad("case_number", "roster.duplicate_case", line=seen_case[case])
        else:
            seen_case[case] = line
        if not values["name"]:
            bad("name", "roster.empty")
        elif len(values["name"]) > 100:
            bad("name", "roster.long_name")
        channel = values["channel"].lower()
        if channel and channel not in CHANNELS:
            bad("channel", "roster.bad_channel")
        phone, landline = "", False
        try:
            phone = normalise_phone(values["phone"], region, landline=True)
        except PhoneError as exc:
            bad("phone", exc.ref, **exc.params)
        else:
            landline = not is_mobile(phone)  # fine for calls: a person on voice (this row's channel, or the database's)
            if landline and channel and channel != "voice":
                bad("phone", "phone.not_mobile")
            if phone in seen_phone:
                bad("phone", "roster.same_phone", line=seen_phone[phone])
            seen_phone.setdefault(phone, line)
        language = LANGUAGE_ALIASES.get(values["language"].lower(), None) if values["language"] else default_language
        if language is None:
            bad("language", "roster.bad_language")
        category, level = values["category"].lower(), values["level"].lower()
        if category not in Category.__members__:
            bad("category", "roster.one_of", values=_choices("category", Category))
        if level not in Level.__members__:
            bad("level", "roster.one_of", values=_choices("level", Level))
        if not values["township"]:
            bad("township", "roster.empty")
        officer_id = row_id(values["officer_id"])
        if officer_id is None:
            bad("officer_id", "roster.bad_officer_id")
        dates: dict[str, date] = {}
        for column in ("supervision_start", "supervision_end"):
            if not _DATE.match(values[column]):
                bad(column, "roster.bad_date")
                continue
            try:
                dates[column] = date.fromisoformat(values[column])
            except ValueError:
                bad(column, "roster.no_such_date")
        if refs is not None:
            refs.append(Ref(line, case, officer_id, phone or None, channel,
                            values["phone"] if landline and not channel else ""))
        if len(dates) == 2 and dates["supervision_end"] <= dates["supervision_start"]:
            bad("supervision_end", "roster.end_before_start", start=values["supervision_start"])
        if row_errors:
            errors.extend(row_errors)
            continue
        rows.append(RosterRow(
            line=line, case_number=case, name=values["name"], phone=phone, language=language,
            category=category, level=level, township=values["township"], officer_id=officer_id,
            supervision_start=dates["supervision_start"], supervision_end=dates["supervision_end"], channel=channel,
        ))
    return rows, errors


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _check_against_db(session: Session, rows: list[Ref]) -> list[RowError]:
    """Officers must exist and not be administrators; a phone may not belong to another person."""
    errors: list[RowError] = []
    officer_ids = sorted({r.officer_id for r in rows if r.officer_id is not None})
    officers: dict[int, Officer] = {}
    for chunk in _chunks(officer_ids):
        officers.update({o.id: o for o in session.exec(select(Officer).where(Officer.id.in_(chunk)))})
    holders: dict[str, str] = {}  # blind index of a phone -> the case holding it
    blind = keyring_for(session).blind
    for chunk in _chunks([blind(r.phone) for r in rows if r.phone]):
        holders.update({p: c for p, c in session.exec(
            select(Supervisee.phone_index, Supervisee.case_number).where(Supervisee.phone_index.in_(chunk))
        )})
    cases_in_file = {r.case_number for r in rows}
    on_telegram: set[str] = set()  # the file's cases with a working Telegram chat
    for chunk in _chunks([r.case_number for r in rows if r.channel == "telegram"]):
        on_telegram.update(session.exec(select(Supervisee.case_number).where(
            col(Supervisee.case_number).in_(chunk), col(Supervisee.telegram_chat_id).is_not(None),
            col(Supervisee.telegram_blocked_at).is_(None))))
    on_voice: set[str] = set()  # the file's cases with a landline and no channel given, already on voice
    for chunk in _chunks([r.case_number for r in rows if r.landline_as_is]):
        on_voice.update(session.exec(select(Supervisee.case_number).where(
            col(Supervisee.case_number).in_(chunk), Supervisee.preferred_channel == "voice")))
    for r in rows:
        if r.channel == "telegram" and r.case_number not in on_telegram:
            errors.append(RowError(r.line, "channel", r.channel, "roster.no_telegram"))
        if r.landline_as_is and r.case_number not in on_voice:
            errors.append(RowError(r.line, "phone", r.landline_as_is, "phone.not_mobile"))
        officer = officers.get(r.officer_id) if r.officer_id is not None else None
        if r.officer_id is None:
            pass  # its own error is already on the row
        elif officer is None:
            errors.append(RowError(r.line, "officer_id", str(r.officer_id), "roster.no_officer"))
        elif officer.role == Role.admin or not officer.active:
            errors.append(RowError(r.line, "officer_id", str(r.officer_id), "roster.cannot_supervise"))
        holder = holders.get(blind(r.phone)) if r.phone else None
        if holder is not None and holder != r.case_number and holder not in cases_in_file:
            errors.append(RowError(r.line, "phone", r.phone, "roster.phone_taken", {"case": holder}))
    return errors


def import_roster(
    session: Session, data: bytes | str, *, now: datetime, region: str = "CN",
    default_language: str = "zh-CN", dry_run: bool = False, actor: str = "roster",
) -> ImportResult:
    """Validate, then create or update every row in the caller's transaction; on any error write nothing.

    A changed officer, level or language of a case under supervision is that case's transfer, level or language
    change (handlers.case_life): audited as `actor`, alerts and leave moving along, the people concerned told.
    """
    result = ImportResult(dry_run=dry_run)
    refs: list[Ref] = []
    rows, errors = parse_roster(data, region, default_language, refs)
    errors += _check_against_db(session, refs)  # in the same pass: one round of fixes answers everything
    if errors:
        order = {c: i for i, c in enumerate(("file", "row", *COLUMNS, *OPTIONAL))}
        result.errors = sorted(errors, key=lambda e: (e.line, order.get(e.column, len(order))))
        return result
    existing: dict[str, Supervisee] = {}
    for chunk in _chunks([r.case_number for r in rows]):
        existing.update({p.case_number: p for p in session.exec(
            select(Supervisee).where(Supervisee.case_number.in_(chunk))
        )})
    created: list[Supervisee] = []
    updates: list[tuple[Supervisee, dict]] = []
    for r in rows:
        values = {f: getattr(r, f) for f in _FIELDS}
        if r.channel:
            values["preferred_channel"] = r.channel
        person = existing.get(r.case_number)
        if person is None:
            created.append(Supervisee(
                case_number=r.case_number, status=Status.active, created_at=now, updated_at=now, **values
            ))
        elif any(getattr(person, f) != v for f, v in values.items()):
            updates.append((person, values))
    result.created, result.updated = len(created), len(updates)
    result.unchanged = len(rows) - len(created) - len(updates)
    if dry_run:
        return result
    # Phones may move between people in one file: park the moving ones first
    # so that the unique index holds at every step of the flush.
    movers = [p for p, v in updates if p.phone != v["phone"]]
    for p in movers:
        p.phone = None
    if movers:
        session.flush()
    replan = []
    changed_by = Actor(actor)
    for person, values in updates:
        if person.status != Status.ended:
            notices = []
            if values["officer_id"] != person.officer_id:
                notices += case_life.transfer(session, person, session.get(Officer, values["officer_id"]),
                                              actor=changed_by, now=now)
            notices += case_life.set_level(session, person, values["level"], actor=changed_by, now=now)
            notices += case_life.set_language(session, person, values["language"], actor=changed_by, now=now)
            if "preferred_channel" in values:
                person.phone = values["phone"]  # the channel is checked against the number it will use
                notices += case_life.set_channel(session, person, values["preferred_channel"], actor=changed_by,
                                                 now=now)
            for i, reply in enumerate(notices):
                deliver(session, reply, now=now, dedupe_key=f"roster:{person.id}:{now.isoformat()}:{i}")
            result.notices += len(notices)
        if any(getattr(person, f) != values[f] for f in _CADENCE):
            replan.append(person.id)
            person.planned_until = None
            if person.status == Status.ended and values["supervision_end"] >= now.date():
                person.status = Status.active  # the roster extended the supervision
        for f, v in values.items():
            setattr(person, f, v)
        person.updated_at = now
    if replan:
        # The cadence changed: drop what was planned but not yet sent; the next sweep plans anew.
        session.execute(delete(Obligation).where(col(Obligation.supervisee_id).in_(replan),
                                                 Obligation.state == ObligationState.planned,
                                                 col(Obligation.kind).in_(PLANNED_KINDS)))
    session.add_all(created)
    session.flush()
    if len(created) >= 500 and session.get_bind().dialect.name == "postgresql":
        # Fresh statistics, or the planner keeps treating the table as tiny
        # and the next import's lookups scan it (13,000 rows: 6.7 s -> 1.0 s).
        session.execute(text("ANALYZE supervisee"))
    return result
