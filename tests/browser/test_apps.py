"""The operator dashboard (/operator), the contributor app (in /) and the API docs, end to end in
headless Debian Chromium against a real server of Porto Alegre.

Every scenario, at phone and desktop sizes: screenshots saved as artefacts (in
``CORRESPONDANCE_ARTIFACTS_DIR``, default ``/tmp/correspondance-artifacts``), no console
errors, no failed request and no request leaving the server, and axe-core (npm, pinned,
injected from /static) with no serious or critical violation. The app's own JavaScript (the
map and chart libraries aside) is measured gzipped against 200 KB.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import REPO_ROOT, ConsoleProblems, _server_process

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("CORRESPONDANCE_ARTIFACTS_DIR", "/tmp/correspondance-artifacts"))
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1440, "height": 900}
USERNAME = "night-shift"
PASSWORD = "correct horse battery staple"
# A one-way avenue downtown (drive edge 140) and where a driver on it would report from.
AVENUE = (-30.03367875, -51.2245012, 224.0)
LISBON = (38.7223, -9.1393)
OWN_JS_BUDGET_GZ = 200 * 1024


@pytest.fixture(scope="module")
def apps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server of its own (in-process state), with one operator account."""
    folder = tmp_path_factory.mktemp("apps")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["CORRESPONDANCE_OPERATORS_FILE"] = str(folder / "operators.json")
    env["CORRESPONDANCE_SECRET_FILE"] = str(folder / "secret")
    # the account is made as an administrator would: with the command line
    subprocess.run(
        [sys.executable, "-m", "api.cli", "operator", "add", "--username", USERNAME],
        cwd=REPO_ROOT,
        env=env | {"CORRESPONDANCE_OPERATOR_PASSWORD": PASSWORD},
        check=True,
        capture_output=True,
        timeout=60,
    )
    with _server_process(env, "correspondance-apps-") as base:
        yield base, folder


@pytest.fixture(scope="module")
def base_url(apps_server: tuple[str, Path]) -> str:
    return apps_server[0]


class Watched:
    """A page with everything it requested and every console problem recorded."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.problems = ConsoleProblems()
        self.requests: list[str] = []
        self.scripts: dict[str, int] = {}  # own script URL → gzipped size
        page.on("console", self.problems.on_console)
        page.on("pageerror", self.problems.on_pageerror)
        page.on("requestfailed", self.problems.on_requestfailed)
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("response", self.on_response)

    def on_response(self, response: Any) -> None:
        if response.request.resource_type == "script" and "/node_modules/" not in response.url:
            try:
                self.scripts[response.url] = len(gzip.compress(response.body(), 9))
            except Exception:  # a body no longer available (navigation): measured on disk below
                self.scripts[response.url] = -1

    def external(self) -> list[str]:
        origin = urlsplit(self.base).netloc
        return [
            u
            for u in self.requests
            if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != origin
        ]

    def expected_refusals(self, status: int, path: str) -> None:
        """Forget the console's note of answers the scenario provoked on purpose (Chromium
        logs every 4xx as an error); any other problem stays."""
        self.problems.messages = [
            m for m in self.problems.messages if not (f"status of {status}" in m and path in m)
        ]

    def check(self, name: str) -> None:
        """Screenshot, axe, console, requests: the checks every scenario ends with."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        violations = axe(self.page)
        assert violations == [], f"{name}: axe serious/critical violations:\n" + json.dumps(
            violations, indent=1
        )
        self.problems.assert_none()
        assert self.external() == [], f"{name}: requests left the server: {self.external()}"


@contextmanager
def watched_page(
    chromium: Any, base: str, viewport: dict[str, int], **options: Any
) -> Iterator[Watched]:
    context = chromium.new_context(
        viewport=viewport, device_scale_factor=1, base_url=base, **options
    )
    context.set_default_timeout(30_000)
    try:
        yield Watched(context.new_page(), base)
    finally:
        context.close()


