// Leaflet map: our own labelled OSM base map (vector tiles drawn by MapLibre GL, glbase.js; plain
// street lines where the browser has no WebGL), transit stops, origin/destination pins and the
// selected itinerary. No external tile server.
import { t } from "./i18n.js";
import * as L from "/static/node_modules/leaflet/dist/leaflet-src.esm.js";
import { API, getJSON } from "./api.js";
import { routeColour, legKind } from "./format.js";
import { GLBaseLayer, loadMapLibre, webglAvailable } from "./glbase.js";

const MAJOR = new Set(["motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link"]);
const SECONDARY = new Set(["secondary", "secondary_link", "tertiary", "tertiary_link"]);
const PATHLIKE = new Set(["footway", "path", "pedestrian", "cycleway", "steps", "track", "bridleway", "platform", "corridor"]);
const HIDDEN = new Set(["proposed", "construction", "abandoned", "razed", "rest_area", "services", "elevator"]);

// Drawing order (bottom → top) and minimum zoom per class group.
const GROUPS = [
  { key: "path", minZoom: 15 },
  { key: "minor", minZoom: 13 },
  { key: "secondary", minZoom: 0 },
  { key: "major", minZoom: 0 },
];
const STOPS_MIN_ZOOM = 15;
// setBasemap resolves once the vector map has drawn, or after this long on a very slow device
const BASEMAP_IDLE_WAIT_MS = 15_000;

function groupOf(highway) {
  if (HIDDEN.has(highway)) return null;
  if (MAJOR.has(highway)) return "major";
  if (SECONDARY.has(highway)) return "secondary";
  if (PATHLIKE.has(highway)) return "path";
  return "minor";
}

export function roadStyle(highway) {
  switch (highway) {
    case "motorway": case "trunk":
      return { color: "#e39a4f", weight: 4.5, opacity: 1 };
    case "motorway_link": case "trunk_link":
      return { color: "#e39a4f", weight: 2.5, opacity: 1 };
    case "primary":
      return { color: "#f2c46d", weight: 3.5, opacity: 1 };
    case "primary_link":
      return { color: "#f2c46d", weight: 2, opacity: 1 };
    case "secondary": case "secondary_link":
      return { color: "#f6dc97", weight: 2.5, opacity: 1 };
    case "tertiary": case "tertiary_link":
      return { color: "#c9c3b8", weight: 2, opacity: 1 };
    case "footway": case "path": case "pedestrian": case "cycleway": case "steps": case "track":
    case "bridleway": case "platform": case "corridor":
      return { color: "#9a8f80", weight: 1, opacity: 0.45, dashArray: "3 3" };
    case "service":
      return { color: "#d3cec6", weight: 0.8, opacity: 1 };
    default: // residential, living_street, unclassified, road, …
      return { color: "#cdc7bd", weight: 1.2, opacity: 1 };
  }
}

/** Line widths grow with the zoom so that streets keep reading as streets when zoomed in. */
function widthScale(zoom) {
  return Math.min(4, Math.max(0.6, 2 ** ((zoom - 14) * 0.5)));
}

function scaledStyle(highway, scale) {
  const st = roadStyle(highway);
  return { ...st, weight: st.weight * scale };
}

function pinIcon(kind) {
  return L.divIcon({
    className: "pin-icon",
    html: `<div class="pin pin-${kind}"></div>`,
    iconSize: [22, 22],
    iconAnchor: [11, 27],
  });
}

export class MapView {
  constructor(element, { onTap, onDrag }) {
    this.map = L.map(element, {
      zoomControl: true,
      attributionControl: true,
      preferCanvas: false,
      zoomSnap: 0.25,
      minZoom: 9,
      maxZoom: 19,
      tapTolerance: 15,
    });
    this.map.attributionControl.setPrefix("");
    this.map.createPane("basemap").style.zIndex = "250";
    this.map.createPane("stops").style.zIndex = "350";
    this.map.createPane("route").style.zIndex = "450";
    this.baseRenderer = L.canvas({ pane: "basemap", padding: 0.3 });
    this.stopsRenderer = L.canvas({ pane: "stops", padding: 0.3 });
    this.routeRenderer = L.svg({ pane: "route", padding: 0.3 });
    this.groups = {};
    this.glLayer = null;
    this.stopsLayer = null;
    this.routeLayer = L.layerGroup().addTo(this.map);
    this.suggestionLayer = L.layerGroup().addTo(this.map);
    this.liveMarker = null;
    this.routeBounds = null;
    this.markers = { from: null, to: null };
    this.attribution = "";
    this.onDrag = onDrag;
    this.map.on("click", (e) => onTap(e.latlng));
    this.scale = 1;
    this.map.on("zoomend", () => this.updateVisibility());
  }

