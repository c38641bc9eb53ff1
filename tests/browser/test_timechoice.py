"""Time choices in the commuter page (issue 14): "Arrive by", "Leave now", and the
"Earlier" / "Later" buttons that follow the API's page cursors, at phone and desktop sizes,
in headless Debian Chromium against the real server. Every step ends with the quality bar
(screenshot kept, axe-core without serious or critical violations, no console problem, no
request leaving the server)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from .test_apps import DESKTOP, PHONE, Watched, watched_page

pytestmark = pytest.mark.browser

ORIGIN = "-30.0346,-51.2177"
DESTINATION = "-30.0277,-51.1793"
PLAN_TIMEOUT_MS = 120_000


def _is_plan(url: str) -> bool:
    return urlparse(url).path == "/api/v1/plan"


def _plan(w: Watched, click: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Click, wait for the plan answer and the list: (query sent, body received)."""
    page = w.page
    with page.expect_response(lambda r: _is_plan(r.url), timeout=PLAN_TIMEOUT_MS) as answer:
        page.click(click)
    response = answer.value
    assert response.status == 200, response.text()
    page.wait_for_selector('#itineraries[data-state="planned"]', timeout=PLAN_TIMEOUT_MS)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    return parse_qs(urlparse(response.url).query), response.json()


def _transit(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [it for it in body["itineraries"] if any(leg.get("trip_id") for leg in it["legs"])]


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(("size", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_arrive_by_then_earlier_and_later(
    chromium: Any, live_server: str, size: str, viewport: dict[str, int]
) -> None:
    with watched_page(chromium, live_server, viewport) as w:
        page = w.page
        page.goto("/")
        page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
        page.wait_for_selector("#time-arrive")
        assert page.locator("#time-choice legend").inner_text() == "When"
        page.fill("#from", ORIGIN)
        page.fill("#to", DESTINATION)

        # Arrive by 14:00: the label says so, the API is asked arrive=, every option makes it
        page.locator("label.time-option", has_text="Arrive by").click()
        assert page.locator('label[for="depart"]').inner_text() == "Arrive by"
        page.fill("#depart", "2019-05-15T14:00")
        query, body = _plan(w, "#plan")
        assert query["arrive"] == ["2019-05-15T14:00:00"]
        assert "depart" not in query
        deadline = _at(body["arrive"])
        assert _transit(body)
        assert all(_at(it["arrival"]) <= deadline for it in body["itineraries"])
        assert page.locator("#pager").is_visible()
        w.check(f"timechoice-arrive-{size}")

        # Later: the cursor, and departures after the last one shown
        later_from = max(_at(it["departure"]) for it in _transit(body))
        query, later = _plan(w, "#pager .page-later")
        assert set(query) >= {"cursor", "from", "to"}
        assert "arrive" not in query
        assert "depart" not in query
        assert min(_at(it["departure"]) for it in _transit(later)) > later_from
        shown = page.locator("#itineraries .it-times").first.inner_text()
        first = min(_transit(later), key=lambda it: it["arrival"])
        assert shown.split(" → ")[0] in {
            _at(it["departure"]).strftime("%H:%M") for it in later["itineraries"]
        }, (shown, first["departure"])
        w.check(f"timechoice-later-{size}")

        # Earlier, from that page: everything arrives before its first arrival
        before = min(_at(it["arrival"]) for it in _transit(later))
        query, earlier = _plan(w, "#pager .page-earlier")
        assert "cursor" in query
        assert _transit(earlier)
        assert max(_at(it["arrival"]) for it in earlier["itineraries"]) < before
        w.check(f"timechoice-earlier-{size}")

        # Leave now: the feeds are dated, so now's time on the service day, said on screen
        page.locator("label.time-option", has_text="Leave now").click()
        assert page.locator(".field-depart").is_hidden()
        note = page.locator("#time-note")
        assert note.is_visible()
        assert "The timetable covers" in note.inner_text()
        query, body = _plan(w, "#plan")
        sent = query["depart"][0]
        assert sent.startswith("2019-05-15T")
        assert "arrive" not in query
        assert body["depart"] is not None
        w.check(f"timechoice-now-{size}")

        # Depart at: the label comes back
        page.locator("label.time-option", has_text="Depart at").click()
        assert page.locator('label[for="depart"]').inner_text() == "Depart at"
        page.fill("#depart", "")
        page.click("#plan")
        assert page.locator("#error").inner_text() == "Choose a departure date and time."
        w.check(f"timechoice-missing-{size}")
