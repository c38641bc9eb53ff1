"""The one itinerary codec (routing/codec.py): what it encodes decodes back to the model,
and the compact form of ``correspondance plan`` keeps exact durations across a DST change."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from routing.codec import (
    ItineraryOut,
    compact_answer,
    compact_json,
    decode_itinerary,
    itinerary_json,
)
from routing.itinerary import Itinerary, Leg, Place

POA_TZ = ZoneInfo("America/Sao_Paulo")
OSLO_TZ = ZoneInfo("Europe/Oslo")


def _itinerary() -> Itinerary:
    start = dt.datetime(2019, 5, 15, 8, 0, 20, tzinfo=POA_TZ)
    origin = Place("Origin", -30.0277, -51.2287)
    stop_a = Place("Terminal Parobé", -30.0285, -51.2279, stop_id="4160")
    stop_b = Place("Av. Ipiranga", -30.0346, -51.2177, stop_id="1791")
    walk = Leg(
        "walk",
        origin,
        stop_a,
        start,
        start + dt.timedelta(seconds=95),
        123.4,
        [(-51.2287, -30.0277), (-51.2279, -30.0285)],
    )
    ride = Leg(
        "bus",
        stop_a,
        stop_b,
        start + dt.timedelta(seconds=300),
        start + dt.timedelta(seconds=1020),
        2345.6,
        [(-51.2279, -30.0285), (-51.2200, -30.0300), (-51.2177, -30.0346)],
        route_id="T7",
        route_short_name="T7",
        route_long_name="Circular",
        route_color="FF0000",
        route_text_color="FFFFFF",
        trip_id="T7-0800",
        headsign="Centro",
        direction="Av. Ipiranga",
        agency_name="EPTC",
        intermediate_stops=4,
        board_index=2,
        alight_index=7,
    )
    return Itinerary(legs=[walk, ride], transfers=0)


def test_what_is_encoded_decodes_back_to_the_same_itinerary() -> None:
    it = _itinerary()
    data = json.loads(json.dumps(itinerary_json(it)))  # through real JSON text
    assert data["duration_s"] == 17 * 60  # the shown clocks 08:00 → 08:17
    assert data["legs"][0]["duration_s"] == 95  # legs keep exact seconds
    assert decode_itinerary(data) == it


def test_the_api_model_and_the_plain_functions_agree() -> None:
    it = _itinerary()
    out = ItineraryOut.of(it)
    assert out.model_dump(mode="json", by_alias=True) == itinerary_json(it)
    assert out.to_itinerary() == it


def test_decoding_refuses_what_is_not_an_itinerary() -> None:
    data = itinerary_json(_itinerary())
    data["legs"][1]["departure"] = "not a time"
    with pytest.raises(ValidationError):
        decode_itinerary(data)


def test_compact_form_keeps_exact_seconds_across_a_dst_change() -> None:
    # Oslo moves its clocks from 02:00 to 03:00 on 2019-03-31: 01:50 → 03:10 is 20 minutes
    leave = dt.datetime(2019, 3, 31, 1, 50, tzinfo=OSLO_TZ)
    arrive = dt.datetime.fromtimestamp(leave.timestamp() + 1200, OSLO_TZ)
    a, b = Place("A", 59.91, 10.75, stop_id="a"), Place("B", 59.92, 10.76, stop_id="b")
    leg = Leg("walk", a, b, leave, arrive, 1500.0, [(10.75, 59.91), (10.76, 59.92)])
    got = compact_json(Itinerary(legs=[leg], transfers=0))
    assert got["duration_s"] == 1200
    assert got["departure"] == "2019-03-31T01:50:00+01:00"
    assert got["arrival"] == "2019-03-31T03:10:00+02:00"
    assert got["legs"] == [
        {
            "mode": "walk",
            "from": {"stop_id": "a", "name": "A", "lat": 59.91, "lon": 10.75},
            "to": {"stop_id": "b", "name": "B", "lat": 59.92, "lon": 10.76},
            "departure": "2019-03-31T01:50:00+01:00",
            "arrival": "2019-03-31T03:10:00+02:00",
            "route_id": None,
            "trip_id": None,
            "route_short_name": None,
            "headsign": None,
        }
    ]


def test_an_itinerary_without_legs_is_already_there_at_its_time() -> None:
    at = dt.datetime(2010, 3, 10, 9, 30, tzinfo=ZoneInfo("America/Los_Angeles"))
    got = compact_answer([Itinerary(legs=[], transfers=0, at=at)])
    assert got == {
        "itineraries": [
            {
                "departure": "2010-03-10T09:30:00-08:00",
                "arrival": "2010-03-10T09:30:00-08:00",
                "duration_s": 0,
                "transfers": 0,
                "legs": [],
            }
        ]
    }
    with pytest.raises(AssertionError):
        _ = Itinerary(legs=[], transfers=0).departure