  showCity(city) {
    const [minLon, minLat, maxLon, maxLat] = city.bbox;
    const bounds = L.latLngBounds([minLat, minLon], [maxLat, maxLon]);
    this.map.setMaxBounds(bounds.pad(0.5));
    this.map.fitBounds(bounds, { animate: false });
    if (this.attribution) this.map.attributionControl.removeAttribution(this.attribution);
    this.attribution = (city.attribution ?? []).map(escapeAttr).join(" | ");
    if (this.attribution) this.map.attributionControl.addAttribution(this.attribution);
  }

  clearBasemap() {
    for (const layer of Object.values(this.groups)) layer.remove();
    this.groups = {};
    this.glLayer?.remove();
    this.glLayer = null;
    this.stopsLayer?.remove();
    this.stopsLayer = null;
    delete this.map.getContainer().dataset.basemap;
  }

  /** The MapLibre map drawing the base map (null without WebGL, or before setBasemap). */
  get glMap() {
    return this.glLayer?.getGLMap() ?? null;
  }

  /**
   * Draw a city's base map: the labelled vector map (style, tiles and fonts from this app) where
   * the browser has WebGL, its street lines otherwise. Resolves once the map is drawn (so no
   * request of it is still in flight); throws an ApiError when the server cannot give it.
   */
  async setBasemap(cityId) {
    this.clearBasemap();
    const token = (this.basemapToken = (this.basemapToken ?? 0) + 1); // a newer city wins
    const id = encodeURIComponent(cityId);
    const container = this.map.getContainer();
    if (webglAvailable()) {
      let style = null;
      let maplibre = null;
      try {
        [style, maplibre] = await Promise.all([getJSON(`${API}/cities/${id}/style.json`), loadMapLibre()]);
      } catch {
        style = null; // no vector map from this server: its street lines still make a map
      }
      if (token !== this.basemapToken) return;
      if (style) {
        const layer = new GLBaseLayer({ pane: "basemap", style, maplibre }).addTo(this.map);
        if (!layer.failed) {
          this.glLayer = layer;
          container.dataset.basemap = "vector";
          await layer.whenIdle(BASEMAP_IDLE_WAIT_MS); // "ready" means the map is drawn
          return;
        }
        layer.remove();
      }
    }
    const lines = await getJSON(`${API}/cities/${id}/basemap`);
    if (token !== this.basemapToken) return;
    this.setStreetLines(lines);
    container.dataset.basemap = "lines";
  }

  /** Street lines on a canvas (GeoJSON from /basemap): the base map without WebGL. */
  setStreetLines(geojson) {
    this.scale = widthScale(this.map.getZoom());
    const buckets = { path: [], minor: [], secondary: [], major: [] };
    for (const f of geojson?.features ?? []) {
      const t = f?.geometry?.type;
      if (t !== "LineString" && t !== "MultiLineString") continue;
      const g = groupOf(f.properties?.highway ?? "");
      if (g) buckets[g].push(f);
    }
    for (const { key } of GROUPS) {
      this.groups[key] = L.geoJSON({ type: "FeatureCollection", features: buckets[key] }, {
        renderer: this.baseRenderer,
        interactive: false,
        style: (f) => scaledStyle(f.properties?.highway ?? "", this.scale),
      });
    }
    this.updateVisibility();
    return Object.values(buckets).reduce((n, b) => n + b.length, 0);
  }

  setStops(geojson) {
    this.stopsLayer?.remove();
    this.stopsLayer = L.geoJSON(geojson, {
      filter: (f) => f?.geometry?.type === "Point",
      pointToLayer: (f, latlng) => L.circleMarker(latlng, {
        renderer: this.stopsRenderer,
        radius: stopRadius(this.map.getZoom()),
        weight: 1,
        color: "#ffffff",
        fillColor: "#3b5b7a",
        fillOpacity: 0.9,
        interactive: true,
        bubblingMouseEvents: true, // a tap on a stop still sets the origin/destination there
      }).bindTooltip(String(f.properties?.stop_name ?? f.properties?.stop_id ?? t("map.stop")), { direction: "top", offset: [0, -4] }),
    });
    this.updateVisibility();
  }

