"""Mode choice, shared (simulated) vehicles, live delays/alerts and the live-feeds panel.

All in headless Chromium against the real server (see conftest.py)."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.browser

ORIGIN = "-30.0346,-51.2177"
DESTINATION = "-30.0277,-51.1793"
SCREENSHOT = "/tmp/correspondance-modes.png"
SCREENSHOT_FULL = "/tmp/correspondance-modes-full.png"
PLAN_TIMEOUT_MS = 120_000
MODE_NAMES = {
    "transit": "Transit",
    "walk": "Walk",
    "bicycle": "Own bike",
    "car": "Own car",
    "bikeshare": "Bike-share",
    "carshare": "Car-share",
}
SIMULATED_FEEDS = ("poa-bikes-sim", "poa-cars-sim", "eptc-rt-sim")


def _open(page: Any) -> None:
    page.goto("/")
    page.wait_for_selector('body[data-ready="1"]', timeout=120_000)


def _is_plan(url: str) -> bool:
    return urlparse(url).path == "/api/v1/plan"


def _network_noise_only(messages: list[str], path: str) -> list[str]:
    """Drop Chromium's own network messages about ``path`` (a failed or 4xx/5xx load is logged by
    the browser itself, not by our script); keep everything else."""
    return [
        m
        for m in messages
        if not (
            (
                m.startswith("console.error: Failed to load resource")
                or m.startswith("requestfailed:")
            )
            and path in m
        )
    ]


def test_mode_chips_default_to_transit_and_walk(page: Any) -> None:
    _open(page)
    for mode, name in MODE_NAMES.items():
        box = page.locator(f"#mode-{mode}")
        assert box.count() == 1, mode
        assert box.get_attribute("type") == "checkbox"
        # A real checkbox named by its visible label, in the "Travel by" group.
        by_role = page.get_by_role("group", name="Travel by").get_by_role(
            "checkbox", name=name, exact=True
        )
        assert by_role.get_attribute("id") == f"mode-{mode}"
    checked = {m for m in MODE_NAMES if page.locator(f"#mode-{m}").is_checked()}
    assert checked == {"transit", "walk"}
    page.console_problems.assert_none()


def test_shared_modes_give_simulated_legs_and_feeds_are_listed(page: Any) -> None:
    _open(page)
    page.fill("#from", ORIGIN)
    page.fill("#to", DESTINATION)
    page.check("#mode-carshare")
    page.check("#mode-bikeshare")
    with page.expect_request(lambda r: _is_plan(r.url)) as req:
        page.click("#plan")
    modes = parse_qs(urlparse(req.value.url).query)["modes"][0].split(",")
    assert set(modes) == {"transit", "walk", "bikeshare", "carshare"}
    page.wait_for_selector('#itineraries[data-state="planned"]', timeout=PLAN_TIMEOUT_MS)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()

    shared = page.locator(
        "#itineraries .itinerary:has(.chip-carshare), #itineraries .itinerary:has(.chip-bikeshare)"
    )
    assert shared.count() >= 1, "expected an itinerary with a car-share or bike-share leg"
    card = shared.first
    badge = card.locator(".chip .badge-simulated").first
    assert badge.is_visible()
    assert "simulated" in badge.inner_text().lower()

    # Its steps name the shared leg and label it simulated; the map draws it in its own style.
    card.click()
    assert card.get_attribute("aria-pressed") == "true"
    steps = card.locator("xpath=..").locator(".legs")
    steps_text = steps.inner_text()
    assert "Car-share:" in steps_text or "Bike-share:" in steps_text, steps_text
    assert "→" in steps_text
    assert steps.locator(".badge-simulated").first.is_visible()
    assert page.locator("path.leg-drive.leg-simulated, path.leg-bike.leg-simulated").count() >= 1

    note = page.locator("#sim-note")
    assert note.is_visible()
    assert "not a real service" in note.inner_text()

    # Live feeds panel: both simulated systems, each marked simulated.
    page.wait_for_selector('#feeds[data-state="ok"]', timeout=30_000)
    page.click("#feeds summary")
    for feed_id in SIMULATED_FEEDS:
        row = page.locator(f'#feeds li[data-feed-id="{feed_id}"]')
        assert row.is_visible(), feed_id
        assert feed_id in row.inner_text()
        assert "simulated" in row.locator(".badge-simulated").inner_text()
        assert row.get_attribute("data-status") in ("pending", "ok", "degraded", "stale")
    assert "simulated" in page.locator("#feeds summary").inner_text()
    assert page.locator("#modes-hint").is_visible()  # shared modes checked in a simulated city

    page.wait_for_timeout(400)  # let the fit-bounds animation settle
    page.screenshot(path=SCREENSHOT_FULL, full_page=True)
    # The 390×844 viewport, scrolled to the mode chips: chips, hint and the first results.
    page.locator("#modes").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=SCREENSHOT)
    page.console_problems.assert_none()


def test_no_mode_selected_is_caught_inline_before_the_api(page: Any) -> None:
    _open(page)
    plan_requests: list[str] = []
    page.on("request", lambda r: plan_requests.append(r.url) if _is_plan(r.url) else None)
    page.fill("#from", ORIGIN)
    page.fill("#to", DESTINATION)
    page.uncheck("#mode-transit")
    assert page.locator("#modes-error").is_hidden()
    page.uncheck("#mode-walk")
    message = page.locator("#modes-error")
    assert message.is_visible()  # says so as soon as the last mode is unchecked
    assert "at least one" in message.inner_text()
    page.click("#plan")
    assert message.is_visible()
    assert page.locator("#modes").get_attribute("aria-invalid") == "true"
    page.wait_for_timeout(300)
    assert plan_requests == []
    assert page.locator("#itineraries").get_attribute("data-state") == "idle"

    page.check("#mode-walk")
    assert message.is_hidden()
    page.console_problems.assert_none()


def test_live_delay_and_alerts_are_shown(page: Any, live_server: str) -> None:
    """A real plan fed back with one known delay and alert (the simulated GTFS-RT feed's own
    delays and alerts are shown end to end in test_live_delays.py)."""
    _open(page)
    depart = page.locator("#depart").input_value()
    real = page.request.get(
        f"{live_server}/api/v1/plan",
        params={
            "city": "porto-alegre",
            "from": ORIGIN,
            "to": DESTINATION,
            "depart": f"{depart}:00",
        },
    ).json()
    body = copy.deepcopy(real)
    target = next(
        (i, leg)
        for i, it in enumerate(body["itineraries"])
        for leg in it["legs"]
        if leg["mode"] not in ("walk", "bicycle", "car", "bikeshare", "carshare", "scooter")
    )
    index, leg = target
    leg["delay_s"] = 245
    leg["alerts"] = [
        {
            "alert_id": "a1",
            "effect": "DETOUR",
            "header": "Detour on Avenida Ipiranga",
            "description": "Works until Friday.",
        }
    ]
    for it in body["itineraries"]:  # a small delay is not worth showing
        for other in it["legs"]:
            if other is not leg and other["mode"] == "bus":
                other["delay_s"] = 45
                other["alerts"] = []  # the simulated GTFS-RT feed's own alerts
    page.route(
        lambda url: _is_plan(url),
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(body)
        ),
    )
    page.fill("#from", ORIGIN)
    page.fill("#to", DESTINATION)
    page.click("#plan")
    page.wait_for_selector('#itineraries[data-state="planned"]', timeout=PLAN_TIMEOUT_MS)

    card = page.locator(f'#itineraries .itinerary[data-index="{index}"]')
    assert page.locator("#itineraries .itinerary .delay").count() == 1
    assert card.locator(".delay").inner_text().strip().startswith("+4 min")
    assert "Detour on Avenida Ipiranga" in card.locator(".alert").inner_text()
    card.click()
    steps = card.locator("xpath=..").locator(".legs")
    assert steps.locator(".delay").inner_text().strip().startswith("+4 min")
    assert "Detour on Avenida Ipiranga" in steps.locator(".alert").inner_text()
    page.console_problems.assert_none()


def test_feeds_failure_shows_unavailable_without_script_errors(page: Any) -> None:
    def is_feeds(url: str) -> bool:
        return urlparse(url).path == "/api/v1/feeds"

    page.route(
        is_feeds,
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body=json.dumps({"error": {"code": "unavailable", "message": "live state store down"}}),
        ),
    )
    _open(page)
    page.wait_for_selector('#feeds[data-state="error"]', timeout=30_000)
    assert "feeds unavailable" in page.locator("#feeds summary").inner_text()

    # The endpoint going away entirely (network error) on a later refresh: same quiet answer.
    page.unroute(is_feeds)
    page.route(is_feeds, lambda route: route.abort())
    with page.expect_event("requestfailed", lambda r: is_feeds(r.url)):
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_function(
        "document.getElementById('feeds-list').textContent.includes('Cannot reach')"
    )
    assert page.locator("#feeds").get_attribute("data-state") == "error"
    assert "feeds unavailable" in page.locator("#feeds summary").inner_text()
    page.click("#feeds summary")
    assert "Planning still works" in page.locator("#feeds-list").inner_text()

    problems = _network_noise_only(page.console_problems.messages, "/api/v1/feeds")
    assert problems == [], "\n".join(problems)
