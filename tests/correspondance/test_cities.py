"""City bundles: the two bundled cities, lookup by id, and every way a config can be wrong."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from correspondance.cities import CityConfig, discover_cities, get_city, load_city
from correspondance.errors import ConfigError, UnknownCityError
from correspondance.settings import REPO_ROOT

DATA_DIR = REPO_ROOT / "data"

VALID_TOML = """\
id = "testville"
name = "Testville"
timezone = "America/Sao_Paulo"
bbox = [-51.3, -30.2, -51.1, -29.9]
default_date = 2019-05-15

[osm]
path = "streets.osm.pbf"

[[gtfs]]
id = "buses"
path = "buses.zip"
"""


def write_city(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "city.toml").write_text(text, encoding="utf-8")
    return folder


def test_both_bundled_cities_load() -> None:
    cities = discover_cities(DATA_DIR)
    assert sorted(cities) == ["oslo", "porto-alegre"]
    poa, oslo = cities["porto-alegre"], cities["oslo"]
    assert poa.name == "Porto Alegre"
    assert poa.timezone == "America/Sao_Paulo"
    assert poa.default is True
    assert oslo.default is False
    assert poa.default_date == dt.date(2019, 5, 15)
    assert poa.default_time == dt.time(13, 0)
    assert oslo.default_time == dt.time(8, 0)
    assert [g.id for g in poa.gtfs] == ["eptc", "trensurb"]
    assert [g.id for g in oslo.gtfs] == ["flybussekspressen", "flytoget"]
    assert [g.id for g in oslo.gbfs] == ["oslo-bysykkel", "oslo-cars-sim"]
    assert [g.simulated for g in oslo.gbfs] == [False, True]  # the real feed is not labelled
    assert all(g.simulated for g in poa.gbfs)  # Porto Alegre has no real shared mobility
    assert poa.folder == DATA_DIR / "porto-alegre"
    # every file a bundled config names exists
    for city in cities.values():
        assert city.resolve(city.osm.path).is_file()
        for feed in city.gtfs:
            assert feed.path is not None
            assert city.resolve(feed.path).is_file()


def test_bbox_contains_and_center() -> None:
    poa = load_city(DATA_DIR / "porto-alegre")
    assert poa.bbox == (-51.2664, -30.1134, -51.1321, -29.9876)
    assert poa.contains(-30.0277, -51.2287)  # Mercado Público
    assert poa.contains(-30.1134, -51.2664)  # the corner itself is inside
    assert not poa.contains(-29.9000, -51.2287)  # north of the box
    assert not poa.contains(-30.0277, -51.1000)  # east of the box
    assert not poa.contains(-51.2287, -30.0277)  # lat/lon swapped
    lat, lon = poa.center
    assert lat == pytest.approx(-30.0505)
    assert lon == pytest.approx(-51.19925)
    assert str(poa.tz) == "America/Sao_Paulo"


def test_get_city_by_id_and_default() -> None:
    cities = discover_cities(DATA_DIR)
    assert get_city(cities, "oslo").id == "oslo"
    assert get_city(cities, None).id == "porto-alegre"  # the one marked default
    # without a city marked default, the first one is the default
    no_default = {"oslo": cities["oslo"]}
    assert get_city(no_default, None).id == "oslo"


def test_get_city_unknown_lists_the_known_cities() -> None:
    cities = discover_cities(DATA_DIR)
    with pytest.raises(
        UnknownCityError, match=r"unknown city 'atlantis'; known cities: oslo, porto-alegre$"
    ) as caught:
        get_city(cities, "atlantis")
    assert caught.value.code == "unknown_city"
    with pytest.raises(UnknownCityError, match="no city is configured"):
        get_city({}, None)


def test_a_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    city = load_city(write_city(tmp_path / "testville", VALID_TOML))
    assert city.id == "testville"
    assert city.default is False
    assert city.default_time == dt.time(8, 0)
    assert city.gbfs == []
    assert city.resolve("buses.zip") == (tmp_path / "testville" / "buses.zip").resolve()


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('timezone = "America/Sao_Paulo"', 'timezone = "Mars/Olympus"', "unknown timezone"),
        (
            "bbox = [-51.3, -30.2, -51.1, -29.9]",
            "bbox = [-51.1, -30.2, -51.3, -29.9]",
            "bbox: Value error, bbox must be min_lon, min_lat, max_lon, max_lat with min < max",
        ),
        (
            "bbox = [-51.3, -30.2, -51.1, -29.9]",
            "bbox = [-51.3, -29.9, -51.1, -30.2]",
            "bbox must be min_lon, min_lat, max_lon, max_lat with min < max",
        ),
        (
            'path = "buses.zip"',
            'path = "buses.zip"\nurl = "https://example.org/buses.zip"',
            "gtfs.0: Value error, feed 'buses' needs exactly one of 'path', 'url' or 'simulate'",
        ),
        (
            'path = "buses.zip"',
            "",
            "feed 'buses' needs exactly one of 'path', 'url' or 'simulate'",
        ),
        ('name = "Testville"', 'name = "Testville"\ncolour = "blue"', "colour: Extra inputs"),
        ('[osm]\npath = "streets.osm.pbf"', '[osm]\npath = "x"\nformat = "pbf"', "osm.format"),
        ('id = "testville"', 'id = "Test Ville"', "id: String should match pattern"),
        ('name = "Testville"\n', "", "name: Field required"),
        ("default_date = 2019-05-15", 'default_date = "someday"', "default_date: Input should"),
    ],
)
def test_an_invalid_config_is_a_config_error_naming_the_problem(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    assert old in VALID_TOML
    folder = write_city(tmp_path / "testville", VALID_TOML.replace(old, new))
    config = re.escape(str(folder / "city.toml"))
    with pytest.raises(
        ConfigError, match=rf"^{config}: invalid city config: .*{re.escape(problem)}"
    ):
        load_city(folder)


def test_every_problem_of_a_config_is_listed(tmp_path: Path) -> None:
    text = VALID_TOML.replace('"America/Sao_Paulo"', '"Nowhere/City"').replace(
        "[-51.3, -30.2, -51.1, -29.9]", "[0, 0, 0, 0]"
    )
    with pytest.raises(ConfigError, match=r"timezone: .*unknown timezone.*; bbox: .*min < max"):
        load_city(write_city(tmp_path / "testville", text))


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(tmp_path / 'city.toml'))}: city config file not found"
    ):
        load_city(tmp_path)


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    folder = write_city(tmp_path / "testville", VALID_TOML + "\nthis is = not = toml\n")
    with pytest.raises(ConfigError, match=r"city\.toml: not valid TOML: .*line 14"):
        load_city(folder)


def test_a_duplicate_city_id_skips_the_later_folder_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_city(tmp_path / "a-first", VALID_TOML)
    write_city(tmp_path / "b-second", VALID_TOML)
    cities = discover_cities(tmp_path)
    assert list(cities) == ["testville"]
    assert cities["testville"].folder == (tmp_path / "a-first").resolve()
    assert list(cities.broken) == ["b-second"]
    assert re.search(
        rf"city id 'testville' declared twice \({re.escape(str(tmp_path / 'b-second'))}",
        str(cities.broken["b-second"]),
    )
    assert "city 'b-second' skipped: city id 'testville' declared twice" in caplog.text


def test_a_broken_config_skips_that_city_only_and_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_city(tmp_path / "good", VALID_TOML)
    write_city(tmp_path / "bad", VALID_TOML.replace("America/Sao_Paulo", "Nowhere/City"))
    (tmp_path / "worse").mkdir()
    (tmp_path / "worse" / "city.toml").write_text("id = [unclosed", encoding="utf-8")
    cities = discover_cities(tmp_path)
    assert list(cities) == ["testville"]
    assert sorted(cities.broken) == ["bad", "worse"]
    assert "city 'bad' skipped: " in caplog.text
    assert "bad/city.toml: invalid city config" in caplog.text
    assert "worse/city.toml: not valid TOML" in caplog.text
    # the good city is still the default; asking for a broken one by name gives its problem
    assert get_city(cities, None).id == "testville"
    with pytest.raises(ConfigError, match=r"bad/city\.toml: invalid city config: timezone"):
        get_city(cities, "bad")
    with pytest.raises(UnknownCityError, match="known cities: testville"):
        get_city(cities, "atlantis")


def test_only_broken_configs_is_the_first_problem(tmp_path: Path) -> None:
    write_city(tmp_path / "bad", VALID_TOML.replace("America/Sao_Paulo", "Nowhere/City"))
    with pytest.raises(ConfigError, match=r"bad/city\.toml: invalid city config"):
        get_city(discover_cities(tmp_path), None)


def test_a_folder_without_city_toml_is_not_a_city(tmp_path: Path) -> None:
    write_city(tmp_path / "testville", VALID_TOML)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a city", encoding="utf-8")
    assert list(discover_cities(tmp_path)) == ["testville"]
    assert discover_cities(tmp_path / "empty-nonexistent") == {}


def test_city_config_is_frozen() -> None:
    city = load_city(DATA_DIR / "porto-alegre")
    with pytest.raises(ValueError, match="frozen"):
        city.name = "Other"  # type: ignore[misc]
    assert isinstance(city, CityConfig)
