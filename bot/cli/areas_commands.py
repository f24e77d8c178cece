"""`checkin areas ...`: the county's areas for location check-ins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.base import areas_app, fail, office_language, out, runtime, say
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
            fail(exc.render(office_language()), 2)
    else:
        found = runtime(schema=False).areas
    columns = [Column(say("areas.col_id"), key=True), Column(say("areas.col_kind"), key=True),
               Column(say("areas.col_name_zh")), Column(say("areas.col_name_en")),
               Column("km²", justify="right"), Column(say("areas.col_aliases"), wrap=True)]
    rows = [[a.key, a.kind, a.name_zh, a.name_en, f"{a.geometry.area / 1e6:,.0f}", ", ".join(a.aliases)] for a in found]
    out.print(fitted(columns, rows, width=out.width, lang=office_language()))
    out.print(say("areas.listed", count=len(list(found)), source=found.source), markup=False)


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
    if fix.inside and not fix.within_accuracy:
        verdict = say("areas.inside")
    elif fix.inside:
        verdict = say("areas.within_accuracy", metres=f"{fix.distance_m:.0f}")
    else:
        verdict = say("areas.outside", metres=f"{fix.distance_m:,.0f}")
    out.print(say("areas.where", home=home.key, verdict=verdict, area=where.key if where else say("areas.unknown")),
              markup=False)
