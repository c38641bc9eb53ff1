// The live congestion layer, shared by the commuter page and the operator dashboard: fused,
// k-anonymous congestion and closures (GET /api/v1/congestion or the operators' GeoJSON) as
// coloured street lines with their names, a legend, and the change socket (WS /ws/v1/congestion).
import { t } from "./i18n.js";
import * as L from "/static/node_modules/leaflet/dist/leaflet-src.esm.js";

// Levels follow crowdsource/fusion.py: ×1.3, ×1.8, ×2.5, ×4.0; a closure is infinite.
const LEVEL_MULTIPLIER = [[4, 4.0], [3, 2.5], [2, 1.8], [1, 1.3]];
export const LEVELS = [
  { key: "1", colour: "#c98a00" },
  { key: "2", colour: "#e2620b" },
  { key: "3", colour: "#c0262d" },
  { key: "4", colour: "#7a1020" },
  { key: "closed", colour: "#1b1f23" },
];
const COLOUR = Object.fromEntries(LEVELS.map((l) => [l.key, l.colour]));

/** The level (1–4) a multiplier stands for, or "closed" (0 or infinite, as the history sends it). */
export function levelOfMultiplier(m) {
  if (m === null || m === 0 || !Number.isFinite(m)) return "closed";
  return String(LEVEL_MULTIPLIER.find(([, min]) => m >= min - 1e-9)?.[0] ?? 1);
}

/** The level key of a feature's properties: "1".."4" or "closed". */
export function levelKey(props) {
  if (props?.closed) return "closed";
  const level = Number(props?.level);
  return level >= 1 && level <= 4 ? String(level) : levelOfMultiplier(Number(props?.multiplier));
}

export function levelLabel(key) {
  return LEVELS.some((l) => l.key === key) ? t(`traffic.level.${key}`) : t("traffic.congested");
}

export function streetName(props) {
  return props?.name ? String(props.name) : t("traffic.unnamed");
}

/** The legend as a DOM element: one swatch per level. */
export function legendElement({ title = t("traffic.title") } = {}) {
  const box = document.createElement("div");
  box.className = "congestion-legend";
  const heading = document.createElement("p");
  heading.className = "legend-title";
  heading.textContent = title;
  const list = document.createElement("ul");
  for (const level of LEVELS) {
    const li = document.createElement("li");
    li.dataset.level = level.key;
    const swatch = document.createElement("span");
    swatch.className = `legend-swatch${level.key === "closed" ? " legend-closed" : ""}`;
    swatch.style.background = level.colour;
    swatch.setAttribute("aria-hidden", "true");
    li.append(swatch, document.createTextNode(levelLabel(level.key)));
    list.append(li);
  }
  box.append(heading, list);
  return box;
}

export class CongestionLayer {
  /** `onSelect(feature)` is called when a congested street is clicked (operators confirm/dismiss). */
  constructor(map, { onSelect = null } = {}) {
    this.map = map;
    if (!map.getPane("congestion")) map.createPane("congestion").style.zIndex = "420";
    this.renderer = L.svg({ pane: "congestion", padding: 0.3 });
    this.group = L.layerGroup().addTo(map);
    this.onSelect = onSelect;
    this.count = 0;
  }

  /** Draw a FeatureCollection of congested edges (replacing what was drawn). */
  setData(geojson) {
    this.group.clearLayers();
    const features = (geojson?.features ?? []).filter((f) => f?.geometry?.type === "LineString");
    for (const f of features) {
      const key = levelKey(f.properties);
      const latlngs = f.geometry.coordinates.map(([lon, lat]) => [lat, lon]);
      // a dark casing keeps the line apart from the base map's orange main roads
      L.polyline(latlngs, {
        renderer: this.renderer, color: "#ffffff", weight: 9, opacity: 0.85, lineCap: "round",
        className: "congestion-casing", interactive: false,
      }).addTo(this.group);
      const line = L.polyline(latlngs, {
        renderer: this.renderer,
        color: COLOUR[key],
        weight: key === "closed" ? 6 : 5,
        opacity: 0.9,
        dashArray: key === "closed" ? "6 5" : null,
        lineCap: "round",
        className: `congestion-edge congestion-${key}`,
        interactive: true,
        bubblingMouseEvents: !this.onSelect,
      });
      line.bindTooltip(`${streetName(f.properties)} — ${levelLabel(key)}`, { sticky: true });
      if (this.onSelect) {
        line.on("click", (e) => {
          L.DomEvent.stopPropagation(e);
          this.onSelect(f, e.latlng);
        });
      }
      line.addTo(this.group);
    }
    this.count = features.length;
    return this.count;
  }

  clear() {
    this.group.clearLayers();
    this.count = 0;
  }
}

/** Follow WS /ws/v1/congestion: `onChange()` on each nudge (and once the socket opens);
 *  reconnects with backoff. Returns a function that stops it. */
export function watchCongestion(cityId, onChange) {
  let ws = null;
  let stopped = false;
  let delay = 1000;
  let timer = null;
  const open = () => {
    if (stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${location.host}/ws/v1/congestion?city=${encodeURIComponent(cityId)}`);
    ws.addEventListener("open", () => { delay = 1000; onChange(); });
    ws.addEventListener("message", (event) => {
      try {
        if (JSON.parse(event.data)?.type === "congestion.changed") onChange();
      } catch {
        // not ours: ignore
      }
    });
    ws.addEventListener("close", () => {
      if (stopped) return;
      timer = setTimeout(open, delay + Math.random() * 500);
      delay = Math.min(delay * 2, 30_000);
    });
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    ws?.close();
  };
}