def axe(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    page.add_script_tag(url="/static/node_modules/axe-core/axe.min.js")
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations
              .filter((v) => v.impact === "serious" || v.impact === "critical")
              .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                             nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
        }"""
    )
    return found


def post_report(base: str, body: dict[str, Any], address: str) -> httpx.Response:
    """A report from another contributor on another network (a loopback address of its own)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=10, trust_env=False) as http:
        return http.post(
            f"{base}/api/v1/reports",
            json=body,
            headers={"X-Contributor-Token": secrets.token_urlsafe(24)},
        )


def jam_on_avenue(base: str) -> None:
    """Two independent contributors report the avenue: the fused layer shows it."""
    lat, lon, heading = AVENUE
    body = {"lat": lat, "lon": lon, "heading": heading, "kind": "congestion", "level": 4}
    for address in ("127.0.0.31", "127.0.0.32"):
        assert post_report(base, body, address).status_code == 202


def interactive_ms(page: Any, path: str) -> float:
    """Milliseconds from navigation to DOMContentLoaded (every module script has run), the
    best of three visits after a first one warmed the server and the cache: the machine
    running the suite is shared, and one slow visit says more about it than about the page."""
    page.goto(path)
    page.wait_for_load_state("networkidle")  # nothing of a visit is cut short by the next
    timings = []
    for _ in range(3):
        page.goto(path)
        timings.append(
            page.evaluate(
                "() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
            )
        )
        page.wait_for_load_state("networkidle")
    print(f"{path}: DOMContentLoaded after {', '.join(f'{t:.0f}' for t in timings)} ms")
    return float(min(timings))


# -- the operator dashboard -------------------------------------------------------------------


def sign_in(w: Watched, password: str = PASSWORD) -> None:
    w.page.fill("#login-username", USERNAME)
    w.page.fill("#login-password", password)
    w.page.click("#login-submit")


