"""Tables the CLI prints, fitted to the terminal: whole columns chosen by width, never a cut key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from content.catalog import DEFAULT_LANGUAGE, text

BORDER = 3  # a column's padding (one space each side) and its right border


@dataclass(frozen=True)
class Column:
    """A column: `key` columns are always shown, whole; the others in order while they fit."""

    title: str
    key: bool = False
    justify: str = "left"
    wrap: bool = False  # free text: takes what room is left (at least WRAP_MIN) and wraps, never cut


WRAP_MIN = 16


def _width(title: str, cells: Sequence[str]) -> int:
    return max([cell_len(title), *(cell_len(c) for c in cells)])


def fitted(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, width: int, title: str | None = None,
           note_more: str = "", lang: str = DEFAULT_LANGUAGE) -> Table:
    """A table of whole columns that fits in `width`: key columns first, then the others in their order.

    Columns left out are named in the caption, in `lang` (with `note_more`, e.g. where to see them all).
    """
    widths = [_width(c.title, [r[i] for r in rows]) for i, c in enumerate(columns)]
    widths = [min(w, WRAP_MIN) if c.wrap else w for c, w in zip(columns, widths, strict=True)]
    room = width - 1 - sum(w + BORDER for c, w in zip(columns, widths, strict=True) if c.key)
    shown = []
    for i, (c, w) in enumerate(zip(columns, widths, strict=True)):
        if c.key:
            shown.append(i)
        elif w + BORDER <= room:
            shown.append(i)
            room -= w + BORDER
    left_out = [c.title for i, c in enumerate(columns) if i not in shown]
    caption = text(lang, "office.base.not_shown", width=width, columns=", ".join(left_out)) + note_more \
        if left_out else None
    table = Table(title=title, caption=caption, caption_justify="left")
    for i in shown:
        if columns[i].wrap:
            table.add_column(columns[i].title, overflow="fold", min_width=widths[i], ratio=1)
        else:
            table.add_column(columns[i].title, no_wrap=True, min_width=widths[i], justify=columns[i].justify)
    for r in rows:
        table.add_row(*(r[i] for i in shown))
    return table


def transposed(labels: Sequence[str], heads: Sequence[str], values: Sequence[Sequence[str]], *, width: int,
               title: str | None = None) -> list[Table]:
    """Figures as rows and one column per head (township), in as many blocks as `width` needs.

    `values[j][i]` is figure `labels[i]` of head `heads[j]`. Every block repeats the labels.
    """
    label_width = _width("", labels)
    widths = [_width(h, v) for h, v in zip(heads, values, strict=True)]
    blocks: list[list[int]] = [[]]
    used = 1 + label_width + BORDER
    for j, w in enumerate(widths):
        if blocks[-1] and used + w + BORDER > width:
            blocks.append([])
            used = 1 + label_width + BORDER
        blocks[-1].append(j)
        used += w + BORDER
    tables = []
    for n, block in enumerate(blocks):
        table = Table(title=title if n == 0 else None)
        table.add_column("", no_wrap=True, min_width=label_width)
        for j in block:
            table.add_column(heads[j], no_wrap=True, justify="right", min_width=widths[j])
        for i, label in enumerate(labels):
            table.add_row(label, *(values[j][i] for j in block))
        tables.append(table)
    return tables


def show(out: Console, tables: Table | list[Table]) -> None:
    """Print one table or several blocks."""
    for table in tables if isinstance(tables, list) else [tables]:
        out.print(table)
