"""`checkin areas ...`: the county's areas for location check-ins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.base import areas_app, fail, out, runtime
from bot.tables import Column, fitted
from content.areas import AreaError, load_areas


@areas_app.command("list")
def areas_list(
    file: Annotated[Path | None, typer.Option("--file", help="Check this file instead of CHECKIN_AREAS_FILE")]
    = None,
) -> None:
    """The areas in use (or in FILE), checked: ids, kinds, names, size."""
    if file is not None:
        try:
            found = load_areas(str(file))
        except AreaError as exc:
            fail(str(exc), 2)
    else:
        found = runtime(schema=False).areas
    columns = [Column("id", key=True), Column("kind", key=True), Column("name (zh)"), Column("name (en)"),
               Column("km²", justify="right"), Column("aliases", wrap=True)]
    rows = [[a.key, a.kind, a.name_zh, a.name_en, f"{a.geometry.area / 1e6:,.0f}", ", ".join(a.aliases)] for a in found]
    out.print(fitted(columns, rows, width=out.width))
    out.print(f"{len(list(found))} areas from {found.source}")


@areas_app.command("where")
def areas_where(
    lat: Annotated[float, typer.Argument(help="Latitude")],
    lon: Annotated[float, typer.Argument(help="Longitude")],
    accuracy: Annotated[float | None, typer.Option("--accuracy", help="Metres")] = None,
) -> None:
    """Where a point falls, and whether it is inside the home area (as a location check-in would be judged)."""
    rt = runtime(schema=False)
    home = rt.areas.home(rt.policy.location.home_area)
    fix = home.check(lat, lon, accuracy, rt.policy.location.accuracy_credit_m)
    where = rt.areas.where(lat, lon)
    verdict = (
        "inside"
        if fix.inside and not fix.within_accuracy
        else (
            f"inside (within accuracy, {fix.distance_m:.0f} m out)"
            if fix.inside
            else f"outside by {fix.distance_m:,.0f} m"
        )
    )
    out.print(f"{home.key}: {verdict}; in {where.key if where else 'no known area'}")