def test_operator_dashboard_on_a_desktop(chromium: Any, base_url: str) -> None:
    jam_on_avenue(base_url)
    with watched_page(chromium, base_url, DESKTOP) as w:
        page = w.page
        assert interactive_ms(page, "/operator") < 2000
        page.wait_for_selector('body[data-view="login"]')
        sign_in(w, "not the password at all")
        page.wait_for_selector("#login-error:not([hidden])")
        assert page.text_content("#login-error") == "Wrong username or password."
        sign_in(w)
        page.wait_for_selector('body[data-view="dashboard"][data-ready="1"]', timeout=60_000)
        token = page.evaluate(
            "() => JSON.parse(sessionStorage.getItem('correspondance.operator')).token"
        )
        assert len(token) == 43
        assert page.evaluate("() => localStorage.length") == 0

        # the live map: the avenue two contributors reported, coloured, named, in the list
        page.wait_for_selector('#congested-list li[data-edge="140"]')
        row = page.locator('#congested-list li[data-edge="140"]')
        assert "Avenida Desembargador André da Rocha" in row.inner_text()
        assert "2 contributors" in row.inner_text()
        assert page.locator("path.congestion-edge").count() >= 1
        assert page.locator(".congestion-legend li").count() == 5

        # confirm it: the decision lands in the audit log
        row.locator('button[data-action="confirm"]').click()
        page.wait_for_selector('#audit-body tr[data-action="edge.confirmed"]')
        assert USERNAME in page.locator('#audit-body tr[data-action="edge.confirmed"]').inner_text()

        # an incident on a street selected on the map: declare, edit, end
        page.click("#select-streets")
        assert page.get_attribute("#select-streets", "aria-pressed") == "true"
        page.locator("path.congestion-edge").first.click()
        page.wait_for_selector('#incident-streets[data-count="1"]')
        page.fill("#incident-note", "water main repair")
        page.click("#incident-submit")
        page.wait_for_selector("#incident-list li.incident")
        incident = page.locator("#incident-list li.incident").first
        assert "water main repair" in incident.inner_text()
        assert "Active trips touched" in incident.inner_text()
        incident.locator('button[data-action="edit"]').click()
        page.select_option("#incident-kind", "incident")
        page.select_option("#incident-level", "3")
        page.fill("#incident-note", "water main repair, one lane open")
        page.click("#incident-submit")
        page.wait_for_function(
            "() => document.querySelector('#incident-list li.incident')?.dataset.kind"
            " === 'incident'"
        )
        assert "one lane open" in page.locator("#incident-list li.incident").first.inner_text()
        page.locator('#incident-list li.incident button[data-action="end"]').first.click()
        page.wait_for_selector('#incident-list[data-state="empty"]')
        page.wait_for_selector('#audit-body tr[data-action="incident.ended"]')
        actions = page.eval_on_selector_all(
            "#audit-body tr", "rows => rows.map(r => r.dataset.action)"
        )
        assert {"incident.declared", "incident.updated", "incident.ended"} <= set(actions)

        # feed health: simulated feeds never show a green "ok"
        page.wait_for_selector("#feed-list li.feed-health")
        states = page.eval_on_selector_all("#feed-list li", "ls => ls.map(l => l.dataset.state)")
        assert states
        assert "ok" not in states  # every feed of the test city is simulated or a replay
        # charts drawn by uPlot, the time slider
        page.wait_for_selector("#chart-reports canvas")
        assert page.locator(".ops-chart canvas").count() >= 4
        assert page.get_attribute("#time-slider", "type") == "range"

        w.expected_refusals(401, "/api/v1/operators/token")  # the wrong password above
        w.check("operator-desktop")
        # no request ever carried the token in its URL
        assert not [u for u in w.requests if token in u]
        assert sum(v for v in w.scripts.values() if v > 0) <= OWN_JS_BUDGET_GZ

        page.click("#ops-logout")
        page.wait_for_selector('body[data-view="login"]')
        assert page.evaluate("() => sessionStorage.getItem('correspondance.operator')") is None
        revoked = httpx.get(
            f"{base_url}/api/v1/operators/me",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert revoked.status_code == 401


def test_operator_dashboard_on_a_phone_and_a_tablet(chromium: Any, base_url: str) -> None:
    for name, viewport in (("operator-phone", PHONE), ("operator-tablet", TABLET)):
        with watched_page(chromium, base_url, viewport) as w:
            w.page.goto("/operator")
            w.page.wait_for_selector('body[data-view="login"]')
            sign_in(w)
            w.page.wait_for_selector('body[data-view="dashboard"][data-ready="1"]', timeout=60_000)
            # nothing wider than the screen
            overflow = w.page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 1, f"{name}: {overflow} px wider than the screen"
            w.check(name)


def test_repeated_wrong_passwords_lock_the_sign_in(chromium: Any, base_url: str) -> None:
    with watched_page(chromium, base_url, DESKTOP) as w:
        page = w.page
        page.goto("/operator")
        page.wait_for_selector('body[data-view="login"]')
        for _ in range(5):
            page.fill("#login-username", "locked-out")
            page.fill("#login-password", "wrong password, again")
            page.click("#login-submit")
            page.wait_for_function("() => !document.querySelector('#login-submit').disabled")
        page.fill("#login-password", "wrong password, again")
        page.click("#login-submit")
        page.wait_for_function(
            "() => document.querySelector('#login-error').textContent.includes('Too many')"
        )
        # the failed logins are 401/429 answers, which Chromium logs as console errors: expected
        w.problems.messages = [
            m for m in w.problems.messages if "status of 40" not in m and "status of 429" not in m
        ]
        w.check("operator-locked")


# -- the contributor app ------------------------------------------------------------------------


def street_heading(base: str, lat: float, lon: float) -> float:
    street = httpx.get(
        f"{base}/api/v1/streets/nearest", params={"lat": lat, "lon": lon}, timeout=10
    ).json()
    heading: float = street["properties"]["directions"][0]["heading"]
    return heading


def test_contributor_reports_on_a_phone(chromium: Any, base_url: str) -> None:
    lat, lon = -30.0279, -51.2285  # a street of Centro Histórico nobody else reports here
    heading = street_heading(base_url, lat, lon)
    geolocation = {"latitude": lat, "longitude": lon}
    with watched_page(
        chromium, base_url, PHONE, geolocation=geolocation, permissions=["geolocation"]
    ) as w:
        page = w.page
        assert interactive_ms(page, "/") < 2000
        page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
        page.click("#report-open")
        assert page.locator("#report").is_visible()

        # one tap at the device's position, alone: received, needs one more
        page.click('button[data-kind="closure"]')
        page.wait_for_selector(
            '#report-receipt[data-state="received"]:has-text("needs one more")', timeout=20_000
        )
        receipt = page.text_content("#report-receipt")
        assert "different person on a different network" in receipt
        # the receipt is below the kind buttons: it is scrolled into sight, not left under the fold
        box = page.locator("#report-receipt").bounding_box()
        assert box is not None
        assert box["y"] >= 0
        assert box["y"] + box["height"] <= PHONE["height"] + 1
        # a second, independent contributor agrees: the next report counts
        body = {"lat": lat, "lon": lon, "heading": heading, "kind": "congestion", "level": 3}
        assert post_report(base_url, body, "127.0.0.41").status_code == 202
        page.check('#report-levels input[value="3"]')
        page.click('button[data-kind="congestion"]')
        page.wait_for_selector('#report-receipt[data-state="counted"]', timeout=20_000)
        page.wait_for_function("() => Number(document.body.dataset.traffic) >= 1")
        assert page.locator("path.congestion-edge").count() >= 1

        # My reports: list, export, delete one, delete all
        page.click("#my-reports summary")
        page.wait_for_selector('#my-reports-list[data-count="2"]')
        assert page.get_attribute('#my-reports a[href="/privacy"]', "href") == "/privacy"
        with page.expect_download() as download:
            page.click("#my-reports-export")
        exported = json.loads(Path(download.value.path()).read_text())
        assert len(exported["reports"]) == 2
        assert {r["kind"] for r in exported["reports"]} == {"closure", "congestion"}
        page.locator("#my-reports-list li button").first.click()
        page.wait_for_selector('#my-reports-list[data-count="1"]')

        # offline: the report waits on the phone and goes through the batch endpoint later
        batches: list[str] = []
        page.on("request", lambda r: batches.append(r.url) if "/reports/batch" in r.url else None)
        page.context.set_offline(True)
        page.click('button[data-kind="incident"]')
        page.wait_for_selector('#report-receipt[data-state="queued"]')
        assert page.get_attribute("#report-queue", "data-count") == "1"
        page.context.set_offline(False)
        page.wait_for_selector("#report-queue[hidden]", state="attached", timeout=20_000)
        assert batches
        assert "1 saved report sent and received" in page.text_content("#report-receipt")
        page.click("#my-reports summary")  # close and reopen: reload the list
        page.click("#my-reports summary")
        page.wait_for_selector('#my-reports-list[data-count="2"]')
        page.click("#my-reports-delete")
        page.wait_for_selector('#my-reports-list[data-count="0"]', state="attached")

        # a refusal in plain words: outside the city
        page.context.set_geolocation({"latitude": LISBON[0], "longitude": LISBON[1]})
        page.click("#report-locate")
        page.wait_for_function(
            "() => document.querySelector('#report-where').textContent.includes('outside')"
        )
        w.expected_refusals(422, "/api/v1/streets/nearest")
        w.check("contributor-phone")
        own = sum(v for v in w.scripts.values() if v > 0)
        assert 0 < own <= OWN_JS_BUDGET_GZ


def test_contributor_taps_a_street_on_a_desktop(chromium: Any, base_url: str) -> None:
    jam_on_avenue(base_url)
    with watched_page(chromium, base_url, DESKTOP) as w:
        page = w.page
        page.goto("/")
        page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
        page.wait_for_selector("path.congestion-edge")  # commuters see the fused layer
        page.click("#report-open")
        page.click("#report-tap")
        assert "Tap the street" in page.text_content("#report-where")
        page.locator("path.congestion-edge").first.click()
        page.wait_for_selector('#report-where[data-ready="1"]')
        assert "At the street you tapped on " in page.text_content("#report-where")
        # the tap chose a street, it did not set a trip's origin
        assert page.input_value("#from") == ""
        page.click('button[data-kind="clear"]')
        page.wait_for_function(
            "() => ['received', 'counted']"
            ".includes(document.querySelector('#report-receipt').dataset.state)",
            timeout=20_000,
        )
        w.check("contributor-desktop")


# -- API docs, offline --------------------------------------------------------------------------


def test_api_docs_render_with_no_request_leaving_the_server(chromium: Any, base_url: str) -> None:
    with watched_page(chromium, base_url, DESKTOP) as w:
        w.page.goto("/docs")
        w.page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "Correspondance" in w.page.text_content(".swagger-ui .info .title")
        w.page.wait_for_selector(".opblock-tag", timeout=30_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        w.page.screenshot(path=str(ARTIFACTS / "docs-swagger.png"))
        w.page.goto("/redoc")
        w.page.wait_for_selector("redoc h1, .api-content h1", timeout=60_000)
        w.page.screenshot(path=str(ARTIFACTS / "docs-redoc.png"))
        w.problems.assert_none()
        assert w.external() == [], w.external()


# -- the app's own JavaScript --------------------------------------------------------------------


def test_the_apps_own_javascript_is_at_most_200_kb_gzipped() -> None:
    frontend = REPO_ROOT / "frontend"
    files = [*frontend.glob("*.js"), *frontend.glob("operator/*.js"), *frontend.glob("docs/*.js")]
    sizes = {
        p.relative_to(frontend).as_posix(): len(gzip.compress(p.read_bytes(), 9)) for p in files
    }
    total = sum(sizes.values())
    print(f"own JavaScript, gzipped: {total / 1024:.1f} KB over {len(sizes)} files")
    assert {"app.js", "report.js", "congestion.js", "operator/main.js"} <= set(sizes)
    assert 0 < total <= OWN_JS_BUDGET_GZ, sizes
    # the measurement is not vacuous: the map library alone is larger than any one of ours
    leaflet = frontend / "node_modules" / "leaflet" / "dist" / "leaflet-src.esm.js"
    assert len(gzip.compress(leaflet.read_bytes(), 9)) > max(sizes.values())


def test_operator_dashboard_in_french(chromium: Any, base_url: str) -> None:
    """The dashboard follows the browser's language (fr) and switches in the page (nb)."""
    jam_on_avenue(base_url)
    with watched_page(chromium, base_url, DESKTOP, locale="fr-FR") as w:
        page = w.page
        page.goto("/operator")
        page.wait_for_selector('html[lang="fr"]', state="attached")  # the catalogue is loaded
        page.wait_for_selector('body[data-view="login"]')
        assert page.text_content("#login-submit") == "Se connecter"
        assert page.text_content("#login-title") == "Connexion opérateur"
        sign_in(w, "not the password at all")
        page.wait_for_selector("#login-error:not([hidden])")
        assert page.text_content("#login-error") == "Identifiant ou mot de passe incorrect."
        w.expected_refusals(401, "/api/v1/operators/token")
        sign_in(w)
        page.wait_for_selector('body[data-view="dashboard"][data-ready="1"]', timeout=60_000)
        page.wait_for_selector('#congested-list li[data-edge="140"]')
        row = page.locator('#congested-list li[data-edge="140"]').inner_text()
        assert re.search(r"\b\d+ contributeurs\b", row), row  # earlier scenarios add reports
        assert page.text_content("#congested-title") == "Rues encombrées"
        assert "Connecté en tant que" in page.text_content("#ops-user")  # type: ignore[operator]
        assert "moins de" in page.text_content("#kpi-note")  # type: ignore[operator]
        w.check("operator-fr-desktop")

        page.select_option("#ops-lang", "nb")  # the dashboard starts again in Norwegian
        page.wait_for_selector('html[lang="nb"]', state="attached")
        page.wait_for_selector('body[data-view="dashboard"][data-ready="1"]', timeout=60_000)
        assert page.text_content("#congested-title") == "Gater med kø"
        w.problems.assert_none()
