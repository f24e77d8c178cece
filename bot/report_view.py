"""The compliance report for a terminal (figures as rows, fitted to its width) and as a chart (PNG)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import partial
from pathlib import Path

from rich.console import Console

from bot.tables import show, transposed
from content.catalog import DEFAULT_LANGUAGE, text
from handlers import compliance

# The report's figures, by the names the CSV's columns and the table's rows both use.
REPORT_COLUMNS = (
    "township", "active", "not_yet_active", "paused", "due", "on_time", "late", "no_location", "missed",
    "response_rate", "escalations", "acknowledged_in_sla", "to_supervisor", "lost_contact", "lost_per_mille",
    "study_hours", "under_study", "service_hours", "under_service", "warnings",
)


def report_rows(lines, month: str) -> list[list]:
    """The report as a table: the header (month and REPORT_COLUMNS), then a row per line; rates rounded."""
    rows: list[list] = [["month", *REPORT_COLUMNS]]
    for line in lines:
        row = line.as_row()
        rows.append([month] + ["" if row[k] is None else (round(row[k], 4) if isinstance(row[k], float) else row[k])
                               for k in REPORT_COLUMNS])
    return rows


def report_csv(lines, month: str) -> bytes:
    """CSV in UTF-8 with a BOM, so that Excel on a Chinese Windows opens the township names as written."""
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows(report_rows(lines, month))
    return buffer.getvalue().encode("utf-8-sig")


def report_xlsx(lines, month: str) -> bytes:
    """The same table as an Excel workbook."""
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = month
    for row in report_rows(lines, month):
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _cell(key: str, value) -> str:
    if value is None:
        return "—"
    if key == "response_rate":
        return f"{value:.1%}"
    if key in ("lost_per_mille", "study_hours", "service_hours"):
        return f"{value:.1f}"
    return str(value)


def _say(lang: str, key: str, /, **params: object) -> str:
    return text(lang, f"office.report.{key}", **params)


def month_status(month: str, now: datetime, zone: tzinfo) -> str:
    """"future", "current" or "past": whether the month has begun, and ended, at `now` (local to `zone`)."""
    start, end = compliance.month_bounds(month, zone)
    return "future" if now < start else ("current" if now < end else "past")


def print_report(out: Console, lines, month: str, township: str | None, target: float, *,
                 status: str = "past", lang: str = DEFAULT_LANGUAGE) -> None:
    """The report, figures as rows and one column per township (in blocks that fit the terminal), in `lang`."""
    say = partial(_say, lang)
    if status == "future":
        out.print(say("future", month=month), markup=False)
        return
    county = lines[-1]
    so_far = status == "current"
    if county.active == 0:
        out.print(say("nobody_in", month=month, township=township) if township else say("nobody", month=month),
                  markup=False)
    heads = [(say("county") if not township else say("total", township=township))
             if line.township == compliance.COUNTY else line.township for line in lines]
    figures = REPORT_COLUMNS[1:]
    values = [[_cell(k, getattr(line, k)) for k in figures] for line in lines]
    title = say("title_so_far" if so_far else "title", month=month, target=f"{target:g}")
    show(out, transposed([say(f"figure_{k}") for k in figures], heads, values, width=out.width, title=title))
    if county.active and county.due == 0:
        out.print(say("none_due_so_far" if so_far else "none_due", month=month), markup=False)
    if county.paused:
        out.print(say("paused", count=county.paused), markup=False)
    if county.not_yet_active:
        out.print(say("later", count=county.not_yet_active, month=month), markup=False)
    if county.lost_per_mille is not None:
        within = county.lost_per_mille <= target
        out.print(say(("lost_so_far_" if so_far else "lost_") + ("within" if within else "above"),
                      lost=county.lost_contact, active=county.active, rate=f"{county.lost_per_mille:.1f}",
                      target=f"{target:g}"), markup=False)


# Fonts that write Chinese, best first (Debian's fonts-noto-cjk, Adobe's Source Han, WenQuanYi, Windows' own).
CJK_FONTS = ("Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "Noto Sans CJK JP",
             "Noto Serif CJK JP")


def cjk_font() -> str | None:
    """The name of an installed font that writes Chinese, or None."""
    from matplotlib import font_manager

    def known() -> str | None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in installed), None)

    found = known()
    if found is None:  # matplotlib's font cache predates the font's installation: look at the files themselves
        for path in font_manager.findSystemFonts():
            if any(part in path.lower() for part in ("cjk", "wqy", "sourcehan", "simhei", "msyh")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = known()
    return found


def chart_labels(names: list[str], font: str | None) -> list[str]:
    """The townships' own names when the chart can write them (a CJK font, or names in plain Latin letters);
    else T1, T2 ... (the command prints the key)."""
    if font is not None or all(n.isascii() for n in names):
        return names
    return [f"T{i + 1}" for i in range(len(names))]


def draw_chart(lines, month: str, target: float, path: Path, font: str | None = None,
               lang: str = DEFAULT_LANGUAGE) -> list[str]:
    """Response rate and lost contact per township, with the target line (matplotlib, no screen); the labels
    it used for the townships. Titles in `lang` when a CJK font writes them (else in English)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    towns = [line for line in lines if line.township != compliance.COUNTY]
    say = partial(_say, lang if font is not None else "en")
    labels = chart_labels([line.township for line in towns] or [say("chart_none")], font)
    with plt.rc_context({"font.family": [font, "DejaVu Sans"]} if font else {}):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
        left.bar(range(len(towns)), [100 * (line.response_rate or 0) for line in towns], color="#4a7ab5")
        left.set_title(say("chart_response", month=month))
        left.set_ylabel("%")
        left.set_ylim(0, 100)
        right.bar(range(len(towns)), [line.lost_per_mille or 0 for line in towns], color="#c0504d")
        right.axhline(target, color="black", linestyle="--", label=say("chart_target", target=f"{target:g}"))
        right.set_title(say("chart_lost"))
        right.legend()
        for axis in (left, right):
            axis.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0)
        fig.tight_layout()
        fig.savefig(path, format="png")
        plt.close(fig)
    return labels if towns else []
