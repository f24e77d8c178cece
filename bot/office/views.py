"""What a person's page draws: the month's check-ins as a calendar, and the shared points on a map of the
county's areas (from the areas file: no tiles, nothing fetched from outside)."""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import TYPE_CHECKING

from content.areas import METRES_PER_DEGREE, Area, Areas

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

MAP_WIDTH, MAP_HEIGHT = 640, 420


@dataclass(frozen=True)
class Day:
    day: int | None  # None: a blank before the 1st or after the last
    state: str | None  # the check-in's outcome (done, late, missed, excused, partial, planned ...), if one was due
    today: bool = False


def month_calendar(year: int, month: int, states: dict[int, str], today: date) -> list[list[Day]]:
    """Weeks (Monday first) of the month, each day with its check-in's outcome."""
    weeks = []
    for week in calendar.Calendar(firstweekday=0).monthdayscalendar(year, month):
        weeks.append([Day(d or None, states.get(d) if d else None, d != 0 and date(year, month, d) == today)
                      for d in week])
    return weeks


def _degrees(area: Area, x: float, y: float) -> tuple[float, float]:
    """A point of an area back in (lon, lat): areas are held in local metres around their own origin."""
    lon0, lat0 = area.origin
    return x / (METRES_PER_DEGREE * math.cos(math.radians(lat0))) + lon0, y / METRES_PER_DEGREE + lat0


def _lonlat(area: Area, geom: BaseGeometry):
    """An area's outer rings in (lon, lat)."""
    for poly in getattr(geom, "geoms", [geom]):
        if poly.geom_type == "Polygon":
            yield [_degrees(area, x, y) for x, y in poly.exterior.coords]


@dataclass(frozen=True)
class Spot:
    latitude: float
    longitude: float
    inside: bool | None
    label: str


def area_map(areas: Areas, spots: list[Spot], lang: str, home: str | None = None) -> tuple[str, list[Spot]]:
    """An SVG of the county and its townships with the spots drawn on it; and the spots too far away to draw
    (another city: listed under the map instead of shrinking the county to a dot)."""
    shapes = [(a, ring) for a in areas if a.kind in ("county", "township") for ring in _lonlat(a, a.geometry)]
    if not shapes:
        return "", spots
    lons = [lon for _, ring in shapes for lon, _ in ring]
    lats = [lat for _, ring in shapes for _, lat in ring]
    west, east, south, north = min(lons), max(lons), min(lats), max(lats)
    pad_x, pad_y = (east - west) * 0.15 or 0.01, (north - south) * 0.15 or 0.01
    west, east, south, north = west - pad_x, east + pad_x, south - pad_y, north + pad_y
    kx = math.cos(math.radians((north + south) / 2))  # keep the county's shape (equirectangular)
    scale = min(MAP_WIDTH / ((east - west) * kx), MAP_HEIGHT / (north - south))

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return (lon - west) * kx * scale, (north - lat) * scale

    width, height = (east - west) * kx * scale, (north - south) * scale
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
             f'class="map" aria-label="{escape(areas.home(home).name(lang) if home else "")}">']
    for area, ring in shapes:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(lon, lat) for lon, lat in ring))
        parts.append(f'<polygon class="{area.kind}{" home" if area.key == home else ""}" points="{points}">'
                     f"<title>{escape(area.name(lang))}</title></polygon>")
    for area in areas:
        if area.kind == "township":
            centre = area.geometry.centroid
            x, y = xy(*_degrees(area, centre.x, centre.y))
            parts.append(f'<text x="{x:.1f}" y="{y:.1f}" class="label">{escape(area.name(lang))}</text>')
    far = []
    for spot in spots:
        if not (west <= spot.longitude <= east and south <= spot.latitude <= north):
            far.append(spot)
            continue
        x, y = xy(spot.longitude, spot.latitude)
        kind = "unchecked" if spot.inside is None else ("inside" if spot.inside else "outside")
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" class="spot {kind}"><title>{escape(spot.label)}'
                     f"</title></circle>")
    parts.append("</svg>")
    return "".join(parts), far
