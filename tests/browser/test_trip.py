"""Live trips (issue 6) in the page: start, follow, resume after a reload, and the demo jam that
makes the server suggest a switch (accept and decline). Real server, real websocket, headless
Chromium (see conftest.py); the demo tests run on their own server with the demo mode on."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

pytestmark = pytest.mark.browser

ORIGIN = "-30.0346,-51.2177"
DESTINATION = "-30.0277,-51.1793"
START_TIMEOUT_MS = 180_000  # first plan of a fresh server warms the compiled kernels
SUGGESTION_TIMEOUT_MS = 20_000
TRANSIT_MODES = ("bus", "rail", "subway", "tram", "ferry", "trolleybus", "transit")
SCREENSHOT = "/tmp/correspondance-trip.png"
SCREENSHOT_DECLINED = "/tmp/correspondance-trip-declined.png"
SCREENSHOT_RUN = "/tmp/correspondance-trip-demo-run-{}.png"
SCREENSHOT_NO_BETTER = "/tmp/correspondance-trip-no-better.png"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "realtime" / "trips" / "protocol.schema.json"
PROTOCOL = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


class TripSocket:
    """Every frame of the page's trip websockets, parsed (attach before the page opens one)."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws: Any) -> None:
        if "/ws/v1/trips/" not in ws.url:
            return
        self.urls.append(ws.url)
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("type") == kind]

    def assert_protocol(self) -> None:
        """Every message either way is valid against realtime/trips/protocol.schema.json."""
        server = jsonschema.Draft7Validator(PROTOCOL)
        client = jsonschema.Draft7Validator({**PROTOCOL, "$ref": "#/definitions/client_message"})
        for validator, messages in ((server, self.received), (client, self.sent)):
            for msg in messages:
                errors = [e.message for e in validator.iter_errors(msg)]
                assert not errors, f"{msg.get('type')}: {errors[:3]}"


def _wait_live(page: Any, hellos: int = 1) -> None:
    page.wait_for_selector(
        f'#trip[data-state="live"][data-hellos="{hellos}"]', timeout=START_TIMEOUT_MS
    )


def _start_demo_trip(page: Any) -> TripSocket:
    """Open ``/?demo=1``: the page plans the demo trip and starts its car-share itinerary."""
    socket = TripSocket(page)
    page.goto("/?demo=1")
    _wait_live(page)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    assert page.locator("#plan-form").is_hidden()  # the live view replaces the planner
    carshare = page.locator('#trip-legs li[data-mode="carshare"]')
    assert carshare.count() >= 1
    # Simulated shared vehicles stay labelled in the live view.
    assert carshare.first.locator(".badge-simulated").is_visible()
    return socket


def _simulate_jam(page: Any) -> Any:
    """Click the demo button; returns the suggestion card once the server pushed one."""
    button = page.get_by_role("button", name=re.compile("Simulate a traffic jam"))
    assert button.is_visible()
    assert "demo" in button.inner_text().lower()
    assert "simulated" in page.locator("#trip-demo").inner_text().lower()
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/demo")
    ) as resp:
        button.click()
    assert resp.value.status == 202
    card = page.locator("#trip-suggestion .suggestion")
    card.wait_for(timeout=SUGGESTION_TIMEOUT_MS)
    return card


def _projected(suggestion: dict[str, Any]) -> str:
    """When the current plan now arrives by the suggestion (what the header must show)."""
    if not suggestion["plan_broken"]:
        return str(suggestion["current_arrival"])
    return str(suggestion.get("projected_arrival") or suggestion["new_arrival"])


def warning_text(what: str, projected: str) -> str:
    return f"{what} — your arrival is now ~{projected[11:16]}."


def _transit_leg_shown(page: Any) -> bool:
    modes = page.locator("#trip-legs li").evaluate_all("els => els.map(e => e.dataset.mode)")
    return any(m in TRANSIT_MODES for m in modes)