  updateVisibility() {
    const z = this.map.getZoom();
    const scale = widthScale(z);
    if (Math.abs(scale - this.scale) > 0.05) {
      this.scale = scale;
      for (const layer of Object.values(this.groups)) {
        layer.eachLayer((l) => l.setStyle(scaledStyle(l.feature?.properties?.highway ?? "", scale)));
      }
      this.stopsLayer?.eachLayer((l) => l.setRadius(stopRadius(z)));
    }
    const want = GROUPS.filter((g) => this.groups[g.key] && z >= g.minZoom).map((g) => g.key);
    const have = GROUPS.filter((g) => this.groups[g.key] && this.map.hasLayer(this.groups[g.key])).map((g) => g.key);
    if (want.join() !== have.join()) {
      // One shared canvas draws in insertion order: re-add bottom → top so major roads stay on top.
      for (const key of have) this.groups[key].remove();
      for (const key of want) this.groups[key].addTo(this.map);
    }
    if (this.stopsLayer) {
      const show = z >= STOPS_MIN_ZOOM;
      if (show && !this.map.hasLayer(this.stopsLayer)) this.stopsLayer.addTo(this.map);
      if (!show && this.map.hasLayer(this.stopsLayer)) this.stopsLayer.remove();
    }
  }

  setMarker(kind, latlon) {
    const existing = this.markers[kind];
    if (!latlon) {
      existing?.remove();
      this.markers[kind] = null;
      return;
    }
    if (existing) {
      existing.setLatLng(latlon);
      return;
    }
    const marker = L.marker(latlon, {
      icon: pinIcon(kind),
      draggable: true,
      autoPan: true,
      keyboard: true,
      title: kind === "from" ? t("map.origin_drag") : t("map.destination_drag"),
      alt: kind === "from" ? t("map.origin") : t("map.destination"),
      riseOnHover: true,
    }).addTo(this.map);
    marker.on("dragend", () => {
      const ll = marker.getLatLng();
      this.onDrag(kind, ll);
    });
    this.markers[kind] = marker;
  }

  clearRoute() {
    this.routeLayer.clearLayers();
    this.routeBounds = null;
  }

  drawItinerary(itinerary, { fit = true } = {}) {
    this.clearRoute();
    const { lines, all } = drawnLegs(itinerary);
    for (const { leg, latlngs, kind } of lines) {
      const shared = leg.simulated ? " leg-simulated" : "";
      if (kind === "drive") {
        // Car / car-share: a dark "road" with a dashed white centre line.
        L.polyline(latlngs, {
          renderer: this.routeRenderer, color: "#ffffff", weight: 10, opacity: 0.9, className: "leg-casing", interactive: false,
        }).addTo(this.routeLayer);
        L.polyline(latlngs, {
          renderer: this.routeRenderer, color: routeColour(leg), weight: 7, opacity: 1, lineCap: "round",
          className: `leg-line leg-drive leg-${leg.mode}${shared}`, interactive: false,
        }).addTo(this.routeLayer);
        L.polyline(latlngs, {
          renderer: this.routeRenderer, color: "#ffffff", weight: 1.5, opacity: 0.95, dashArray: "6 6",
          className: "leg-drive-centre", interactive: false,
        }).addTo(this.routeLayer);
        this.legEnds(latlngs, routeColour(leg));
      } else if (kind === "bike") {
        // Bike / bike-share / scooter: a teal dashed line on a white casing.
        L.polyline(latlngs, {
          renderer: this.routeRenderer, color: "#ffffff", weight: 8, opacity: 0.9, className: "leg-casing", interactive: false,
        }).addTo(this.routeLayer);
        L.polyline(latlngs, {
          renderer: this.routeRenderer, color: routeColour(leg), weight: 4.5, opacity: 1, dashArray: "10 5", lineCap: "butt",
          className: `leg-line leg-bike leg-${leg.mode}${shared}`, interactive: false,
        }).addTo(this.routeLayer);
        this.legEnds(latlngs, routeColour(leg));
      } else if (kind === "walk") {
        L.polyline(latlngs, {
          renderer: this.routeRenderer, color: "#5f6368", weight: 4, opacity: 0.95, dashArray: "1 8",
          lineCap: "round", className: "leg-line leg-walk", interactive: false,
        }).addTo(this.routeLayer);
      } else {
        const colour = routeColour(leg);
        L.polyline(latlngs, {
          renderer: this.routeRenderer, color: "#ffffff", weight: 9, opacity: 0.9, className: "leg-casing", interactive: false,
        }).addTo(this.routeLayer);
        L.polyline(latlngs, {
          renderer: this.routeRenderer, color: colour, weight: 5.5, opacity: 1,
          className: `leg-line leg-transit leg-${leg.mode}${shared}`, interactive: false,
        }).addTo(this.routeLayer);
        this.legEnds(latlngs, colour);
      }
    }
    if (all.length && fit) this.map.fitBounds(L.latLngBounds(all), { padding: [28, 28], maxZoom: 17 });
    this.routeBounds = all.length ? L.latLngBounds(all) : null;
  }

