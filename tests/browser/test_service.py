"""Service-aware dates: the feeds' period, days and hours without (full) service marked in the
date choice, and a plan without transit that says why and re-plans at the next service."""

from __future__ import annotations

from typing import Any

import pytest

from .test_apps import DESKTOP, PHONE, Watched, watched_page
from .test_languages import open_page

pytestmark = pytest.mark.browser

ORIGIN = "-30.0346,-51.2177"
DESTINATION = "-30.0277,-51.1793"
PLAN_TIMEOUT_MS = 120_000


def ready(w: Watched) -> None:
    open_page(w)
    w.page.wait_for_selector('#service[data-state="ready"]')


def plan_at(w: Watched, depart: str) -> None:
    page = w.page
    page.fill("#from", ORIGIN)
    page.fill("#to", DESTINATION)
    page.fill("#depart", depart)
    page.dispatch_event("#depart", "input")
    page.click("#plan")
    page.wait_for_selector('#itineraries[data-state="planned"]', timeout=PLAN_TIMEOUT_MS)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_saturday_without_buses_is_marked_and_explained(
    chromium: Any, live_server: str, viewport: dict[str, int]
) -> None:
    with watched_page(chromium, live_server, viewport, locale="en-GB") as w:
        ready(w)
        page = w.page
        period = page.text_content("#service-period") or ""
        assert "1 Mar 2019" in period and "31 Dec 2019" in period, period  # noqa: PT018
        days = page.locator("#service-days .service-day")
        assert days.count() == 7
        states = {
            days.nth(i).get_attribute("data-date"): days.nth(i).get_attribute("data-service")
            for i in range(7)
        }
        # EPTC's buses run Monday to Friday; Trensurb's trains every day
        assert states == {
            "2019-05-13": "ok",
            "2019-05-14": "ok",
            "2019-05-15": "ok",
            "2019-05-16": "ok",
            "2019-05-17": "ok",
            "2019-05-18": "partial",
            "2019-05-19": "partial",
        }
        assert page.get_attribute('.service-day[data-date="2019-05-18"]', "title") == (
            "Saturday 18 May: no bus"
        )
        page.click('.service-day[data-date="2019-05-18"]')  # the strip picks the date
        assert page.input_value("#depart") == "2019-05-18T13:00"
        assert page.get_attribute("#service-note", "data-service") == "partial"

        plan_at(w, "2019-05-18T13:00")
        assert page.locator("#itineraries .chip-transit").count() == 0
        box = page.locator("#no-transit")
        assert box.is_visible()
        assert box.get_attribute("data-reason") == "partial_service"
        assert "No bus runs on Saturday, 18 May 2019" in box.inner_text()
        assert page.text_content("#next-service") == "Plan at the next service: Mon 20 May, 11:00"
        w.check(f"service-saturday-{'phone' if viewport == PHONE else 'desktop'}")

        page.click("#next-service")  # re-plans then: the first hour with both buses and trains
        page.wait_for_selector("#itineraries .chip-transit", timeout=PLAN_TIMEOUT_MS)
        assert page.input_value("#depart") == "2019-05-20T11:00"
        assert page.locator("#no-transit").is_hidden()
        w.problems.assert_none()


def test_an_hour_without_service(chromium: Any, live_server: str) -> None:
    with watched_page(chromium, live_server, PHONE, locale="en-GB") as w:
        ready(w)
        page = w.page
        plan_at(w, "2019-05-15T03:00")
        assert page.get_attribute("#service-note", "data-service") == "outside"
        assert "No transit runs at this hour" in (page.text_content("#service-note") or "")
        box = page.locator("#no-transit")
        assert box.get_attribute("data-reason") == "no_service_hour"
        assert "05:00" in (page.text_content("#next-service") or "")
        w.check("service-night-phone")