def test_demo_jam_suggests_a_switch_and_accepting_redraws_the_plan(demo_page: Any) -> None:
    page = demo_page
    socket = _start_demo_trip(page)
    trip_id = page.locator("#trip").get_attribute("data-trip-id")
    assert trip_id
    assert page.locator("#trip-id").inner_text() == trip_id
    # The key travels in the first message, never in the URL.
    assert socket.urls
    assert all("token" not in url for url in socket.urls)
    auth = socket.sent[0]
    assert auth["type"] == "auth"
    assert auth["token"]
    assert auth.get("after_seq") == 0
    assert page.locator("#trip-eta").inner_text() != "–"
    assert page.locator(".live-position").count() == 1  # where the trip is, on the map

    card = _simulate_jam(page)
    suggestion = socket.of_type("switch_suggestion")[-1]
    assert card.get_attribute("role") == "alert"
    assert card.get_attribute("data-suggestion-id") == suggestion["suggestion_id"]
    saved = card.locator(".minutes-saved").inner_text()
    if suggestion["minutes_saved"] is None:  # the jam broke the plan: nothing to compare with
        assert suggestion["plan_broken"]
        assert saved == "Your plan no longer works"
    else:
        assert saved == f"Saves {max(1, round(suggestion['minutes_saved']))} min"
    assert card.locator(".new-arrival").inner_text() == suggestion["new_arrival"][11:16]
    assert card.locator(".switch-at").inner_text() == suggestion["switch_at"]["name"]
    assert card.locator(".valid-until").inner_text().strip()
    assert suggestion["reason"]["message"] in card.inner_text()
    # The suggested plan is drawn dashed beside the current one.
    assert page.locator("path.leg-suggested").count() >= 1
    assert page.locator("path.leg-drive").count() >= 1
    if any(leg.get("simulated") for leg in suggestion["itinerary"]["legs"]):
        assert card.locator(".badge-simulated").count() >= 1
    # Fits a 360 px phone: nothing wider than the viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=SCREENSHOT, full_page=True)

    card.get_by_role("button", name="Accept").click()
    card.wait_for(state="detached", timeout=SUGGESTION_TIMEOUT_MS)
    page.wait_for_function(
        """(modes) => [...document.querySelectorAll('#trip-legs li')]
            .some((li) => modes.includes(li.dataset.mode))""",
        arg=list(TRANSIT_MODES),
        timeout=SUGGESTION_TIMEOUT_MS,
    )
    accept = next(m for m in socket.sent if m["type"] == "accept")
    assert accept["suggestion_id"] == suggestion["suggestion_id"]
    updated = socket.of_type("plan_updated")[-1]
    assert len(updated["itinerary"]["legs"]) == page.locator("#trip-legs > li").count()
    assert page.locator("path.leg-suggested").count() == 0
    assert page.locator("path.leg-transit").count() >= 1
    assert _transit_leg_shown(page)

    page.get_by_role("button", name="End trip").click()
    page.wait_for_selector('#trip[data-state="ended"]', timeout=SUGGESTION_TIMEOUT_MS)
    assert socket.of_type("trip_ended")[-1]["reason"] == "ended"
    assert "ended" in page.locator("#trip-summary").inner_text()
    socket.assert_protocol()
    page.console_problems.assert_none()


def test_declining_removes_the_suggestion_and_keeps_the_plan(demo_page: Any) -> None:
    page = demo_page
    socket = _start_demo_trip(page)
    legs_before = page.locator("#trip-legs > li").evaluate_all(
        "els => els.map(e => e.dataset.mode)"
    )
    card = _simulate_jam(page)
    suggestion = socket.of_type("switch_suggestion")[-1]

    # A reload resumes after the suggestion's seq; the hello still holds the open suggestion.
    page.reload()
    _wait_live(page)
    assert [m for m in socket.sent if m["type"] == "auth"][-1]["after_seq"] == suggestion["seq"]
    assert socket.of_type("hello")[-1]["suggestion"]["suggestion_id"] == suggestion["suggestion_id"]
    card = page.locator("#trip-suggestion .suggestion")
    assert card.get_attribute("data-suggestion-id") == suggestion["suggestion_id"]
    assert page.locator("path.leg-suggested").count() >= 1

    # the header shows where the plan now arrives, not its old arrival
    eta = page.locator("#trip-eta")
    projected = _projected(suggestion)
    assert eta.inner_text() == f"~{projected[11:16]}"

    card.get_by_role("button", name="Decline").click()
    card.wait_for(state="detached", timeout=SUGGESTION_TIMEOUT_MS)
    closed = socket.of_type("suggestion_closed")[-1]
    assert closed["outcome"] == "declined"
    # (read at once: the next progress message rewrites the status line)
    assert "declined" in page.locator("#trip-status").inner_text().lower()
    # what is wrong ahead stays in sight, with the arrival it now means
    warning = page.locator("#trip-warning")
    assert warning.is_visible()
    what = "Road ahead closed" if suggestion["plan_broken"] else "Traffic jammed ahead"
    assert warning.inner_text() == warning_text(what, projected)
    assert eta.inner_text() == f"~{projected[11:16]}"
    page.screenshot(path=SCREENSHOT_DECLINED, full_page=True)
    decline = next(m for m in socket.sent if m["type"] == "decline")
    assert decline["suggestion_id"] == closed["suggestion_id"]
    assert page.locator("path.leg-suggested").count() == 0
    legs_after = page.locator("#trip-legs > li").evaluate_all("els => els.map(e => e.dataset.mode)")
    assert legs_after == legs_before
    assert socket.of_type("plan_updated") == []
    page.reload()  # the warning and the projected arrival are still there after a reload
    _wait_live(page)
    assert page.locator("#trip-warning").inner_text() == warning_text(what, projected)
    assert page.locator("#trip-eta").inner_text() == f"~{projected[11:16]}"
    socket.assert_protocol()
    page.console_problems.assert_none()


