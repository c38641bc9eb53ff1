"""Place search in the commuter page (issue 14), in headless Debian Chromium against a real
server of Porto Alegre, at phone (390×844) and desktop (1440×900) sizes.

Each scenario ends with the quality bar of ``test_apps``: screenshots kept as artefacts
(``places-*.png`` in ``CORRESPONDANCE_ARTIFACTS_DIR``), no console error, no request leaving
the server, axe-core with no serious or critical violation.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from .test_apps import DESKTOP, PHONE, Watched, watched_page

pytestmark = pytest.mark.browser

SIZES = {"phone": PHONE, "desktop": DESKTOP}
PLAN_TIMEOUT_MS = 120_000
# Where the device says it is: east of the centre, inside the city.
DEVICE = {"latitude": -30.0277, "longitude": -51.1793}
# Wraps the geolocation API so a test can count the page's calls.
COUNT_GEOLOCATION = """
(() => {
  window.__geolocationCalls = 0;
  const geo = navigator.geolocation;
  const original = geo.getCurrentPosition.bind(geo);
  geo.getCurrentPosition = (...args) => {
    window.__geolocationCalls += 1;
    return original(...args);
  };
})();
"""


def open_page(w: Watched) -> Any:
    page = w.page
    page.add_init_script(COUNT_GEOLOCATION)
    page.goto("/")
    page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
    return page


def type_slowly(page: Any, selector: str, text: str) -> None:
    """Letter by letter, as a person types: every keystroke may ask the server."""
    page.click(selector)
    page.keyboard.type(text, delay=40)


def place_requests(w: Watched) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(u).query) for u in w.requests if "/api/v1/places" in u]


def option_texts(page: Any, listbox: str) -> list[str]:
    return page.eval_on_selector_all(
        f"{listbox} [role=option]", "os => os.map(o => o.textContent.replace(/\\s+/g, ' '))"
    )


@pytest.mark.parametrize("size", SIZES)
def test_search_pick_by_keyboard_and_pointer_then_plan(
    chromium: Any, live_server: str, size: str
) -> None:
    with watched_page(chromium, live_server, SIZES[size]) as w:
        page = open_page(w)
        from_input = page.locator("#from")
        assert from_input.get_attribute("role") == "combobox"
        assert from_input.get_attribute("aria-expanded") == "false"
        assert from_input.get_attribute("aria-controls") == "from-places"
        assert from_input.get_attribute("placeholder") == "Search a place, or lat,lon"

        # keyboard only: type, arrow down, Enter
        type_slowly(page, "#from", "estacao merc")
        page.wait_for_selector('#from-places[data-state="results"]')
        assert from_input.get_attribute("aria-expanded") == "true"
        texts = option_texts(page, "#from-places")
        assert texts[0].startswith("ESTACAO MERCADO Station · LINHA1 · "), texts
        assert texts[0].endswith(" km"), texts
        said = f"{len(texts)} place{'s' if len(texts) > 1 else ''} found. "
        page.wait_for_function(
            "(said) => document.querySelector('.place-actions .visually-hidden')"
            ".textContent.startsWith(said)",
            arg=said,
        )
        # the search was ranked from the map centre
        asked = place_requests(w)[-1]
        assert asked["q"] == ["estacao merc"]
        assert asked["city"] == ["porto-alegre"]
        assert len(asked["near"][0].split(",")) == 2
        page.keyboard.press("ArrowDown")
        first = page.locator("#from-places [role=option]").first
        assert first.get_attribute("aria-selected") == "true"
        assert from_input.get_attribute("aria-activedescendant") == first.get_attribute("id")
        w.check(f"places-suggestions-{size}")  # axe with the list open
        page.keyboard.press("Enter")
        assert from_input.input_value() == "ESTACAO MERCADO"
        assert from_input.get_attribute("aria-expanded") == "false"
        assert page.locator("#from-places").is_hidden()
        assert page.locator(".pin-from").count() == 1
        assert page.locator("#itineraries").get_attribute("data-state") == "idle"  # not submitted

        # accents forgiven: "cristovao" finds the avenue spelled "Cristóvão"; pick with a pointer
        type_slowly(page, "#to", "cristovao colombo")
        page.wait_for_selector('#to-places[data-state="results"]')
        avenue = page.locator("#to-places [role=option]", has_text="Avenida Cristóvão Colombo")
        assert avenue.count() == 1
        assert "Street" in avenue.inner_text()
        avenue.click()
        assert page.locator("#to").input_value() == "Avenida Cristóvão Colombo"
        assert page.locator(".pin-to").count() == 1

        # planning sends the picked places' coordinates
        page.click("#plan")
        page.wait_for_selector('#itineraries[data-state="planned"]', timeout=PLAN_TIMEOUT_MS)
        assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
        plan = next(parse_qs(urlsplit(u).query) for u in w.requests if "/api/v1/plan?" in u)
        lat, lon = (float(x) for x in plan["from"][0].split(","))
        assert (lat, lon) == pytest.approx((-30.02628, -51.22827), abs=1e-4)
        assert page.locator("#itineraries .itinerary").count() >= 1
        w.check(f"places-planned-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_recent_places_are_kept_on_the_device_and_cleared(
    chromium: Any, live_server: str, size: str
) -> None:
    with watched_page(chromium, live_server, SIZES[size]) as w:
        page = open_page(w)
        type_slowly(page, "#to", "av ipiranga")
        page.wait_for_selector('#to-places[data-state="results"]')
        page.locator("#to-places [role=option]", has_text="Avenida Ipiranga").first.click()
        stored = json.loads(
            page.evaluate("() => localStorage.getItem('correspondance.recent-places.v1')")
        )
        assert [p["name"] for p in stored["porto-alegre"]] == ["Avenida Ipiranga"]

        # after a reload, an empty field offers "my location" and the recent place
        page.reload()
        page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
        page.click("#from")
        page.wait_for_selector('#from-places[data-state="recent"]')
        texts = option_texts(page, "#from-places")
        assert texts[0].startswith("My location")
        assert texts[1].startswith("Avenida Ipiranga Recent · Street"), texts
        assert page.locator("#from + .place-popup .place-clear").is_visible()
        w.check(f"places-recent-{size}")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        assert page.locator("#from").input_value() == "Avenida Ipiranga"
        assert page.locator(".pin-from").count() == 1

        # clearing them, by keyboard: Tab from the field reaches the button
        page.fill("#from", "")
        page.dispatch_event("#from", "input")
        page.wait_for_selector('#from-places[data-state="recent"]')
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className") == "place-clear"
        page.keyboard.press("Enter")
        page.wait_for_selector('#from-places[data-state="start"]')
        assert option_texts(page, "#from-places") == ["My location Asks your browser where you are"]
        assert (
            page.evaluate("() => localStorage.getItem('correspondance.recent-places.v1')") is None
        )
        assert page.locator("#from + .place-popup .place-clear").is_hidden()
        # nobody asked for the device's position
        assert page.evaluate("() => window.__geolocationCalls") == 0
        w.check(f"places-recent-cleared-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_my_location_only_when_asked(chromium: Any, live_server: str, size: str) -> None:
    with watched_page(
        chromium, live_server, SIZES[size], geolocation=DEVICE, permissions=["geolocation"]
    ) as w:
        page = open_page(w)
        page.click("#from")
        page.click("#to")
        page.wait_for_timeout(300)
        assert page.evaluate("() => window.__geolocationCalls") == 0  # not before asking
        page.click(".btn-locate")
        page.wait_for_selector('.place-status[data-state="ok"]')
        assert page.evaluate("() => window.__geolocationCalls") == 1
        assert page.text_content(".place-status") == "Starting from your location."
        assert page.locator("#from").input_value() == "My location"
        assert page.locator(".pin-from").count() == 1
        # "My location" in the To field's list, by keyboard
        page.click("#to")
        assert page.locator("#to-places").is_hidden()  # nothing recent: no list on focus
        page.keyboard.press("ArrowDown")  # opens the list on its first option
        assert page.get_attribute("#to", "aria-activedescendant") == "to-places-0"
        assert option_texts(page, "#to-places")[0].startswith("My location")
        page.keyboard.press("Enter")
        assert page.evaluate("() => window.__geolocationCalls") == 2
        page.wait_for_function("() => document.querySelector('#to').value === 'My location'")
        # typed coordinates still work: no lookup, a pin, a plan from the device's position
        before = len(place_requests(w))
        page.fill("#to", "-30.0346,-51.2177")
        page.dispatch_event("#to", "input")
        page.dispatch_event("#to", "change")
        assert len(place_requests(w)) == before
        assert page.locator("#to-places").is_hidden()
        page.click("#plan")
        page.wait_for_selector('#itineraries[data-state="planned"]', timeout=PLAN_TIMEOUT_MS)
        plan = next(parse_qs(urlsplit(u).query) for u in w.requests if "/api/v1/plan?" in u)
        assert plan["from"] == [f"{DEVICE['latitude']},{DEVICE['longitude']}"]
        assert plan["to"] == ["-30.0346,-51.2177"]
        w.check(f"places-my-location-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_refused_location_says_so_and_map_taps_still_work(
    chromium: Any, live_server: str, size: str
) -> None:
    with watched_page(chromium, live_server, SIZES[size]) as w:  # no permission granted
        page = open_page(w)
        page.click(".btn-locate")
        page.wait_for_selector('.place-status[data-state="error"]')
        assert page.text_content(".place-status") == (
            "Location permission was refused, so your location is not used. "
            "Search a place or tap the map instead."
        )
        assert page.locator("#from").input_value() == ""
        assert page.locator(".btn-locate").is_enabled()
        # a tap on the map sets the origin, as before
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function(
            "() => /^-?\\d+\\.\\d+,-?\\d+\\.\\d+$/.test(document.querySelector('#from').value)"
        )
        assert page.locator(".pin-from").count() == 1
        # nothing found: a clear note, no empty list
        type_slowly(page, "#to", "xqzwv")
        page.wait_for_selector('#to-places[data-state="empty"]', state="attached")
        assert page.text_content("#to + .place-popup .place-note") == (
            "No place matches “xqzwv”. Check the spelling, or tap the map."
        )
        assert page.get_attribute("#to", "aria-expanded") == "false"
        w.check(f"places-refused-{size}")
        assert page.locator("#to + .place-popup").is_visible()
        page.keyboard.press("Escape")
        assert page.locator("#to + .place-popup").is_hidden()


def test_a_location_outside_the_city_is_not_used(chromium: Any, live_server: str) -> None:
    lisbon = {"latitude": 38.7223, "longitude": -9.1393}
    with watched_page(
        chromium, live_server, PHONE, geolocation=lisbon, permissions=["geolocation"]
    ) as w:
        page = open_page(w)
        page.click(".btn-locate")
        page.wait_for_selector('.place-status[data-state="error"]')
        assert page.text_content(".place-status") == (
            "You seem to be outside Porto Alegre, so your location is not used. "
            "Search a place or tap the map instead."
        )
        assert page.locator("#from").input_value() == ""
        assert page.locator(".pin-from").count() == 0
        w.check("places-outside-phone")
