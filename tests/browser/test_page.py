"""End-to-end tests of the trip-planner page against the real server, in headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

# Porto Alegre: city centre → east.
ORIGIN = "-30.0346,-51.2177"
DESTINATION = "-30.0277,-51.1793"
SCREENSHOT = "/tmp/correspondance-page.png"
PLAN_TIMEOUT_MS = 120_000


def _open(page: Any) -> None:
    page.goto("/")
    page.wait_for_selector('body[data-ready="1"]', timeout=120_000)


def test_page_loads_with_base_map(page: Any, live_server: str) -> None:
    _open(page)
    # The base map is our own vector tiles drawn by MapLibre under Leaflet: no tile images.
    page.wait_for_selector('#map[data-basemap="vector"] .leaflet-gl-layer[data-state="idle"]')
    assert page.locator(".leaflet-basemap-pane canvas.maplibregl-canvas").count() == 1
    assert page.locator("img.leaflet-tile").count() == 0
    drawn = page.evaluate(
        """async () => {
            const {mapView} = await import('/static/app.js');
            const drawn = mapView.glMap.queryRenderedFeatures({layers: ['streets']});
            return {classes: [...new Set(drawn.map((f) => f.properties.class))]};
        }"""
    )
    # the city overview on a phone (MapLibre zoom ~10.7): the main roads, in their classes
    assert {"primary", "secondary", "tertiary"} <= set(drawn["classes"]), drawn

    # Controls and their defaults: default city picked, service date from the city (not today).
    cities = page.request.get(f"{live_server}/api/v1/cities").json()["cities"]
    default = next((c for c in cities if c.get("default")), cities[0])
    assert page.locator("#city").input_value() == default["id"]
    depart = page.locator("#depart").input_value()
    assert depart.startswith(default["default_date"]), depart
    assert depart[11:16] == default["default_time"][:5], depart
    for hook in ("#from", "#to", "#plan", "#itineraries"):
        assert page.locator(hook).count() == 1, hook
    assert page.locator("#error").is_hidden()

    attribution = page.locator(".leaflet-control-attribution").inner_text()
    assert "OpenStreetMap contributors" in attribution
    for publisher in default.get("attribution", []):
        assert publisher in attribution, publisher

    page.console_problems.assert_none()


def test_plan_shows_itineraries_and_draws_route(page: Any) -> None:
    _open(page)
    page.fill("#from", ORIGIN)
    page.fill("#to", DESTINATION)
    page.click("#plan")
    page.wait_for_selector('#itineraries[data-state="planned"]', timeout=PLAN_TIMEOUT_MS)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()

    items = page.locator("#itineraries .itinerary")
    assert items.count() >= 1
    assert items.first.get_attribute("data-index") == "0"
    assert page.locator("#itineraries .chip-bus, #itineraries .chip-rail").count() >= 1, (
        "expected at least one itinerary with a bus or rail leg"
    )
    first_text = items.first.inner_text()
    assert "→" in first_text
    assert "min" in first_text

    # The first itinerary is selected and drawn on the map.
    assert items.first.get_attribute("aria-pressed") == "true"
    assert page.locator("path.leg-line").count() >= 1

    # Choose an itinerary with transit and check its line is drawn in the route's colour.
    transit = page.locator(
        "#itineraries .itinerary:has(.chip-bus), #itineraries .itinerary:has(.chip-rail)"
    ).first
    transit.click()
    assert transit.get_attribute("aria-pressed") == "true"
    assert page.locator("path.leg-transit").count() >= 1

    # Keyboard: focus moves between itineraries with the arrow keys and selects them.
    if items.count() > 1:
        items.first.focus()
        page.keyboard.press("ArrowDown")
        assert items.nth(1).get_attribute("aria-pressed") == "true"
        page.keyboard.press("ArrowUp")
        assert items.first.get_attribute("aria-pressed") == "true"
    transit.click()

    # Markers for origin and destination.
    assert page.locator(".pin-from").count() == 1
    assert page.locator(".pin-to").count() == 1

    page.wait_for_timeout(400)  # let the fit-bounds animation settle before the screenshot
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.console_problems.assert_none()


def test_tapping_map_sets_origin_then_destination(page: Any) -> None:
    _open(page)
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    assert page.locator("#from").input_value() != ""
    assert page.locator("#to").input_value() == ""
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.45)
    assert page.locator("#to").input_value() != ""
    assert page.locator(".pin-from").count() == 1
    assert page.locator(".pin-to").count() == 1
    page.console_problems.assert_none()


def test_origin_outside_city_shows_api_error(page: Any, live_server: str) -> None:
    _open(page)
    outside = "48.85,2.35"
    page.fill("#from", outside)
    page.fill("#to", DESTINATION)
    page.click("#plan")
    page.wait_for_selector("#error:not([hidden])", timeout=PLAN_TIMEOUT_MS)

    depart = page.locator("#depart").input_value()
    resp = page.request.get(
        f"{live_server}/api/v1/plan",
        params={
            "city": "porto-alegre",
            "from": outside,
            "to": DESTINATION,
            "depart": f"{depart}:00",
        },
    )
    assert 400 <= resp.status < 500
    api_message = resp.json()["error"]["message"]
    assert api_message
    assert api_message in page.locator("#error").inner_text()
    assert page.locator("#itineraries .itinerary").count() == 0

    # The API's 4xx shows up as a failed resource load in Chromium's console; that is expected
    # network noise, not a script error of ours. Anything else is not.
    problems = [
        m
        for m in page.console_problems.messages
        if not (m.startswith("console.error: Failed to load resource") and "/api/v1/plan" in m)
    ]
    assert problems == [], "\n".join(problems)


def test_bad_coordinates_are_caught_before_the_api(page: Any) -> None:
    _open(page)
    page.fill("#from", "not a place")
    page.fill("#to", DESTINATION)
    page.click("#plan")
    # said under the fields, naming what was typed, and on the phone's screen (the page's
    # error line is a screen further down)
    error = page.locator("#endpoint-error")
    assert error.is_visible()
    assert "“not a place” is not a place we know for the origin" in error.inner_text()
    box, height = error.bounding_box(), page.viewport_size["height"]
    assert box is not None
    assert box["y"] >= 0, box
    assert box["y"] + box["height"] <= height, box
    assert page.locator("#error").is_hidden()
    assert page.locator("#from").get_attribute("aria-invalid") == "true"
    # nothing typed at all: both are asked for; a tap on the map clears the message
    page.fill("#from", "")
    page.fill("#to", "")
    page.click("#plan")
    assert error.inner_text().startswith("Set the origin and destination")
    box = page.locator("#map").bounding_box()
    page.locator("#map").click(position={"x": box["width"] * 0.4, "y": box["height"] * 0.4})
    assert page.locator(".pin-from").count() == 1
    assert error.is_hidden()
    page.console_problems.assert_none()


def test_stops_show_when_zoomed_in_and_a_tap_on_one_still_sets_a_point(page: Any) -> None:
    _open(page)
    stop = page.evaluate(
        """async () => {
            const {mapView} = await import('/static/app.js');
            const stops = await (await fetch('/api/v1/cities/porto-alegre/stops')).json();
            const f = stops.features[Math.floor(stops.features.length / 2)];
            const [lon, lat] = f.geometry.coordinates;
            mapView.map.setView([lat, lon], 17, {animate: false});
            await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            const p = mapView.map.latLngToContainerPoint([lat, lon]);
            const box = document.getElementById('map').getBoundingClientRect();
            return {x: box.left + p.x, y: box.top + p.y, name: f.properties.stop_name};
        }"""
    )
    assert page.locator(".leaflet-stops-pane canvas").count() == 1
    page.mouse.move(stop["x"], stop["y"])
    tooltip = page.locator(".leaflet-tooltip")
    tooltip.wait_for()
    assert tooltip.inner_text() == stop["name"]
    page.mouse.click(stop["x"], stop["y"])
    assert page.locator("#from").input_value() != ""
    assert page.locator(".pin-from").count() == 1
    page.console_problems.assert_none()