def test_five_demo_runs_in_a_row_each_suggest_a_switch(demo_page: Any) -> None:
    """The demo's jam closes the road for the demo trip alone, so it works run after run."""
    page = demo_page
    for run in range(5):
        socket = _start_demo_trip(page)
        planned = page.locator("#trip-eta").inner_text()
        card = _simulate_jam(page)
        suggestion = socket.of_type("switch_suggestion")[-1]
        assert card.get_attribute("data-suggestion-id") == suggestion["suggestion_id"], run
        # a broken (or slowed) plan shows its projected arrival in the header
        eta = page.locator("#trip-eta").inner_text()
        assert eta == f"~{_projected(suggestion)[11:16]}", (run, eta, planned)
        assert eta.removeprefix("~") != planned, run  # the old arrival is gone
        page.screenshot(path=SCREENSHOT_RUN.format(run + 1), full_page=True)
        page.get_by_role("button", name="End trip").click()
        page.wait_for_selector('#trip[data-state="ended"]', timeout=SUGGESTION_TIMEOUT_MS)
        page.get_by_role("button", name="Back to the planner").click()
        assert page.locator("#trip").is_hidden()
        socket.assert_protocol()
        page.goto("about:blank")  # the next run starts from a fresh page, as a new visit
    page.console_problems.assert_none()


def _repainted_option(
    page: Any, itineraries: list[dict[str, Any]], chip_colours: str
) -> tuple[int, dict[str, str]]:
    """(index, chip text → colour) of the last option with a line not in its GTFS colour
    (the last: the palette's first colours went to the lines of the options before it)."""
    chips: list[list[str]] = []
    for index, itinerary in reversed(list(enumerate(itineraries))):
        chips = page.evaluate(chip_colours, f'#itineraries .itinerary[data-index="{index}"] .chip')
        gtfs = {
            str(leg.get("route_short_name")): str(leg.get("route_color") or "").lower()
            for leg in itinerary["legs"]
            if leg.get("trip_id")
        }
        for text, colour in chips:
            own = next((c for n, c in gtfs.items() if re.search(rf"\b{re.escape(n)}\b", text)), "")
            if len(own) == 6:
                rgb = f"rgb({int(own[:2], 16)}, {int(own[2:4], 16)}, {int(own[4:], 16)})"
                if colour != rgb:
                    return index, dict(chips)
    raise AssertionError(
        f"no option of the list shows a line in other than its GTFS colour: {chips}"
    )


