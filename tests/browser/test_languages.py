"""The commuter page in its four languages, end to end in headless Debian Chromium.

The language comes from the browser's languages (``navigator.languages``: Playwright's
``locale``) and can be switched in the page, which remembers it on the device. Every scenario
ends with the quality bar of the apps tests: a screenshot kept as an artefact, axe-core with no
serious or critical violation, no console error and no request leaving the server.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .test_apps import DESKTOP, PHONE, Watched, watched_page

pytestmark = pytest.mark.browser

ORIGIN = "-30.0346,-51.2177"
DESTINATION = "-30.0277,-51.1793"
PLAN_TIMEOUT_MS = 120_000
# What each language calls the plan button, the origin field and a found itinerary.
WORDS = {
    "en": ("Plan", "From", "found"),
    "fr": ("Calculer", "De", "trouvé"),
    "pt-BR": ("Planejar", "De", "encontrado"),
    "nb": ("Planlegg", "Fra", "funnet"),
}
CLOCKS = re.compile(r"(\d{2}):(\d{2}) → (\d{2}):(\d{2})")


def open_page(w: Watched) -> None:
    w.page.goto("/")
    w.page.wait_for_selector('body[data-ready="1"]', timeout=120_000)


def plan(w: Watched) -> None:
    w.page.fill("#from", ORIGIN)
    w.page.fill("#to", DESTINATION)
    w.page.click("#plan")
    w.page.wait_for_selector('#itineraries[data-state="planned"]', timeout=PLAN_TIMEOUT_MS)
    assert w.page.locator("#error").is_hidden(), w.page.locator("#error").inner_text()


def minutes(text: str) -> int:
    """Minutes of a shown duration: "14 min", "1 h 05 min", "1 t 05 min"."""
    found = re.fullmatch(r"(?:(\d+) [ht])?\s*(?:(\d+) min)?", text.strip())
    assert found, text
    assert any(found.groups()), text
    return int(found.group(1) or 0) * 60 + int(found.group(2) or 0)


def assert_durations_match_clocks(w: Watched) -> None:
    """Every card: the duration is the difference of the two clock times it shows."""
    cards = w.page.locator("#itineraries .itinerary")
    assert cards.count() >= 1
    for i in range(cards.count()):
        times = cards.nth(i).locator(".it-times").inner_text()
        h1, m1, h2, m2 = (int(x) for x in CLOCKS.search(times).groups())  # type: ignore[union-attr]
        span = (h2 * 60 + m2 - h1 * 60 - m1) % (24 * 60)
        shown = cards.nth(i).locator(".it-duration").inner_text()
        assert minutes(shown) == span, f"card {i}: {times} but {shown}"


@pytest.mark.parametrize(("locale", "lang"), [("fr-FR", "fr"), ("pt-BR", "pt-BR"), ("nb-NO", "nb")])
def test_the_browser_language_chooses_the_page_language(
    chromium: Any, live_server: str, locale: str, lang: str
) -> None:
    viewport = PHONE if lang == "fr" else DESKTOP
    with watched_page(chromium, live_server, viewport, locale=locale) as w:
        open_page(w)
        page = w.page
        button, origin, found = WORDS[lang]
        assert page.evaluate("navigator.languages[0]") == locale
        assert page.locator("html").get_attribute("lang") == lang
        assert page.locator("#lang").input_value() == lang
        assert page.locator("#plan").inner_text() == button
        assert page.locator('label[for="from"]').inner_text().strip() == origin
        plan(w)
        status = page.locator("#results-status").inner_text()
        assert found in status, status
        # numbers and times in the language's own format (Intl in the chosen locale)
        km = page.evaluate('import("/static/format.js").then((f) => f.formatDistance(4240))')
        assert km == {"fr": "4,2 km", "pt-BR": "4,2 km", "nb": "4,2 km"}[lang]
        assert CLOCKS.search(page.locator("#itineraries .itinerary").first.inner_text())
        assert_durations_match_clocks(w)
        steps = page.locator("#itineraries .legs").inner_text()
        assert "Walk" not in steps, steps  # no English left
        assert "arrive" not in steps, steps
        assert "Destination" not in steps, steps  # the planner's own end, worded by the app
        if viewport == PHONE:  # nothing wider than the phone, and the results brought into view
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            page.wait_for_function(  # a smooth scroll: it takes a few frames
                """() => {
                    const top = document.getElementById('results').getBoundingClientRect().top;
                    return top >= 0 && top < window.innerHeight / 2;
                }"""
            )
        w.check(f"lang-{lang}-{'phone' if viewport == PHONE else 'desktop'}")


def test_an_unknown_language_reads_english(chromium: Any, live_server: str) -> None:
    with watched_page(chromium, live_server, PHONE, locale="de-DE") as w:
        open_page(w)
        assert w.page.locator("html").get_attribute("lang") == "en"
        assert w.page.locator("#plan").inner_text() == "Plan"
        w.problems.assert_none()


def test_switching_language_in_the_page_is_remembered(chromium: Any, live_server: str) -> None:
    with watched_page(chromium, live_server, DESKTOP, locale="en-GB") as w:
        open_page(w)
        page = w.page
        assert page.locator("#plan").inner_text() == "Plan"
        plan(w)
        assert "found" in page.locator("#results-status").inner_text()
        english_card = page.locator("#itineraries .itinerary").first.inner_text()

        page.select_option("#lang", "nb")
        page.wait_for_selector('html[lang="nb"]', state="attached")
        assert page.locator("#plan").inner_text() == "Planlegg"
        assert page.locator('label[for="depart"]').inner_text() == "Avreise"
        # what was drawn from data is re-worded too, the same itineraries kept
        assert "funnet" in page.locator("#results-status").inner_text()
        card = page.locator("#itineraries .itinerary").first.inner_text()
        assert CLOCKS.search(card).group(0) == CLOCKS.search(english_card).group(0)  # type: ignore[union-attr]
        assert card != english_card
        assert page.evaluate('localStorage.getItem("correspondance.lang")') == "nb"
        w.check("lang-switch-nb-desktop")

        page.reload()
        page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
        assert page.locator("html").get_attribute("lang") == "nb"  # remembered on the device
        assert page.locator("#lang").input_value() == "nb"
        page.select_option("#lang", "en")
        page.wait_for_selector('html[lang="en"]', state="attached")
        assert page.locator("#plan").inner_text() == "Plan"
        w.problems.assert_none()


# the width the selected option's text needs in its select, against the select's box
SELECT_FITS_JS = """() => [...document.querySelectorAll('.topbar select')].map((s) => {
    const style = getComputedStyle(s);
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const text = s.options[s.selectedIndex].text;
    const room = s.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)
        - 16;  // the drop-down arrow
    return [text, ctx.measureText(text).width <= room];
})"""


@pytest.mark.parametrize("locale", ["pt-BR", "nb-NO", "fr-FR"])
def test_a_phone_header_shows_the_city_and_language_names_whole(
    chromium: Any, live_server: str, locale: str
) -> None:
    # seen: "Português (Brasil)" cut to "Portugu" beside the name cut to "Correspondan…"
    narrow = {"width": 360, "height": 780}
    with watched_page(chromium, live_server, narrow, locale=locale) as w:
        open_page(w)
        fits = w.page.evaluate(SELECT_FITS_JS)
        assert [ok for _, ok in fits] == [True, True], fits
        assert w.page.locator(".brand-mark").is_visible()
        assert w.page.get_by_role("heading", name="Correspondance", level=1).count() == 1
        assert w.page.evaluate("document.documentElement.scrollWidth") <= narrow["width"]
        w.check(f"header-{locale}-360")
