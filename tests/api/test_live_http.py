"""Live state through the HTTP API: feed health and simulated shared mobility, labelled."""

from __future__ import annotations

import httpx

CENTRE = "-30.0346,-51.2177"
EAST = "-30.0277,-51.1793"


def test_feeds_endpoint_reports_each_feed_and_labels_simulators(api_url: str) -> None:
    body = httpx.get(f"{api_url}/api/v1/feeds", timeout=10).json()
    assert body["city"] == "porto-alegre"
    feeds = {f["feed_id"]: f for f in body["feeds"]}
    assert set(feeds) == {"poa-bikes-sim", "poa-cars-sim", "eptc-rt-sim"}
    for feed in feeds.values():
        assert feed["simulated"] is True
        assert feed["status"] == "ok", feed
        assert feed["records"] > 0
        assert feed["records_rejected"] == 0
        assert feed["staleness_s"] is not None
    assert body["overlay_version"] >= 2
    # the static feeds' tolerated faults, named as the MobilityData validator names them
    assert {
        "code": "missing_recommended_file",
        "feed_id": "trensurb",
        "filename": "feed_info.txt",
        "count": 1,
        "detail": "the file is absent",
    } in body["gtfs_notices"]


def test_plan_with_shared_modes_labels_simulated_legs(api_url: str) -> None:
    response = httpx.get(
        f"{api_url}/api/v1/plan",
        params={
            "from": CENTRE,
            "to": EAST,
            "depart": "2019-05-15T13:00:00",
            "modes": "walk,transit,carshare,bikeshare",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    shared = [
        leg
        for it in response.json()["itineraries"]
        for leg in it["legs"]
        if leg["mode"] in ("carshare", "bikeshare")
    ]
    assert shared
    for leg in shared:
        assert leg["simulated"] is True
        assert leg["system_id"] in ("poa-bikes-sim", "poa-cars-sim")


def test_unknown_mode_is_refused_with_the_list_of_modes(api_url: str) -> None:
    response = httpx.get(
        f"{api_url}/api/v1/plan",
        params={"from": CENTRE, "to": EAST, "modes": "walk,hoverboard"},
        timeout=10,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert "hoverboard" in error["message"]
    assert "bikeshare" in error["message"]
