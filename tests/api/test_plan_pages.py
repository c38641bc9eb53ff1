"""Arrive-by, page cursors and unknown query parameters over real HTTP (issues 14, 15)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from api.cursor import PageCursor, encode_cursor, query_key

CENTRE = "-30.0346,-51.2177"
EAST = "-30.0277,-51.1793"
ARRIVE = "2019-05-15T14:00:00"


def plan(api_url: str, **params: str) -> httpx.Response:
    return httpx.get(f"{api_url}/api/v1/plan", params=params, timeout=60)


def transit(body: dict) -> list[dict]:
    return [it for it in body["itineraries"] if any(leg.get("trip_id") for leg in it["legs"])]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_arrive_by_leaves_as_late_as_possible_and_arrives_in_time(api_url: str) -> None:
    body = plan(api_url, **{"from": CENTRE, "to": EAST, "arrive": ARRIVE}).json()
    assert body["arrive"] == "2019-05-15T14:00:00-03:00"
    assert body["depart"] is None
    rides = transit(body)
    assert rides, body
    deadline = at(body["arrive"])
    for it in body["itineraries"]:
        assert at(it["arrival"]) <= deadline
    latest = max(at(it["departure"]) for it in rides)
    # leaving at the latest departure found arrives by the deadline; a minute later does not
    forward = plan(api_url, **{"from": CENTRE, "to": EAST, "depart": latest.isoformat()}).json()
    assert min(at(it["arrival"]) for it in transit(forward)) <= deadline
    late = (latest + dt.timedelta(minutes=1)).isoformat()
    after = plan(api_url, **{"from": CENTRE, "to": EAST, "depart": late}).json()
    assert min(at(it["arrival"]) for it in transit(after)) > deadline
    # latest departures first
    deps = [at(it["departure"]) for it in body["itineraries"]]
    assert deps == sorted(deps, reverse=True)


def test_later_and_earlier_cursors_page_through_departures(api_url: str) -> None:
    first = plan(api_url, **{"from": CENTRE, "to": EAST, "depart": "2019-05-15T13:00:00"})
    body = first.json()
    page = body["page"]
    assert page["earlier"]
    assert page["later"]
    later = plan(api_url, **{"from": CENTRE, "to": EAST, "cursor": page["later"]}).json()
    assert later["depart"] is not None
    last_shown = max(at(it["departure"]) for it in transit(body))
    assert at(later["depart"]) > last_shown
    assert min(at(it["departure"]) for it in transit(later)) > last_shown
    earlier = plan(api_url, **{"from": CENTRE, "to": EAST, "cursor": page["earlier"]}).json()
    assert earlier["arrive"] is not None
    first_arrival = min(at(it["arrival"]) for it in transit(body))
    assert transit(earlier)
    assert max(at(it["arrival"]) for it in earlier["itineraries"]) < first_arrival


def test_cursor_of_another_query_or_garbled_is_refused(api_url: str) -> None:
    body = plan(api_url, **{"from": CENTRE, "to": EAST}).json()
    cursor = body["page"]["later"]
    other = plan(api_url, **{"from": EAST, "to": CENTRE, "cursor": cursor})
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "invalid_cursor"
    assert "another query" in other.json()["error"]["message"]
    for garbled in (cursor[:-1] + ("0" if cursor[-1] != "0" else "1"), "x", "a.b", cursor[3:]):
        response = plan(api_url, **{"from": CENTRE, "to": EAST, "cursor": garbled})
        assert response.status_code == 400, garbled
        assert response.json()["error"]["code"] == "invalid_cursor"


def test_forged_cursor_time_goes_through_the_bounds(api_url: str) -> None:
    key = query_key(
        "porto-alegre", (-30.0346, -51.2177), (-30.0277, -51.1793), frozenset({"walk", "transit"})
    )
    far = PageCursor(False, dt.datetime(2300, 1, 1, tzinfo=dt.UTC))
    response = plan(api_url, **{"from": CENTRE, "to": EAST, "cursor": encode_cursor(far, key)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "out_of_range"


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"depart": "2019-05-15T13:00:00", "arrive": ARRIVE}, "'depart' and 'arrive'"),
        ({"arrive": ARRIVE, "cursor": "abc.def"}, "'arrive' and 'cursor'"),
    ],
)
def test_depart_arrive_and_cursor_exclude_one_another(
    api_url: str, params: dict[str, str], bad: str
) -> None:
    response = plan(api_url, **{"from": CENTRE, "to": EAST, **params})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "conflicting_parameters"
    assert bad in error["message"]


def test_arrive_goes_through_the_datetime_bounds(api_url: str) -> None:
    response = plan(api_url, **{"from": CENTRE, "to": EAST, "arrive": "9999-12-31T23:59:59"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "out_of_range"
    response = plan(api_url, **{"from": CENTRE, "to": EAST, "arrive": "tomorrow"})
    assert response.status_code == 400
    assert "'arrive'" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/api/v1/plan", {"from": CENTRE, "to": EAST, "arive": ARRIVE}, ["'arive'"]),
        ("/api/v1/plan", {"from": CENTRE, "to": EAST, "when": "x", "zz": "1"}, ["'when'", "'zz'"]),
        ("/api/v1/cities", {"city": "oslo"}, ["'city'"]),
        ("/api/v1/feeds", {"verbose": "1"}, ["'verbose'"]),
    ],
)
def test_unknown_query_parameters_are_named_in_a_400(
    api_url: str, path: str, query: dict[str, str], named: list[str]
) -> None:
    response = httpx.get(f"{api_url}{path}", params=query, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_parameter"
    for name in named:
        assert name in error["message"]


def test_declared_parameters_and_pages_outside_the_document_still_pass(api_url: str) -> None:
    ok = httpx.get(f"{api_url}/api/v1/plan", params={"from": CENTRE, "to": EAST, "modes": "walk"})
    assert ok.status_code == 200
    assert httpx.get(f"{api_url}/?demo=1", timeout=30).status_code == 200
    spec = httpx.get(f"{api_url}/openapi.json", timeout=30).json()
    names = {p["name"] for p in spec["paths"]["/api/v1/plan"]["get"]["parameters"]}
    assert names == {"from", "to", "depart", "arrive", "cursor", "modes", "city"}


def test_parameters_read_by_hand_and_documented_are_declared(api_url: str) -> None:
    """POST /reports reads ``city`` by hand (documented through its OpenAPI extra): it is
    not refused as unknown, while a made-up parameter next to it is."""
    body = {"lat": -30.0337, "lon": -51.2245, "heading": 224.0, "kind": "congestion"}
    headers = {"X-Contributor-Token": "unknown-parameter-test-0001"}
    ok = httpx.post(
        f"{api_url}/api/v1/reports", params={"city": "porto-alegre"}, json=body, headers=headers
    )
    assert ok.json().get("error", {}).get("code") != "unknown_parameter", ok.text
    bad = httpx.post(
        f"{api_url}/api/v1/reports",
        params={"city": "porto-alegre", "debug": "1"},
        json=body,
        headers=headers,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "unknown_parameter"
    assert "'debug'" in bad.json()["error"]["message"]
