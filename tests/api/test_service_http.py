"""GET /api/v1/cities/{city}/service: when transit runs, per date, checked against the GTFS
calendars of Porto Alegre's two feeds (EPTC buses, Trensurb trains)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from functools import cache

import httpx

from correspondance.settings import REPO_ROOT

FEEDS = [
    REPO_ROOT / "data" / "porto-alegre" / f"{name}.zip" for name in ("poa_eptc", "poa_trensurb")
]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@cache
def table(path: str, name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(path) as z:
        if name not in z.namelist():
            return []
        return list(csv.DictReader(io.TextIOWrapper(z.open(name), encoding="utf-8-sig")))


def trips_on(day: dt.date) -> int:
    """Trips running on ``day`` by calendar.txt and calendar_dates.txt, read here directly."""
    stamp = day.strftime("%Y%m%d")
    total = 0
    for feed in FEEDS:
        active = {
            row["service_id"]
            for row in table(str(feed), "calendar.txt")
            if row["start_date"] <= stamp <= row["end_date"] and row[WEEKDAYS[day.weekday()]] == "1"
        }
        for row in table(str(feed), "calendar_dates.txt"):
            if row["date"] == stamp:
                (active.add if row["exception_type"] == "1" else active.discard)(row["service_id"])
        total += sum(1 for row in table(str(feed), "trips.txt") if row["service_id"] in active)
    return total


def get(api_url: str, **params: str) -> httpx.Response:
    return httpx.get(f"{api_url}/api/v1/cities/porto-alegre/service", params=params, timeout=30)


def test_service_per_date_follows_the_gtfs_calendars(api_url: str) -> None:
    response = get(api_url, **{"from": "2019-05-13", "to": "2019-05-19"})
    assert response.status_code == 200
    body = response.json()
    assert body["city"] == "porto-alegre"
    assert body["service_start"] == "2019-03-01"  # Trensurb's calendar starts first
    assert body["service_end"] == "2019-12-31"
    days = {d["date"]: d for d in body["days"]}
    assert list(days) == [f"2019-05-{n}" for n in range(13, 20)]
    for date, day in days.items():
        assert day["trips"] == trips_on(dt.date.fromisoformat(date)), date
    weekday, saturday = days["2019-05-15"], days["2019-05-18"]
    assert weekday["trips"] > saturday["trips"] > 0  # trains run on Saturdays, EPTC buses not
    assert 13 in weekday["hours"]
    assert weekday["hours"] == sorted(set(weekday["hours"]))
    assert all(0 <= h <= 23 for h in weekday["hours"])
    assert weekday["first_departure"] < weekday["last_departure"]
    # the Saturday has trains only: EPTC's buses run Monday to Friday (calendar.txt)
    assert set(saturday["modes"]) == {"bus", "rail"}
    assert saturday["modes"]["bus"] == []
    assert saturday["modes"]["rail"]
    assert weekday["modes"]["bus"]
    union = sorted(set(weekday["modes"]["bus"]) | set(weekday["modes"]["rail"]))
    assert union == weekday["hours"]


def test_dates_outside_the_feeds_have_no_service(api_url: str) -> None:
    body = get(api_url, **{"from": "2020-01-01", "to": "2020-01-02"}).json()
    assert [d["trips"] for d in body["days"]] == [0, 0]
    assert [d["hours"] for d in body["days"]] == [[], []]
    assert body["days"][0]["first_departure"] is None


def test_bad_ranges_are_refused(api_url: str) -> None:
    reversed_ = get(api_url, **{"from": "2019-05-15", "to": "2019-05-14"})
    assert reversed_.status_code == 400
    assert reversed_.json()["error"]["code"] == "invalid_parameter"
    too_long = get(api_url, **{"from": "2019-01-01", "to": "2020-01-02"})
    assert too_long.status_code == 400
    assert "366" in too_long.json()["error"]["message"]
    assert get(api_url, **{"from": "15/05/2019"}).status_code == 400
    unknown = httpx.get(f"{api_url}/api/v1/cities/atlantis/service", timeout=30)
    assert unknown.status_code == 404
