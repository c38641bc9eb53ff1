"""The labelled base map (issue 14) in headless Chromium, at phone and desktop sizes: MapLibre
draws our own vector tiles with street names, water, parks, rail and landmarks; every request
stays on the server; no console problem; axe-core finds nothing serious; screenshots are kept
(``CORRESPONDANCE_ARTIFACTS_DIR``). Without WebGL the map falls back to street lines."""

from __future__ import annotations

from typing import Any

import pytest

from .test_apps import DESKTOP, PHONE, watched_page

pytestmark = pytest.mark.browser

# Praça Montevidéu, in front of the city hall, downtown Porto Alegre (Leaflet zoom 17)
DOWNTOWN = (-30.0290, -51.2280)

RENDERED_JS = """async ([lat, lon, zoom]) => {
    const {mapView} = await import('/static/app.js');
    const gl = mapView.glMap;
    mapView.map.setView([lat, lon], zoom, {animate: false});
    await new Promise((r) => setTimeout(r, 50));
    if (!gl.loaded() || !gl.areTilesLoaded()) await new Promise((r) => gl.once('idle', r));
    const names = (id) => [...new Set(gl.queryRenderedFeatures({layers: [id]})
        .map((f) => f.properties.name).filter(Boolean))];
    const count = (id) => gl.queryRenderedFeatures({layers: [id]}).length;
    return {
        zoom: gl.getZoom(), streetNames: names('street-names'), areaNames: names('area-names'),
        landmarkNames: names('landmark-names'), parks: count('parks'), water: count('water'),
        rail: count('rail'), streets: count('streets'),
    };
}"""


# After animated zooms and pans, MapLibre's drawing must sit where Leaflet's overlays are: a
# point's screen position in both maps, in CSS pixels (largest gap over a few moves).
SYNC_JS = """async () => {
    const {mapView} = await import('/static/app.js');
    const m = mapView.map, gl = mapView.glMap;
    const gap = () => {
        const c = m.getCenter(), probe = [c.lat + 0.003, c.lng + 0.004];
        const a = m.latLngToContainerPoint(probe), p = gl.project([probe[1], probe[0]]);
        const g = gl.getContainer().getBoundingClientRect();
        const r = m.getContainer().getBoundingClientRect();
        return Math.hypot(g.left - r.left + p.x - a.x, g.top - r.top + p.y - a.y)
            + Math.abs(gl.getZoom() - (m.getZoom() - 1)) * 1000;
    };
    const settled = async () => {  // the zoom animation's CSS transition ends after moveend
        const until = performance.now() + 5000;
        while (gap() > 1 && performance.now() < until) await new Promise((r) => setTimeout(r, 50));
        return gap();
    };
    const moves = [
        () => m.zoomIn(1), () => m.panBy([120, -80]),
        () => m.setZoomAround(m.containerPointToLatLng([50, 60]), m.getZoom() + 1.5),
        () => m.zoomOut(2),
    ];
    const gaps = [await settled()];
    for (const move of moves) {
        const done = new Promise((r) => m.once('moveend', r));
        move();
        await done;
        gaps.push(await settled());
    }
    return gaps;
}"""


@pytest.mark.parametrize(("label", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_labelled_base_map(chromium: Any, live_server: str, label: str, viewport: Any) -> None:
    with watched_page(chromium, live_server, viewport) as w:
        w.page.goto("/")
        w.page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
        w.page.wait_for_selector('.leaflet-gl-layer[data-state="idle"]', state="attached")
        assert w.page.locator("#map").get_attribute("data-basemap") == "vector"
        idle_ms = w.page.evaluate("performance.getEntriesByName('basemap-idle')[0].startTime")
        print(f"{label}: base map idle {idle_ms:.0f} ms after navigation")
        w.check(f"basemap-{label}-city")

        gaps = w.page.evaluate(SYNC_JS)
        assert max(gaps) <= 1.0, gaps

        # Leaflet zoom 17 is MapLibre zoom 16 (512 px tiles against Leaflet's 256 px)
        here = w.page.evaluate(RENDERED_JS, [*DOWNTOWN, 17])
        assert here["zoom"] == pytest.approx(16)
        assert {"Rua Siqueira Campos", "Rua General Câmara"} & set(here["streetNames"]), here
        assert len(here["streetNames"]) >= 5, here
        assert "Praça Montevidéu" in here["areaNames"], here
        assert here["parks"] >= 1, here
        assert here["landmarkNames"], here
        w.check(f"basemap-{label}-downtown")

        # the Trensurb line (OSM railway=subway) along the harbour, and the Fonte Luminosa pool
        rail = w.page.evaluate(RENDERED_JS, [-30.0262, -51.2290, 16])
        assert rail["rail"] >= 1, rail
        water = w.page.evaluate(RENDERED_JS, [-30.0368, -51.2160, 17])
        assert water["water"] >= 1, water
        assert "Fonte Luminosa" in water["areaNames"], water

        # what Leaflet draws still sits on top: tap twice, plan, legs and pins over the map
        w.page.evaluate(
            """async () => {
                const {mapView} = await import('/static/app.js');
                mapView.map.setView([-30.0346, -51.2177], 15, {animate: false});
            }"""
        )
        box = w.page.locator("#map").bounding_box()
        w.page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
        w.page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.6)
        assert w.page.locator(".pin-from").count() == 1
        assert w.page.locator(".pin-to").count() == 1
        w.page.click("#plan")
        w.page.wait_for_selector('#itineraries[data-state="planned"]', timeout=120_000)
        assert w.page.locator("path.leg-line").count() >= 1
        w.check(f"basemap-{label}-planned")


NO_WEBGL = """(() => {
    const getContext = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
        return /webgl/.test(kind) ? null : getContext.call(this, kind, ...rest);
    };
})();"""


def test_without_webgl_the_map_is_street_lines(chromium: Any, live_server: str) -> None:
    with watched_page(chromium, live_server, PHONE) as w:
        w.page.add_init_script(NO_WEBGL)  # a browser (or device) that has no WebGL
        w.page.goto("/")
        w.page.wait_for_selector('body[data-ready="1"]', timeout=120_000)
        assert w.page.locator("#map").get_attribute("data-basemap") == "lines"
        assert w.page.locator(".leaflet-gl-layer").count() == 0
        painted = w.page.evaluate(
            """() => {
                const c = document.querySelector('.leaflet-basemap-pane canvas');
                const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < data.length; i += 4 * 7) if (data[i] > 0) n++;
                return n;
            }"""
        )
        assert painted > 500, painted
        # MapLibre was tried (the style fetched), could not get a context, and drew nothing
        assert not any("/tiles/" in u for u in w.requests)
        w.check("basemap-phone-no-webgl")
