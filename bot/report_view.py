"""The compliance report for a terminal (a rich table) and as a chart (PNG)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from handlers import compliance

REPORT_COLUMNS = [
    ("township", "township"), ("active", "active"), ("due", "check-ins due"), ("on_time", "on time"),
    ("late", "late"), ("partial", "no location"), ("missed", "missed"), ("response_rate", "response rate"),
    ("escalations", "escalations"),
    ("acknowledged_in_sla", "ack in SLA"), ("to_supervisor", "to supervisor"), ("lost_contact", "lost contact"),
    ("lost_per_mille", "lost ‰"), ("study_hours", "study h"), ("under_study", "< 8 h study"),
    ("service_hours", "service h"), ("under_service", "< 8 h service"), ("warnings", "warnings"),
]


def _cell(key: str, value) -> str:
    if value is None:
        return "—"
    if key == "response_rate":
        return f"{value:.1%}"
    if key in ("lost_per_mille", "study_hours", "service_hours"):
        return f"{value:.1f}"
    return str(value)


def print_report(out: Console, lines, month: str, township: str | None, target: float) -> None:
    """The report as a rich table, with what the county's lines say."""
    county = lines[-1]
    if county.active == 0:
        out.print(f"No one was under supervision in {month}{' in ' + township if township else ''}: nothing to report.")
    table = Table(
        *(label for _, label in REPORT_COLUMNS), title=f"compliance {month} (lost-contact target ≤ {target:g}‰)"
    )
    for line in lines:
        cells = [_cell(k, getattr(line, k)) for k, _ in REPORT_COLUMNS]
        if line.township == compliance.COUNTY:
            cells[0] = "county" if not township else township + " (total)"
        table.add_row(*cells, style="bold" if line.township == compliance.COUNTY else None)
    out.print(table)
    if county.active and county.due == 0:
        out.print(f"No check-ins were due in {month}: no response rate.")
    if county.lost_per_mille is not None:
        verdict = "within" if county.lost_per_mille <= target else "ABOVE"
        out.print(f"Lost contact: {county.lost_contact} of {county.active} = {county.lost_per_mille:.1f}‰, "
                  f"{verdict} the {target:g}‰ target.")


def draw_chart(lines, month: str, target: float, path: Path) -> None:
    """Response rate and lost contact per township, with the target line (matplotlib, no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    towns = [line for line in lines if line.township != compliance.COUNTY]
    names = [line.township for line in towns] or ["(none)"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    left.bar(range(len(towns)), [100 * (line.response_rate or 0) for line in towns], color="#4a7ab5")
    left.set_title(f"Check-in response rate, {month}")
    left.set_ylabel("%")
    left.set_ylim(0, 100)
    right.bar(range(len(towns)), [line.lost_per_mille or 0 for line in towns], color="#c0504d")
    right.axhline(target, color="black", linestyle="--", label=f"target {target:g}‰")
    right.set_title("Lost contact (per mille)")
    right.legend()
    for axis in (left, right):
        axis.set_xticks(range(len(names)), [f"T{i + 1}" for i in range(len(names))])
    # Township names are often Chinese and the machine may have no CJK font: label T1, T2 ...,
    # and the command prints the key.
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
