"""What a transit leg of GET /api/v1/plan says, checked against the GTFS it comes from:
where the vehicle goes (headsign, or its last stop as ``direction``), how many stops the ride
passes, and the route's colours."""

from __future__ import annotations

import csv
import io
import zipfile
from functools import cache

import httpx

from correspondance.settings import REPO_ROOT

EPTC = REPO_ROOT / "data" / "porto-alegre" / "poa_eptc.zip"
CENTRE = "-30.0346,-51.2177"
EAST = "-30.0277,-51.1793"
DEPART = "2019-05-15T13:00:00"


@cache
def gtfs(name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(EPTC) as z:
        return list(csv.DictReader(io.TextIOWrapper(z.open(name), encoding="utf-8-sig")))


def transit_legs(api_url: str) -> list[dict[str, object]]:
    body = httpx.get(
        f"{api_url}/api/v1/plan",
        params={"from": CENTRE, "to": EAST, "depart": DEPART},
        timeout=60,
    ).json()
    legs = [leg for it in body["itineraries"] for leg in it["legs"] if leg.get("trip_id")]
    assert legs, body
    return legs


def test_transit_legs_say_where_they_go_and_how_many_stops(api_url: str) -> None:
    names = {row["stop_id"]: row["stop_name"] for row in gtfs("stops.txt")}
    checked = 0
    for leg in transit_legs(api_url):
        rows = sorted(
            (r for r in gtfs("stop_times.txt") if r["trip_id"] == leg["trip_id"]),
            key=lambda r: int(r["stop_sequence"]),
        )
        if not rows:  # a Trensurb train: another feed
            continue
        assert leg["direction"] == names[rows[-1]["stop_id"]].strip()
        board, alight = leg["board_index"], leg["alight_index"]
        assert isinstance(board, int)
        assert isinstance(alight, int)
        assert rows[board]["stop_id"] == leg["from"]["stop_id"]  # type: ignore[index]
        assert rows[alight]["stop_id"] == leg["to"]["stop_id"]  # type: ignore[index]
        assert leg["intermediate_stops"] == alight - board - 1
        # drawn along shapes.txt between the two stops: at least one point per stop passed
        assert len(leg["geometry"]["coordinates"]) >= alight - board + 1  # type: ignore[index]
        checked += 1
    assert checked >= 1


def test_transit_legs_carry_the_route_colours_of_the_feed(api_url: str) -> None:
    routes = {row["route_id"]: row for row in gtfs("routes.txt")}
    for leg in transit_legs(api_url):
        route = routes.get(str(leg["route_id"]))
        if route is None:
            continue
        assert leg["route_color"] == route["route_color"]
        # EPTC writes route_text_color "0": not a colour, so none is sent
        assert route["route_text_color"] == "0"
        assert leg["route_text_color"] is None


def test_gtfs_colours_are_six_hex_digits_or_none() -> None:
    from routing.codec import _hex_colour

    assert _hex_colour("ff0000") == "FF0000"
    assert _hex_colour("#05d600") == "05D600"
    for none in ("0", "", None, "FFF", "GG0000", "FF00001"):
        assert _hex_colour(none) is None, none
