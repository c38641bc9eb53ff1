"""Fixtures for the routing tests: the Oslo base, Oslo Bysykkel from its real GBFS files,
and a check that an itinerary's legs chain in time and place."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from correspondance.cities import CityConfig
from correspondance.settings import REPO_ROOT
from feeds.gbfs import parse_station_information, parse_station_status
from routing.base import CityBase, load_or_build
from routing.overlay import SharedStation, SharedSystem
from routing.plan import Itinerary

CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))
OSLO_GBFS = REPO_ROOT / "data" / "oslo" / "gbfs"
# 2022-10-24 00:18:34 UTC: the first of the 58 bundled station_status snapshots.
OSLO_STATUS_SNAPSHOT = "1666570714.json"
BYSYKKEL = SharedSystem("oslo-bysykkel", "Oslo Bysykkel", "bicycle", free_floating_return=False)


@pytest.fixture(scope="session")
def oslo_base(cities: dict[str, CityConfig]) -> CityBase:
    """The Oslo base, from the build cache (built on first use, ~50 s)."""
    base, _ = load_or_build(cities["oslo"], CACHE_DIR)
    return base


@pytest.fixture(scope="session")
def bysykkel_stations() -> tuple[SharedStation, ...]:
    """Oslo Bysykkel's installed stations with the availability of one real snapshot."""
    info = parse_station_information((OSLO_GBFS / "station_information.json").read_bytes())
    status = parse_station_status(
        (OSLO_GBFS / "station_status" / OSLO_STATUS_SNAPSHOT).read_bytes()
    )
    assert info.rejected == 0
    assert status.rejected == 0
    by_id = {s.station_id: s for s in status.records}
    # Oslo Bysykkel docks are real: every station reports its free docks
    assert all(s.num_docks_available is not None for s in status.records)
    return tuple(
        SharedStation(
            system_id=BYSYKKEL.system_id,
            station_id=i.station_id,
            name=i.name,
            lat=i.lat,
            lon=i.lon,
            form_factor="bicycle",
            vehicles_available=by_id[i.station_id].num_vehicles_available,
            docks_available=by_id[i.station_id].num_docks_available or 0,
            is_renting=by_id[i.station_id].is_renting,
            is_returning=by_id[i.station_id].is_returning,
        )
        for i in info.records
        if i.station_id in by_id and by_id[i.station_id].is_installed
    )


def assert_legs_chain(itinerary: Itinerary) -> None:
    """Each leg ends no earlier than it starts; the next starts where and when it ended."""
    assert itinerary.legs, "an itinerary without legs"
    for leg in itinerary.legs:
        assert leg.arrival >= leg.departure, (leg.mode, leg.departure, leg.arrival)
        assert leg.departure.tzinfo is not None
        assert leg.distance_m >= 0
    for prev, leg in zip(itinerary.legs, itinerary.legs[1:], strict=False):
        assert leg.departure >= prev.arrival, (prev.mode, prev.arrival, leg.mode, leg.departure)
        assert (leg.origin.lat, leg.origin.lon) == pytest.approx(
            (prev.destination.lat, prev.destination.lon), abs=1e-9
        )
        assert leg.origin.name == prev.destination.name


@pytest.fixture(scope="session")
def legs_chain() -> Callable[[Itinerary], None]:
    """:func:`assert_legs_chain`, for test modules (conftest is not imported directly)."""
    return assert_legs_chain
