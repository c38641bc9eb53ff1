"""Following a live trip by the device's position (with permission), else by the timetable.

Chromium's geolocation is driven by Playwright: a context with the permission granted and a
position, then ``set_geolocation`` moving the device; a context without the permission sees
the request refused. The page says which clock it follows (``#trip-source``).
"""

from __future__ import annotations

from typing import Any

import pytest

from .test_apps import PHONE, Watched, watched_page
from .test_languages import open_page, plan

pytestmark = pytest.mark.browser

# Two points along the first leg of the centre → east trip (the walk to the first stop).
NEAR_START = {"latitude": -30.03455, "longitude": -51.2176}
FURTHER = {"latitude": -30.0342, "longitude": -51.2171}


def start_trip(w: Watched) -> None:
    open_page(w)
    plan(w)
    w.page.click('.start-trip[data-index="0"]')
    w.page.wait_for_selector('#trip[data-state="live"]', timeout=60_000)
    assert w.page.get_attribute("#trip-source", "data-source") == "schedule"
    assert w.page.text_content("#trip-source") == "Following the timetable"


def progress(w: Watched) -> dict[str, Any]:
    found: dict[str, Any] = w.page.evaluate(
        'import("/static/app.js").then((m) => m.trips.progress ?? {})'
    )
    return found


def test_the_trip_follows_the_device_position(chromium: Any, live_server: str) -> None:
    with watched_page(
        chromium,
        live_server,
        PHONE,
        locale="en-GB",
        geolocation=NEAR_START,
        permissions=["geolocation"],
    ) as w:
        start_trip(w)
        page = w.page
        page.click("#trip-follow")
        page.wait_for_selector('#trip-source[data-source="position"]', timeout=20_000)
        assert page.text_content("#trip-source") == "Following your position"
        assert page.get_attribute("#trip-follow", "aria-pressed") == "true"
        where = progress(w)["position"]
        assert (where["lat"], where["lon"]) == (NEAR_START["latitude"], NEAR_START["longitude"])
        assert "following your position" in (page.text_content("#trip-status") or "")
        w.check("trip-follow-position-phone")

        page.context.set_geolocation(FURTHER)  # the traveller walks on
        page.wait_for_function(
            f"""() => import("/static/app.js").then((m) =>
                m.trips.progress?.position?.lat === {FURTHER["latitude"]})""",
            timeout=20_000,
        )
        # the choice is kept with the trip: a reload follows the position again
        assert page.evaluate('JSON.parse(sessionStorage.getItem("correspondance.trip")).follow')
        page.click("#trip-follow")  # stop: no more positions are sent
        assert page.get_attribute("#trip-follow", "aria-pressed") == "false"
        w.problems.assert_none()


def test_a_refused_permission_falls_back_to_the_timetable(chromium: Any, live_server: str) -> None:
    with watched_page(chromium, live_server, PHONE, locale="en-GB") as w:  # no permission
        start_trip(w)
        page = w.page
        page.click("#trip-follow")
        page.wait_for_selector('#trip-source[data-geo="refused"]', timeout=20_000)
        assert page.text_content("#trip-source") == "Position refused: following the timetable"
        assert page.get_attribute("#trip-source", "data-source") == "schedule"
        assert progress(w).get("source", "schedule") == "schedule"
        assert page.get_attribute("#trip-follow", "aria-pressed") == "false"
        w.check("trip-follow-refused-phone")