  /** A suggested itinerary (live trips): dashed lines beside the current plan, and where to switch. */
  drawSuggestion(itinerary, switchAt) {
    this.clearSuggestion();
    const { lines, all } = drawnLegs(itinerary);
    for (const { leg, latlngs, kind } of lines) {
      // Transit in its route colour, everything else in the suggestion card's amber; dashed on a white casing.
      const colour = kind === "transit" ? routeColour(leg) : "#c77700";
      const weight = kind === "walk" ? 3 : 5;
      L.polyline(latlngs, {
        renderer: this.routeRenderer, color: "#ffffff", weight: weight + 3, opacity: 0.85, className: "leg-casing", interactive: false,
      }).addTo(this.suggestionLayer);
      L.polyline(latlngs, {
        renderer: this.routeRenderer, color: colour, weight, opacity: 1, dashArray: "8 7", lineCap: "butt",
        className: `leg-suggested leg-suggested-${kind}${leg.simulated ? " leg-simulated" : ""}`, interactive: false,
      }).addTo(this.suggestionLayer);
    }
    if (Number.isFinite(switchAt?.lat) && Number.isFinite(switchAt?.lon)) {
      L.circleMarker([switchAt.lat, switchAt.lon], {
        renderer: this.routeRenderer, radius: 7, weight: 3, color: "#b26a00", fillColor: "#fff4e5", fillOpacity: 1,
        className: "switch-at-marker",
      }).bindTooltip(t("map.switch_here", { place: String(switchAt.here || !switchAt.name ? t("trip.suggestion.here") : switchAt.name) }), { direction: "top", offset: [0, -6] }).addTo(this.suggestionLayer);
    }
    if (all.length) {
      const bounds = L.latLngBounds(all);
      if (this.routeBounds) bounds.extend(this.routeBounds);
      this.map.fitBounds(bounds, { padding: [28, 28], maxZoom: 17 });
    }
  }

  clearSuggestion() {
    this.suggestionLayer.clearLayers();
  }

  /** The traveller's position on a live trip (from the timetable or from the device). */
  setLivePosition(latlon, title = t("map.you_are_here")) {
    if (!latlon) {
      this.liveMarker?.remove();
      this.liveMarker = null;
      return;
    }
    if (!this.liveMarker) {
      this.liveMarker = L.marker(latlon, {
        icon: L.divIcon({ className: "live-position-icon", html: '<div class="live-position"></div>', iconSize: [20, 20], iconAnchor: [10, 10] }),
        interactive: false, keyboard: false, zIndexOffset: 1000,
      }).addTo(this.map);
    } else {
      this.liveMarker.setLatLng(latlon);
    }
    this.liveMarker.getElement()?.setAttribute("title", title);
  }

  clearTrip() {
    this.clearSuggestion();
    this.setLivePosition(null);
  }

  /** White dots with a coloured ring at both ends of a ridden leg (stops, stations, vehicles, car parks). */
  legEnds(latlngs, colour) {
    for (const end of [latlngs[0], latlngs[latlngs.length - 1]]) {
      L.circleMarker(end, {
        renderer: this.routeRenderer, radius: 4.5, weight: 2.5, color: colour, fillColor: "#ffffff", fillOpacity: 1,
        className: "leg-stop", interactive: false,
      }).addTo(this.routeLayer);
    }
  }

  invalidateSize() {
    this.map.invalidateSize();
  }
}

/** [[lat, lon], …] of a leg: its geometry, or a straight line between its ends. */
function legLatLngs(leg) {
  const coords = leg?.geometry?.coordinates;
  if (Array.isArray(coords) && coords.length >= 2) return coords.map(([lon, lat]) => [lat, lon]);
  if (leg?.from && leg?.to) return [[leg.from.lat, leg.from.lon], [leg.to.lat, leg.to.lon]];
  return null;
}

/** The legs of an itinerary that can be drawn, with their points and kind, and all points. */
function drawnLegs(itinerary) {
  const lines = [];
  const all = [];
  for (const leg of itinerary?.legs ?? []) {
    const latlngs = legLatLngs(leg);
    if (!latlngs) continue;
    all.push(...latlngs);
    lines.push({ leg, latlngs, kind: legKind(leg.mode) });
  }
  return { lines, all };
}

function stopRadius(zoom) {
  return Math.min(6, Math.max(2.5, 2.5 + (zoom - 15)));
}

function escapeAttr(s) {
  return String(s).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]));
}
