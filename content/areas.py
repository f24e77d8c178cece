"""Areas: the county, its townships and known destinations, and where a shared point falls.

The areas are GeoJSON features (Polygon, MultiPolygon, or a Point with a
`radius_m`), in content/areas.geojson unless CHECKIN_AREAS_FILE names an
administrator's file of the same shape. Each feature's properties: `id`,
`kind` (county | township | destination), `name_zh`, `name_en`, optional
`aliases`. Geometry is checked in metres on a local projection centred on each
area (equirectangular: well under 1% error at county and province scale).

Shapely (with numpy, 16 MB) is imported when a geometry is first used, not
when the file is read: a service that never receives a shared point (SMS, voice)
never loads it. Reading checks the properties and the coordinates; whether a
polygon is valid (does not cross itself) is checked when its geometry is built,
which `parse_areas(..., geometry=True)` and `checkin areas check` do at once.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from content.refusals import Refused

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

DEFAULT_AREAS = Path(__file__).with_name("areas.geojson")
KINDS = ("county", "township", "destination")
METRES_PER_DEGREE = 111_320.0
EDGE_TOLERANCE_M = 0.01


class AreaError(Refused):
    """The area file is unreadable or has a bad feature; `render` names feature, field and value."""

    section = "area_file"


@dataclass(frozen=True)
class Fix:
    """Where a point falls relative to one area."""

    inside: bool
    distance_m: float  # 0 inside; else metres to the nearest edge
    within_accuracy: bool = False  # outside, but closer than the device's own accuracy allows to tell


@dataclass(frozen=True, eq=False)
class Area:
    """One named area; its geometry is held in local metres around `origin` (lon, lat), built on first use."""

    key: str
    kind: str
    name_zh: str
    name_en: str
    aliases: tuple[str, ...]
    feature: dict = field(repr=False)  # the GeoJSON geometry as read (structure checked)
    radius_m: float | None = field(default=None, repr=False)  # a Point area's radius
    where: str = field(default="", repr=False)  # how errors name the feature

    def name(self, language: str) -> str:
        return self.name_en if language == "en" else self.name_zh

    @cached_property
    def _shape(self) -> tuple[BaseGeometry, tuple[float, float]]:
        return _build(self.feature, self.radius_m, self.where)

    @property
    def geometry(self) -> BaseGeometry:
        """In local metres (AreaError if the polygon crosses itself)."""
        return self._shape[0]

    @property
    def origin(self) -> tuple[float, float]:
        return self._shape[1]

    def _local(self, lat: float, lon: float):
        from shapely import Point

        lon0, lat0 = self.origin
        return Point((lon - lon0) * METRES_PER_DEGREE * math.cos(math.radians(lat0)),
                     (lat - lat0) * METRES_PER_DEGREE)

    def check(self, lat: float, lon: float, accuracy_m: float | None = None, credit_m: float = 0.0) -> Fix:
        """Inside (the edge counts as inside), or how far outside; a point outside by less than
        its accuracy (capped at `credit_m`) gets the benefit of the doubt."""
        from shapely import covers, distance

        point = self._local(lat, lon)
        if covers(self.geometry, point):
            return Fix(True, 0.0)
        gap = float(distance(self.geometry, point))
        if gap <= EDGE_TOLERANCE_M:  # on the edge, give or take floating-point noise from the projection
            return Fix(True, 0.0)
        allowance = min(accuracy_m or 0.0, credit_m)
        if gap <= allowance:
            return Fix(True, gap, within_accuracy=True)
        return Fix(False, gap)


def _to_local(geom: BaseGeometry, origin: tuple[float, float]) -> BaseGeometry:
    from shapely import affinity

    lon0, lat0 = origin
    kx = METRES_PER_DEGREE * math.cos(math.radians(lat0))
    return affinity.affine_transform(geom, [kx, 0, 0, METRES_PER_DEGREE, -lon0 * kx, -lat0 * METRES_PER_DEGREE])


def _build(feature: dict, radius_m: float | None, where: str) -> tuple[BaseGeometry, tuple[float, float]]:
    """The geometry in local metres, and its origin; AreaError for a polygon that is not valid."""
    from shapely import prepare
    from shapely.geometry import shape
    from shapely.validation import explain_validity

    geom = shape(feature)
    if geom.geom_type == "Point":
        origin = (geom.x, geom.y)
        local = _to_local(geom, origin).buffer(float(radius_m), 64)
    else:
        if not geom.is_valid:
            raise AreaError("invalid_polygon", where=where, why=explain_validity(geom))
        c = geom.centroid
        origin = (c.x, c.y)
        local = _to_local(geom, origin)
    prepare(local)
    return local, origin


def _position(value: object, where: str) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value[:2])):
        raise AreaError("not_position", where=where, value=repr(value))
    lon, lat = float(value[0]), float(value[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise AreaError("bad_coordinate", where=where, lon=lon, lat=lat)
    return lon, lat


def _polygon(rings: object, where: str) -> None:
    if not isinstance(rings, list) or not rings:
        raise AreaError("no_rings", where=where)
    for ring in rings:
        if not isinstance(ring, list) or len(ring) < 4:
            raise AreaError("short_ring", where=where)
        points = [_position(v, where) for v in ring]
        if points[0] != points[-1]:
            raise AreaError("open_ring", where=where)


def _area(index: int, feature: object) -> Area:
    where = f"features[{index}]"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise AreaError("not_feature", where=where)
    props = feature.get("properties") or {}
    key = props.get("id")
    if not isinstance(key, str) or not key.strip():
        raise AreaError("bad_id", where=where, value=repr(key))
    where = f"features[{index}] ({key})"
    kind = props.get("kind")
    if kind not in KINDS:
        raise AreaError("bad_kind", where=where, value=repr(kind), kinds=", ".join(KINDS))
    for name in ("name_zh", "name_en"):
        if not isinstance(props.get(name), str) or not props[name].strip():
            raise AreaError("no_name", where=where, field=name, value=repr(props.get(name)))
    aliases = props.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise AreaError("bad_aliases", where=where, value=repr(aliases))
    geometry = feature.get("geometry")
    kind_of = geometry.get("type") if isinstance(geometry, dict) else None
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    radius = None
    if kind_of == "Point":
        _position(coordinates, where)
        radius = props.get("radius_m")
        if not isinstance(radius, (int, float)) or radius <= 0:
            raise AreaError("no_radius", where=where, value=repr(radius))
    elif kind_of == "Polygon":
        _polygon(coordinates, where)
    elif kind_of == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise AreaError("no_polygons", where=where)
        for part in coordinates:
            _polygon(part, where)
    else:
        raise AreaError("bad_type", where=where, value=repr(kind_of))
    return Area(key.strip(), kind, props["name_zh"].strip(), props["name_en"].strip(),
                tuple(a.strip() for a in aliases if a.strip()), geometry, radius, where)


class Areas:
    """The areas of one file, by id."""

    def __init__(self, areas: list[Area], source: str = "") -> None:
        self.source = source
        self.by_key: dict[str, Area] = {}
        for a in areas:
            if a.key in self.by_key:
                raise AreaError("duplicate_id", where=source, id=repr(a.key))
            self.by_key[a.key] = a
        if not any(a.kind == "county" for a in areas):
            raise AreaError("no_county", where=source)

    def __iter__(self):
        return iter(self.by_key.values())

    def get(self, key: str | None) -> Area | None:
        return self.by_key.get(key) if key else None

    def home(self, key: str | None = None) -> Area:
        """The area people must stay in: `key` when given and known, else the (first) county."""
        return self.by_key.get(key or "") or next(a for a in self if a.kind == "county")

    def find(self, name: str) -> Area | None:
        """The area a person's words name (id, either name, or an alias; case-insensitive), or None."""
        wanted = name.strip().casefold()
        if not wanted:
            return None
        for a in self:
            if wanted in {a.key.casefold(), a.name_zh.casefold(), a.name_en.casefold(),
                          *(x.casefold() for x in a.aliases)}:
                return a
        words = set(re.findall(r"[a-z]+", wanted))
        for a in self:  # "去贵阳市打工" names 贵阳市; "Guangzhou, for work" names Guangzhou
            if a.kind == "county":
                continue
            for n in (a.name_zh, a.name_en, *a.aliases):
                n = n.casefold()
                if (n in words) if n.isascii() else (len(n) >= 2 and n in wanted):
                    return a
        return None

    def where(self, lat: float, lon: float) -> Area | None:
        """The smallest area holding the point (a township before the county), or None."""
        holding = [a for a in self if a.check(lat, lon).inside]
        return min(holding, key=lambda a: a.geometry.area, default=None)


def parse_areas(data: object, source: str = "areas", geometry: bool = True) -> Areas:
    """The areas of a GeoJSON FeatureCollection; `geometry` builds (and so checks) every polygon now."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise AreaError("not_collection", where=source)
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise AreaError("no_features", where=source)
    try:
        areas = [_area(i, f) for i, f in enumerate(features)]
        if geometry:
            for a in areas:
                a.geometry  # noqa: B018 - built for its check
    except AreaError as exc:
        raise AreaError("in_source", cause=exc, where=source) from None
    return Areas(areas, source)


@lru_cache(maxsize=8)
def load_areas(path: str | Path | None = None, geometry: bool = True) -> Areas:
    """The built-in areas, or those of the file at `path`; `geometry=False` leaves the shapes to first use."""
    source = Path(path) if path else DEFAULT_AREAS
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AreaError("unreadable", path=source, error=exc.strerror) from None
    except ValueError as exc:
        raise AreaError("not_json", path=source, error=exc) from None
    return parse_areas(data, str(source), geometry)


def map_link(template: str, lat: float, lon: float) -> str:
    """A map link for a point, from the policy's template."""
    return template.format(lat=f"{lat:.5f}", lon=f"{lon:.5f}")
