"""Areas: loading, point-in-area at the edges, accuracy, destinations, and errors that name what is wrong."""

from __future__ import annotations

import json
import math

import pytest

from bot.settings import SettingsError, load_settings
from content.areas import DEFAULT_AREAS, METRES_PER_DEGREE, AreaError, load_areas, map_link, parse_areas
from content.policy import PolicyError, load_policy
from tests.conftest import clear_env

AREAS = load_areas()
COUNTY = AREAS.home()
# The county's west corner (a vertex) and the middle of its south-west edge, from the file itself.
RING = json.loads(DEFAULT_AREAS.read_text(encoding="utf-8"))["features"][0]["geometry"]["coordinates"][0]
VERTEX = RING[0]  # [lon, lat]
EDGE_MID = [(RING[-2][0] + RING[-3][0]) / 2, (RING[-2][1] + RING[-3][1]) / 2]


def west_of(lon: float, lat: float, metres: float) -> tuple[float, float]:
    """A point `metres` due west of (lon, lat)."""
    return lon - metres / (METRES_PER_DEGREE * math.cos(math.radians(lat))), lat


def test_the_built_in_file_has_the_county_its_townships_and_destinations():
    kinds = {a.key: a.kind for a in AREAS}
    assert kinds["county"] == "county"
    assert sorted(k for k, v in kinds.items() if v == "township") == ["hongguo", "lianghe", "pingguan"]
    assert {"guiyang", "guangzhou"} <= {k for k, v in kinds.items() if v == "destination"}
    township_total = sum(a.geometry.area for a in AREAS if a.kind == "township")
    assert township_total == pytest.approx(COUNTY.geometry.area, rel=0.01)  # the townships tile the county


def test_the_edge_counts_as_inside_and_a_metre_out_does_not():
    lon, lat = VERTEX
    assert COUNTY.check(lat, lon).inside
    assert COUNTY.check(EDGE_MID[1], EDGE_MID[0]).inside
    out_lon, out_lat = west_of(lon, lat, 5)  # the vertex is the westernmost point
    fix = COUNTY.check(out_lat, out_lon)
    assert not fix.inside and fix.distance_m == pytest.approx(5, abs=0.5)


def test_accuracy_gives_the_benefit_of_the_doubt_up_to_the_credit():
    out_lon, out_lat = west_of(*VERTEX, 60)
    assert not COUNTY.check(out_lat, out_lon, accuracy_m=50, credit_m=100).inside
    fix = COUNTY.check(out_lat, out_lon, accuracy_m=80, credit_m=100)
    assert fix.inside and fix.within_accuracy and fix.distance_m == pytest.approx(60, abs=1)
    far_lon, far_lat = west_of(*VERTEX, 300)
    assert not COUNTY.check(far_lat, far_lon, accuracy_m=5000, credit_m=100).inside  # a vague fix earns no more


def test_a_destination_is_a_circle_of_its_radius():
    guiyang = AREAS.get("guiyang")
    lat0, lon0 = 26.58, 106.71
    north = lambda m: lat0 + m / METRES_PER_DEGREE  # noqa: E731
    assert guiyang.check(north(24_900), lon0).inside
    fix = guiyang.check(north(25_200), lon0)
    assert not fix.inside and fix.distance_m == pytest.approx(200, abs=15)
    assert COUNTY.check(lat0, lon0).distance_m > 40_000  # Guiyang is well outside the county


def test_where_prefers_the_township_and_find_knows_names_and_phrases():
    assert AREAS.where(27.10, 106.30).key == "lianghe"
    assert AREAS.where(23.13, 113.26).key == "guangzhou"
    assert AREAS.where(0, 0) is None
    assert AREAS.find("贵阳").key == "guiyang" and AREAS.find("Guangzhou").key == "guangzhou"
    assert AREAS.find("去广州市打工").key == "guangzhou"
    assert AREAS.find("北京") is None and AREAS.find("") is None


def _fc(*features) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def _feature(geometry, **props) -> dict:
    base = {"id": "county", "kind": "county", "name_zh": "县", "name_en": "county"}
    return {"type": "Feature", "properties": {**base, **props}, "geometry": geometry}