def test_a_started_trip_resumes_after_a_reload_and_its_data_can_be_deleted(
    page: Any, live_server: str
) -> None:
    page.goto("/")
    page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
    page.fill("#from", ORIGIN)
    page.fill("#to", DESTINATION)
    with page.expect_response(lambda r: "/api/v1/plan" in r.url) as planned:
        page.click("#plan")
    page.wait_for_selector('#itineraries[data-state="planned"]', timeout=START_TIMEOUT_MS)
    # the option whose line the list painted other than its GTFS colour (two lines of the
    # list shared it): alone on the trip it would get the GTFS colour back
    chip_colours = """(sel) => [...document.querySelectorAll(sel)].map((c) =>
        [c.textContent.trim(), getComputedStyle(c).backgroundColor])"""
    index, listed = _repainted_option(page, planned.value.json()["itineraries"], chip_colours)
    start = page.locator(f'#itineraries .start-trip[data-index="{index}"]')
    assert start.inner_text().startswith("Start trip")
    socket = TripSocket(page)
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/trips")
    ) as created:
        start.click()
    assert created.value.status == 201
    trip_id = created.value.json()["trip_id"]
    _wait_live(page)
    assert page.locator("#trip-id").inner_text() == trip_id
    # the lines keep the colours the traveller chose the plan by
    assert dict(page.evaluate(chip_colours, "#trip-plan .chip")) == listed
    assert len(socket.of_type("hello")) == 1
    page.wait_for_timeout(500)  # let a first live message or two arrive
    stored = json.loads(page.evaluate("sessionStorage.getItem('correspondance.trip')"))
    assert stored["trip_id"] == trip_id
    assert stored["last_seq"] == max([m["seq"] for m in socket.received if "seq" in m], default=0)

    page.reload()
    _wait_live(page)
    assert page.locator("#trip-id").inner_text() == trip_id
    assert page.locator("#trip").get_attribute("data-trip-id") == trip_id
    hellos = socket.of_type("hello")
    assert len(hellos) == 2
    assert hellos[-1]["trip_id"] == trip_id
    auths = [m for m in socket.sent if m["type"] == "auth"]
    assert len(auths) == 2
    assert auths[-1]["after_seq"] == stored["last_seq"]  # resumes where it was
    assert page.locator("#trip-legs > li").count() == len(hellos[-1]["itinerary"]["legs"])

    # Export: everything the server holds about the trip, as a JSON file.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my trip data").click()
    assert download.value.suggested_filename == f"correspondance-trip-{trip_id}.json"
    path = download.value.path()
    exported = json.loads(Path(path).read_text(encoding="utf-8"))
    assert trip_id in json.dumps(exported)

    # Delete: the server forgets the trip, the page says so and offers the planner again.
    token = stored["token"]
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.get_by_role("button", name="Delete my trip data").click()
    assert 200 <= deleted.value.status < 300
    page.wait_for_selector('#trip[data-state="deleted"]')
    assert page.evaluate("sessionStorage.getItem('correspondance.trip')") is None
    socket.assert_protocol()
    page.get_by_role("button", name="Back to the planner").click()
    assert page.locator("#trip").is_hidden()
    assert page.locator("#plan-form").is_visible()
    # The results went with the reload; the trip's ends are kept, ready to plan again.
    assert page.locator("#from").input_value() == "-30.03460,-51.21770"
    assert page.locator("#to").input_value() == "-30.02770,-51.17930"
    page.console_problems.assert_none()

    # The server holds nothing any more: its export answers "no such trip".
    gone = page.request.get(
        f"{live_server}/api/v1/trips/{trip_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert gone.json()["error"]["code"] == "trip_not_found"
    assert gone.status == 404


def test_live_updates_duplicates_and_reconnects_on_a_scripted_socket(
    page: Any, live_server: str
) -> None:
    """The client's side of the protocol against a websocket scripted in the browser (Playwright
    ``route_web_socket``): a live_update marks the leg it names, a duplicate seq is ignored, a
    dropped connection resumes with after_seq, and close code 4404 is final."""
    page.goto("/")
    page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
    depart = page.locator("#depart").input_value()
    planned = page.request.get(
        f"{live_server}/api/v1/plan",
        params={"from": ORIGIN, "to": DESTINATION, "depart": f"{depart}:00"},
    ).json()
    itinerary = next(it for it in planned["itineraries"] if len(it["legs"]) >= 2)
    trip_id = "scripted-trip-0001"
    connections: list[Any] = []
    auths: list[dict[str, Any]] = []

    def envelope(kind: str, **fields: Any) -> str:
        sent_at = itinerary["departure"]
        return json.dumps({"v": 1, "type": kind, "trip_id": trip_id, "sent_at": sent_at, **fields})

    def serve(ws: Any) -> None:
        connections.append(ws)

        def on_message(message: str | bytes) -> None:
            msg = json.loads(message)
            if msg["type"] != "auth":
                return
            auths.append(msg)
            hello = {"status": "active", "last_seq": 2, "suggestion": None, "progress": None}
            ws.send(envelope("hello", itinerary=itinerary, **hello))
            for seq, delay, note in ((1, 120, None), (2, 300, "Slow traffic"), (2, 900, "dup")):
                if seq > msg["after_seq"]:
                    alert = {"alert_id": "a1", "effect": "DETOUR", "header": "Detour"}
                    leg: dict[str, Any] = {"leg_index": 1, "delay_s": delay, "note": note}
                    leg |= {"cancelled": False, "alerts": [alert]}
                    ws.send(envelope("live_update", seq=seq, eta=itinerary["arrival"], legs=[leg]))

        ws.on_message(on_message)

    page.route_web_socket(re.compile(r".*/ws/v1/trips/.*"), serve)
    stored = {"trip_id": trip_id, "token": "scripted", "last_seq": 0, "city": "porto-alegre"}
    page.evaluate("t => sessionStorage.setItem('correspondance.trip', JSON.stringify(t))", stored)
    page.reload()
    _wait_live(page)
    assert auths == [{"type": "auth", "token": "scripted", "after_seq": 0}]
    info = page.locator('#trip-legs > li[data-leg-index="1"] .live-info')
    assert "+5 min" in info.inner_text()
    assert "Slow traffic" in info.inner_text()
    assert "Detour" in info.locator(".alert").inner_text()
    assert "dup" not in info.inner_text()  # seq 2 again: ignored
    assert page.locator("#trip-legs .live-info").count() == 1

    connections[-1].close(code=1011, reason="server restart")
    _wait_live(page, hellos=2)
    assert auths[-1]["after_seq"] == 2
    assert "+5 min" in info.inner_text()

    connections[-1].close(code=4404, reason="no such trip")
    page.wait_for_selector('#trip[data-state="gone"]')
    assert "no longer exists" in page.locator("#trip-error").inner_text()
    page.wait_for_timeout(2500)  # longer than the first backoff: no new connection
    assert len(connections) == 2
    page.console_problems.assert_none()


def test_no_better_option_is_said_in_a_clear_sentence(page: Any, live_server: str) -> None:
    """A broken plan with nothing better (``live_update`` with notice ``no_better_option``,
    scripted in the browser): the page says so, with what is wrong and the new arrival."""
    page.goto("/")
    page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
    depart = page.locator("#depart").input_value()
    planned = page.request.get(
        f"{live_server}/api/v1/plan",
        params={"from": ORIGIN, "to": DESTINATION, "depart": f"{depart}:00"},
    ).json()
    itinerary = planned["itineraries"][0]
    trip_id = "scripted-trip-0002"
    arrival = dt.datetime.fromisoformat(itinerary["arrival"])
    later = (arrival + dt.timedelta(minutes=13)).isoformat()

    def serve(ws: Any) -> None:
        def on_message(message: str | bytes) -> None:
            if json.loads(message)["type"] != "auth":
                return
            envelope = {"v": 1, "trip_id": trip_id, "sent_at": itinerary["departure"]}
            hello = {"status": "active", "last_seq": 1, "suggestion": None, "progress": None}
            ws.send(json.dumps({**envelope, "type": "hello", "itinerary": itinerary, **hello}))
            leg = {"leg_index": 0, "delay_s": 780, "cancelled": False, "alerts": []}
            notice = {
                "code": "no_better_option",
                "reason": "congestion",
                "detail": {"code": "road_closed", "params": {}},
                "arrival": later,
                "message": "No better way was found: the road ahead is closed.",
            }
            update = {"type": "live_update", "seq": 1, "eta": later, "notice": notice}
            note_code = {"code": "road_closed", "params": {}}
            update["legs"] = [leg | {"note": "road closed ahead", "note_code": note_code}]
            jsonschema.validate({**envelope, **update}, PROTOCOL)
            ws.send(json.dumps({**envelope, **update}))

        ws.on_message(on_message)

    page.route_web_socket(re.compile(r".*/ws/v1/trips/.*"), serve)
    stored = {"trip_id": trip_id, "token": "scripted", "last_seq": 0, "city": "porto-alegre"}
    page.evaluate("t => sessionStorage.setItem('correspondance.trip', JSON.stringify(t))", stored)
    page.reload()
    _wait_live(page)
    warning = page.locator("#trip-warning")
    warning.wait_for(timeout=SUGGESTION_TIMEOUT_MS)
    assert warning.inner_text() == (
        f"No better way right now. Road ahead closed — your arrival is now ~{later[11:16]}."
    )
    assert page.locator("#trip-eta").inner_text() == f"~{later[11:16]}"
    # worded by the app from the codes (docs/protocol.md, "Texts are codes")
    assert page.locator("#trip-status").inner_text() == (
        "No better way was found: the road ahead is closed; "
        f"you arrive about {later[11:16]} going around it."
    )
    assert page.locator("#trip-legs .live-note").first.inner_text() == "road closed ahead"
    page.screenshot(path=SCREENSHOT_NO_BETTER, full_page=True)
    page.console_problems.assert_none()
