"""Readable results: route colours, headsign or direction and stops, durations that match the
clock times shown, results brought into view on a phone."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .test_apps import DESKTOP, PHONE, watched_page
from .test_languages import assert_durations_match_clocks, open_page, plan

pytestmark = pytest.mark.browser


def test_durations_are_computed_from_the_clock_times_shown(chromium: Any, live_server: str) -> None:
    with watched_page(chromium, live_server, PHONE, locale="en-GB") as w:
        open_page(w)
        cases = w.page.evaluate(
            """async () => {
                const f = await import("/static/format.js");
                const out = [];
                // 13:00:00 → 13:14:40 was shown "13:00 → 13:14 · 15 min" before
                for (const [a, b] of [
                    ["2019-05-15T13:00:00-03:00", "2019-05-15T13:14:40-03:00"],
                    ["2019-05-15T13:00:29-03:00", "2019-05-15T13:14:31-03:00"],
                    ["2019-05-15T13:00:31-03:00", "2019-05-15T13:14:29-03:00"],
                    ["2019-05-15T23:50:10-03:00", "2019-05-16T00:55:50-03:00"],
                ]) {
                    const tz = "America/Sao_Paulo";
                    out.push([f.formatClock(a, tz), f.formatClock(b, tz), f.formatSpan(a, b)]);
                }
                return out;
            }"""
        )
        # seconds dropped (as the API's duration_s): never a departure a minute late
        assert cases == [
            ["13:00", "13:14", "14 min"],
            ["13:00", "13:14", "14 min"],
            ["13:00", "13:14", "14 min"],
            ["23:50", "00:55", "1 h 05 min"],
        ]
        w.problems.assert_none()


def test_two_lines_never_share_a_colour(chromium: Any, live_server: str) -> None:
    with watched_page(chromium, live_server, PHONE, locale="en-GB") as w:
        open_page(w)
        colours = w.page.evaluate(
            """async () => {
                const f = await import("/static/format.js");
                const leg = (route_id, route_color, route_text_color = null) =>
                    ({ mode: "bus", route_id, route_color, route_text_color });
                const a = leg("A", "FF0000"), b = leg("B", "FF0000");
                const c = leg("C", "05D600", "000000"), d = leg("D", null), e = leg("E", "1F6FB2");
                f.assignRouteColours([{ legs: [a, { mode: "walk" }, b] }, { legs: [c, d, e] }]);
                return [a, b, c, d, e].map((l) => [f.routeColour(l), f.routeTextColour(l)]);
            }"""
        )
        backgrounds = [bg for bg, _ in colours]
        assert len(set(backgrounds)) == 5, colours  # five lines, five colours
        assert colours[2] == [
            "#05d600",
            "#000000",
        ]  # a GTFS colour of its own is kept, with its text colour
        assert colours[4][0] == "#1f6fb2"
        assert (
            "#ff0000" not in backgrounds[:2]
        )  # EPTC paints every bus FF0000: two lines, two others
        w.problems.assert_none()


def test_a_started_trip_keeps_the_colours_its_lines_were_chosen_by(
    chromium: Any, live_server: str
) -> None:
    with watched_page(chromium, live_server, PHONE, locale="en-GB") as w:
        open_page(w)
        colours = w.page.evaluate(
            """async () => {
                const f = await import("/static/format.js");
                const leg = (route_id) => ({ mode: "bus", route_id, route_color: "FF0000" });
                const a = leg("A"), b = leg("B"), c = leg("C");
                f.assignRouteColours([{ legs: [a] }, { legs: [b] }]);  // the list: two reds
                const listed = f.routeColour(b);
                // the trip rides B alone (its GTFS red is unique now), its suggestion C
                f.assignRouteColours([{ legs: [b] }, { legs: [c] }], { keep: true });
                const kept = [f.routeColour(b), f.routeColour(c)];
                f.assignRouteColours([{ legs: [b] }]);  // without keep: B's own colour again
                return [listed, ...kept, f.routeColour(b)];
            }"""
        )
        listed, trip_b, trip_c, fresh = colours
        assert listed != "#ff0000", colours
        assert trip_b == listed, colours
        assert trip_c not in (trip_b, "#ff0000"), colours  # a new line: a colour of its own
        assert fresh == "#ff0000", colours
        w.problems.assert_none()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_results_read_well(chromium: Any, live_server: str, viewport: dict[str, int]) -> None:
    with watched_page(chromium, live_server, viewport, locale="en-GB") as w:
        open_page(w)
        page = w.page
        plan(w)
        if viewport == PHONE:  # "Plan" is below the map: the page scrolls the results into view
            page.wait_for_function(
                """() => {
                    const top = document.getElementById('results').getBoundingClientRect().top;
                    return window.scrollY > 200 && top >= 0 && top < window.innerHeight / 2;
                }"""
            )
        assert_durations_match_clocks(w)
        # transit steps: where the vehicle goes and how many stops the ride is
        steps = page.locator("#itineraries .legs li").all_inner_texts()
        transit = [s for s in steps if re.search(r"(Bus|Train) ", s)]
        assert transit, steps
        for step in transit:
            assert re.search(r"towards \S", step), step
            assert re.search(r"\b\d+ stops?\b", step), step
        # within each itinerary set, distinct routes are drawn and badged in distinct colours
        chips = page.evaluate(
            """() => [...document.querySelectorAll('#itineraries .chip-transit')].map((c) =>
                [c.textContent.trim(), getComputedStyle(c).backgroundColor])"""
        )
        by_route: dict[str, set[str]] = {}
        for name, colour in chips:
            by_route.setdefault(name, set()).add(colour)
        assert all(len(c) == 1 for c in by_route.values()), by_route
        assert len({next(iter(c)) for c in by_route.values()}) == len(by_route), by_route
        w.check(f"results-{'phone' if viewport == PHONE else 'desktop'}")