SQUARE = {"type": "Polygon", "coordinates": [[[106, 27], [106.1, 27], [106.1, 27.1], [106, 27.1], [106, 27]]]}


@pytest.mark.parametrize("feature, expected", [
    (_feature(SQUARE, id=""), "features[0]: properties.id=''"),
    (_feature(SQUARE, kind="city"), "features[0] (county): properties.kind='city'"),
    (_feature(SQUARE, name_en=None), "properties.name_en=None"),
    (_feature({"type": "Point", "coordinates": [106, 27]}), "properties.radius_m=None: a Point area needs a radius"),
    (_feature({"type": "Polygon", "coordinates": [[[106, 27], [106.1, 27.1], [106.1, 27], [106, 27.1], [106, 27]]]}),
     "not a valid polygon: Self-intersection"),
    (_feature({"type": "Polygon", "coordinates": [[[27, 106], [27.1, 106], [27.1, 106.1], [27, 106]]]}),
     "coordinate [27.0, 106.0] is not [longitude, latitude]"),
    (_feature({"type": "LineString", "coordinates": [[106, 27], [106.1, 27]]}), "geometry.type='LineString'"),
])
def test_a_bad_feature_is_named(feature, expected):
    with pytest.raises(AreaError) as exc:
        parse_areas(_fc(feature), "areas.geojson")
    assert expected in str(exc.value) and str(exc.value).startswith("areas.geojson: ")


def test_a_file_without_a_county_or_with_a_repeated_id_is_refused():
    with pytest.raises(AreaError, match="no feature of kind 'county'"):
        parse_areas(_fc(_feature(SQUARE, kind="township", id="t")))
    with pytest.raises(AreaError, match="id 'county' is used by two features"):
        parse_areas(_fc(_feature(SQUARE), _feature(SQUARE)))


def test_an_administrators_file_through_the_setting(tmp_path, monkeypatch):
    clear_env(monkeypatch)
    good = tmp_path / "areas.geojson"
    good.write_text(json.dumps(_fc(_feature(SQUARE))), encoding="utf-8")
    assert load_areas(str(good)).home().name_en == "county"
    monkeypatch.setenv("CHECKIN_AREAS_FILE", str(good))
    assert load_settings().areas_file == str(good)
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json", encoding="utf-8")
    monkeypatch.setenv("CHECKIN_AREAS_FILE", str(bad))
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert "CHECKIN_AREAS_FILE" in str(exc.value) and "not valid JSON" in str(exc.value)


def test_map_link_and_its_template_in_the_policy(tmp_path):
    assert map_link("https://maps.example/?q={lat},{lon}", 27.1, 106.3) == "https://maps.example/?q=27.10000,106.30000"
    bad = tmp_path / "policy.toml"
    bad.write_text('[location]\nmap_url = "https://maps.example/{place}"\n', encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(bad)
    assert "location.map_url" in str(exc.value) and "{lat} and {lon}" in str(exc.value)


def test_the_areas_commands(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli import app
    clear_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "200"})
    listed = runner.invoke(app, ["areas", "list"])
    assert listed.exit_code == 0 and "lianghe" in listed.output and "7 areas from " in listed.output and "areas.geojson" in listed.output
    where = runner.invoke(app, ["areas", "where", "27.10", "106.30"])
    assert where.output.strip() == "county: inside; in lianghe"
    lon, lat = west_of(*VERTEX, 60)
    where = runner.invoke(app, ["areas", "where", str(lat), str(lon), "--accuracy", "80"])
    assert where.output.strip().startswith("county: inside (within accuracy, 60 m out)")
    assert "outside by 58," in runner.invoke(app, ["areas", "where", "26.58", "106.71"]).output
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(_fc(_feature(SQUARE, kind="town"))), encoding="utf-8")
    failed = runner.invoke(app, ["areas", "list", "--file", str(bad)])
    assert failed.exit_code == 2 and "properties.kind='town'" in failed.output
