"""Live delays you can see (issue 14), in headless Chromium against real servers running Porto
Alegre's simulated GTFS-Realtime feed, at phone and desktop sizes:

* a plan on a late bus shows its delay badge, the timetable's time struck through beside the
  expected one, the alert on its route and the "simulated" label (the suite's server, its
  simulated feeds frozen at one moment);
* a started trip whose bus the feed then cancels gets a switch suggestion in the page (a
  server of its own whose simulated clock runs: the test's own copy of the deterministic
  simulator says which bus the feed will cancel, and when).

Every scenario ends with the quality bar of test_apps.py: screenshot kept as an artefact
(``CORRESPONDANCE_ARTIFACTS_DIR``), axe-core with no serious or critical violation, no console
error, no request leaving the server.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from gtfsrt_scenarios import Ride, ride_on, rides_turning_cancelled, simulator_of

from correspondance.cities import CityConfig
from feeds.gtfsrt import parse_alerts
from routing.base import CityBase

from .conftest import _server_process
from .test_apps import DESKTOP, PHONE, watched_page
from .test_trip import TripSocket

pytestmark = pytest.mark.browser
CITY = "porto-alegre"
READY_TIMEOUT_MS = 180_000  # a fresh server's first plan may still warm its kernels
VIEWPORTS = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]
TZ = "America/Sao_Paulo"


@pytest.fixture(scope="module")
def running_clock_server() -> Iterator[str]:
    """A server whose simulated feeds follow the wall clock (in-process store)."""
    dropped = ("REDIS_URL", "CORRESPONDANCE_SIMULATED_FEEDS_AT", "CORRESPONDANCE_BROWSER_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    with _server_process(env, "correspondance-gtfsrt-") as base:
        yield base


def plan_api(base_url: str, ride: Ride) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{base_url}/api/v1/plan",
        # to the minute, as the page's time field sends it (the same query, the same options)
        params={"from": ride.origin, "to": ride.destination, "depart": f"{ride.depart[:16]}:00"},
        timeout=120,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    itineraries: list[dict[str, Any]] = response.json()["itineraries"]
    return itineraries


def riding(itineraries: list[dict[str, Any]], trip_id: str) -> int | None:
    """Index of the first itinerary that rides ``trip_id``."""
    for i, it in enumerate(itineraries):
        if any(leg["trip_id"] == trip_id for leg in it["legs"]):
            return i
    return None


def open_app(page: Any) -> None:
    page.goto("/")
    page.wait_for_selector('body[data-ready="1"]', timeout=READY_TIMEOUT_MS)


def plan_in_page(page: Any, ride: Ride) -> list[dict[str, Any]]:
    """Type the ride into the planner (transit and walk, the defaults) and plan it."""
    page.fill("#from", ride.origin)
    page.fill("#to", ride.destination)
    page.fill("#depart", ride.depart[:16])
    with page.expect_response(
        lambda r: urlparse(r.url).path == "/api/v1/plan", timeout=READY_TIMEOUT_MS
    ) as answer:
        page.click("#plan")
    page.wait_for_selector('#itineraries[data-state="planned"]', timeout=READY_TIMEOUT_MS)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    itineraries: list[dict[str, Any]] = answer.value.json()["itineraries"]
    return itineraries


def clock(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).astimezone(_tz()).strftime("%H:%M")


def _tz() -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(TZ)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_late_bus_shows_its_delay_scheduled_time_alert_and_simulated_label(
    chromium: Any,
    live_server: str,
    poa_base: CityBase,
    cities: dict[str, CityConfig],
    viewport: dict[str, int],
) -> None:
    frozen = float(os.environ["CORRESPONDANCE_SIMULATED_FEEDS_AT"])
    sim = simulator_of(cities[CITY], poa_base, frozen)
    # the route the feed's delay alert names has the most late buses: ride a late one of it
    (alert,) = [a for a in parse_alerts(sim.message()) if a.effect == "SIGNIFICANT_DELAYS"]
    (selector,) = alert.informed_entities
    on_route = {t.trip_id for t in sim.trips if t.route_id == selector.route_id}
    late = [s for s in sim.situation(sim.tick()) if s.trip_id in on_route and s.delay_s >= 180]
    chosen: tuple[Ride, int] | None = None
    for situation in late:
        ride = ride_on(poa_base, situation.trip_id, early_s=60)
        if ride is not None and riding(plan_api(live_server, ride), ride.trip_id) is not None:
            chosen = (ride, situation.delay_s)
            break
    assert chosen is not None, f"no late bus of route {selector.route_id} could be planned"
    ride, delay_s = chosen

    with watched_page(chromium, live_server, viewport) as w:
        page = w.page
        open_app(page)
        itineraries = plan_in_page(page, ride)
        index = riding(itineraries, ride.trip_id)
        assert index is not None
        leg = next(leg for leg in itineraries[index]["legs"] if leg["trip_id"] == ride.trip_id)
        assert leg["delay_s"] == delay_s
        assert leg["simulated"] is True

        card = page.locator(f'#itineraries .itinerary[data-index="{index}"]')
        card.click()
        assert card.get_attribute("aria-pressed") == "true"
        minutes = round(delay_s / 60)
        chip = card.locator(".chip-transit", has=page.locator(".delay")).first
        assert chip.locator(".delay").inner_text().startswith(f"+{minutes} min")
        assert chip.locator(".badge-simulated").inner_text() == "simulated"
        shown = card.locator(
            f'.alert[data-effect="SIGNIFICANT_DELAYS"]:has-text("{alert.header_text}")'
        )
        assert shown.count() == 1
        assert shown.locator(".alert-effect").inner_text() == "Delays"
        assert shown.locator(".badge-simulated").count() == 1

        steps = card.locator("xpath=..").locator(".legs")
        step = steps.locator("li", has=page.locator(".scheduled-time")).first
        scheduled, expected = step.locator(".scheduled-time"), step.locator(".expected-time")
        assert scheduled.count() == expected.count() == 2  # departure and arrival
        assert scheduled.nth(0).inner_text().endswith(clock(leg["scheduled_departure"]))
        assert expected.nth(0).inner_text().endswith(clock(leg["departure"]))
        assert scheduled.nth(1).inner_text().endswith(clock(leg["scheduled_arrival"]))
        assert expected.nth(1).inner_text().endswith(clock(leg["arrival"]))
        # struck through: an <s> element, drawn with a line through it
        assert el_tag(scheduled.nth(0)) == "S"
        decoration = scheduled.nth(0).evaluate("el => getComputedStyle(el).textDecorationLine")
        assert "line-through" in decoration
        assert step.locator(".delay").inner_text().startswith(f"+{minutes} min")
        assert page.locator("#sim-note").is_visible()
        page.wait_for_timeout(400)  # the map's fit-bounds animation, before the screenshot
        w.check(f"live-delays-plan-{viewport['width']}")


def el_tag(locator: Any) -> str:
    tag: str = locator.evaluate("el => el.tagName")
    return tag


def find_bus_turning_cancelled(
    sim: Any, base: CityBase, server: str, tick_s: float
) -> tuple[float, Ride, int]:
    """(when the feed cancels it, the ride, its itinerary index) for a bus on time now that
    the feed cancels 30 to 120 s from now, planned with a walk of at least a minute first
    (so the traveller is still walking when the news comes)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        now = time.time()
        for north_m in (150.0, -150.0):
            for at, ride in rides_turning_cancelled(
                sim, base, int(now // tick_s), within=4, north_m=north_m
            ):
                boundary = at * tick_s
                if not 30 <= boundary - time.time() <= 120:
                    continue
                itineraries = plan_api(server, ride)
                index = riding(itineraries, ride.trip_id)
                if index is None:
                    continue
                first = itineraries[index]["legs"][0]
                if first["mode"] == "walk" and first["duration_s"] >= 60:
                    return boundary, ride, index
        time.sleep(tick_s / 2)
    pytest.fail("no bus the feed is about to cancel could be planned in 4 minutes")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_started_trip_whose_bus_is_cancelled_gets_a_switch_suggestion(
    chromium: Any,
    running_clock_server: str,
    poa_base: CityBase,
    cities: dict[str, CityConfig],
    viewport: dict[str, int],
) -> None:
    sim = simulator_of(cities[CITY], poa_base, frozen_at=None)  # the wall clock, as the server
    tick_s = sim.config.tick_s
    with watched_page(chromium, running_clock_server, viewport) as w:
        page = w.page
        socket = TripSocket(page)
        open_app(page)
        boundary, ride, _ = find_bus_turning_cancelled(sim, poa_base, running_clock_server, tick_s)
        itineraries = plan_in_page(page, ride)
        index = riding(itineraries, ride.trip_id)
        assert index is not None, "the page's plan no longer rides the bus"
        assert time.time() < boundary - 2, "planning in the page took too long"
        # the traveller starts just before the feed cancels their bus
        wait_s = boundary - 4 - time.time()
        if wait_s > 0:
            page.wait_for_timeout(wait_s * 1000)
        page.locator(f'.start-trip[data-index="{index}"]').click()
        page.wait_for_selector('#trip[data-state="live"]', timeout=READY_TIMEOUT_MS)
        assert time.time() < boundary + 1, "the trip started after the cancellation"
        bus = page.locator("#trip-legs > li", has=page.locator(".badge-simulated"))
        assert bus.count() >= 1  # the bus's live state is labelled simulated

        card = page.locator("#trip-suggestion .suggestion")
        card.wait_for(timeout=(boundary - time.time() + 45) * 1000)
        suggestion = socket.of_type("switch_suggestion")[-1]
        assert suggestion["reason"]["code"] == "trip_cancelled"
        assert suggestion["plan_broken"] is True
        assert card.get_attribute("data-suggestion-id") == suggestion["suggestion_id"]
        assert suggestion["reason"]["message"] in card.inner_text()
        new_trips = {leg["trip_id"] for leg in suggestion["itinerary"]["legs"]}
        assert ride.trip_id not in new_trips
        socket.assert_protocol()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        w.check(f"live-delays-cancelled-{viewport['width']}")

        page.get_by_role("button", name="End trip").click()
        page.wait_for_selector('#trip[data-state="ended"]', timeout=30_000)
