"""Matching reports to drive edges on real Porto Alegre streets.

Rua Vicente da Fontoura is one-way (edge 3646 runs south, no reverse edge); Rua São
Francisco de Assis is two-way (edges 4487 north, 2924 south, same OSM way 28621015).
"""

from __future__ import annotations

import numpy as np
import pytest

from crowdsource.errors import ReportRejectedError
from crowdsource.matching import heading_gap_deg, match_report, reverse_edges
from routing.base import CityBase
from routing.streets import StreetNetwork


def _midpoint(drive: StreetNetwork, edge: int) -> tuple[float, float]:
    coords = drive.edge_coords(edge)
    lon, lat = coords.mean(axis=0)
    return float(lat), float(lon)


def _find(drive: StreetNetwork, name: str, way: int) -> list[int]:
    named = np.flatnonzero(
        (np.asarray(drive.names)[drive.name_idx] == name) & (drive.way_id == way)
    )
    return sorted(int(e) for e in named)


def test_the_streets_are_what_the_test_assumes(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    assert 3646 in _find(drive, "Rua Vicente da Fontoura", 356396682)
    assert reverse_edges(drive, 3646) == ()
    assert {2924, 4487} <= set(_find(drive, "Rua São Francisco de Assis", 28621015))
    assert reverse_edges(drive, 2924) == (4487,)
    assert drive.node_lat[drive.head[4487]] > drive.node_lat[drive.tail[4487]]  # northbound


def test_two_way_street_without_heading_gives_both_directions(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    lat, lon = _midpoint(drive, 2924)
    assert match_report(drive, lat, lon, None) == (2924, 4487)


@pytest.mark.parametrize(("heading", "edge"), [(15.0, 4487), (350.0, 4487), (195.0, 2924)])
def test_heading_picks_the_direction(poa_base: CityBase, heading: float, edge: int) -> None:
    drive = poa_base.streets["drive"]
    lat, lon = _midpoint(drive, 2924)
    assert match_report(drive, lat, lon, heading) == (edge,)


def test_one_way_street(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    lat, lon = _midpoint(drive, 3646)
    assert match_report(drive, lat, lon, None) == (3646,)
    assert match_report(drive, lat, lon, 190.0) == (3646,)  # with the traffic (south)
    with pytest.raises(ReportRejectedError, match="runs in the reported heading") as caught:
        match_report(drive, lat, lon, 10.0)  # against a one-way street, nothing else near
    assert caught.value.code == "no_street_nearby"


def test_a_point_a_few_metres_off_the_street_still_matches(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    lat, lon = _midpoint(drive, 3646)
    # 25 m east of the centre line (the street runs roughly north-south)
    assert match_report(drive, lat, lon + 25 / 96_400, None) == (3646,)


def test_far_points_are_refused(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    # the middle of the Guaíba, west of the centre: no street within 60 m
    with pytest.raises(ReportRejectedError, match="no drive street within 60 m") as caught:
        match_report(drive, -30.03, -51.26, None)
    assert caught.value.code == "no_street_nearby"
    lat, lon = _midpoint(drive, 3646)
    with pytest.raises(ReportRejectedError, match="within 5 m"):
        match_report(drive, lat, lon + 25 / 96_400, None, max_m=5)


def test_heading_gap_wraps_around_north() -> None:
    np.testing.assert_allclose(heading_gap_deg(np.array([350.0, 10.0, 180.0]), 5.0), [15, 5, 175])
