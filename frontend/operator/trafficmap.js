// The dashboard's map: our own base map (MapView), the live congestion layer, a time slider over
// the per-minute history, and street selection for incidents (a click picks the nearest street).
import * as L from "/static/node_modules/leaflet/dist/leaflet-src.esm.js";
import { MapView } from "../mapview.js";
import { API, getJSON } from "../api.js";
import { CongestionLayer, legendElement, levelOfMultiplier, levelKey, levelLabel, streetName } from "../congestion.js";
import { has, locale, t } from "../i18n.js";

export class TrafficMap {
  /** `onCongestedClick(feature, latlng)` when a congested street is clicked (not selecting);
   *  `onSelectionChange(streets)` when the selection for an incident changes. */
  constructor(session, { onCongestedClick, onSelectionChange, onError }) {
    this.session = session;
    this.city = null;
    this.view = new MapView(document.getElementById("ops-map"), {
      onTap: (latlng) => this.onTap(latlng),
      onDrag: () => {},
    });
    this.map = this.view.map;
    this.layer = new CongestionLayer(this.map, {
      onSelect: (feature, latlng) => {
        if (this.selecting) this.onTap(latlng);
        else onCongestedClick(feature, latlng);
      },
    });
    this.selectionLayer = L.layerGroup().addTo(this.map);
    this.selected = new Map(); // edge → street feature (from /streets/nearest)
    this.selecting = false;
    this.onSelectionChange = onSelectionChange;
    this.onError = onError;
    this.live = null; // the latest live GeoJSON
    this.history = null; // {frames, features}
    this.frameIndex = -1; // -1: live
    document.getElementById("ops-legend").append(legendElement({ title: t("ops.legend") }));
    this.slider = document.getElementById("time-slider");
    this.timeLabel = document.getElementById("time-label");
    this.liveButton = document.getElementById("time-live");
    this.slider.addEventListener("input", () => this.showFrame(Number(this.slider.value)));
    this.liveButton.addEventListener("click", () => this.backToLive());
  }

  async showCity(city) {
    this.city = city;
    this.view.clearBasemap();
    this.view.showCity(city);
    this.layer.clear();
    this.clearSelection();
    await this.view.setBasemap(city.id); // the same labelled base map as the commuter page
  }

  /** The live layer (the operators' GeoJSON); drawn unless the slider shows the past. */
  setLive(geojson) {
    this.live = geojson;
    if (this.frameIndex < 0) this.layer.setData(geojson);
  }

  setHistory(history) {
    this.history = history;
    const frames = history?.frames ?? [];
    this.slider.max = String(frames.length); // the last position is "live"
    if (this.frameIndex < 0) this.slider.value = String(frames.length);
    this.slider.disabled = frames.length === 0;
    this.slider.setAttribute("aria-valuetext", this.timeLabel.textContent);
  }

  showFrame(position) {
    const frames = this.history?.frames ?? [];
    if (position >= frames.length) {
      this.backToLive();
      return;
    }
    this.frameIndex = position;
    const frame = frames[position];
    const byEdge = new Map((this.history.features?.features ?? []).map((f) => [f.properties.edge, f]));
    const features = [];
    for (const [edge, multiplier] of Object.entries(frame.edges ?? {})) {
      const base = byEdge.get(Number(edge));
      if (!base) continue;
      const key = levelOfMultiplier(Number(multiplier));
      features.push({
        ...base,
        properties: { ...base.properties, closed: key === "closed", level: key === "closed" ? null : Number(key), multiplier },
      });
    }
    this.layer.setData({ type: "FeatureCollection", features });
    const when = new Date(frame.t * 1000).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
    this.timeLabel.textContent = t("ops.history", { when, count: features.length, n: features.length });
    this.slider.setAttribute("aria-valuetext", this.timeLabel.textContent);
    this.liveButton.disabled = false;
    document.body.dataset.timeView = "history";
  }

  backToLive() {
    this.frameIndex = -1;
    this.slider.value = this.slider.max;
    this.timeLabel.textContent = t("ops.time_label");
    this.slider.setAttribute("aria-valuetext", t("ops.time_label"));
    this.liveButton.disabled = true;
    document.body.dataset.timeView = "live";
    if (this.live) this.layer.setData(this.live);
  }

  // -- selecting streets for an incident ----------------------------------------------------

  setSelecting(on) {
    this.selecting = on;
    this.map.getContainer().classList.toggle("selecting", on);
  }

  async onTap(latlng) {
    if (!this.selecting || !this.city) return;
    const params = new URLSearchParams({ city: this.city.id, lat: latlng.lat.toFixed(6), lon: latlng.lng.toFixed(6) });
    let street;
    try {
      street = await getJSON(`${API}/streets/nearest?${params}`);
    } catch (e) {
      this.onError(e.message);
      return;
    }
    const edge = street.properties.edge;
    if (this.selected.has(edge)) this.selected.delete(edge);
    else this.selected.set(edge, street);
    this.drawSelection();
  }

  /** Select the streets of an incident being edited. */
  selectEdges(streets) {
    this.selected = new Map(streets.map((s) => [s.properties.edge, s]));
    this.drawSelection();
  }

  clearSelection() {
    this.selected.clear();
    this.drawSelection();
  }

  drawSelection() {
    this.selectionLayer.clearLayers();
    for (const street of this.selected.values()) {
      L.polyline(street.geometry.coordinates.map(([lon, lat]) => [lat, lon]), {
        color: "#1f6fd1", weight: 9, opacity: 0.55, className: "selected-street", interactive: false,
      }).addTo(this.selectionLayer);
    }
    this.onSelectionChange([...this.selected.values()]);
  }

  /** A popup with confirm / dismiss buttons for a congested street. */
  openDecision(feature, latlng, { onConfirm, onDismiss }) {
    const p = feature.properties;
    const box = document.createElement("div");
    box.className = "decision-popup";
    const title = document.createElement("strong");
    title.textContent = streetName(p);
    const facts = document.createElement("p");
    const voices = p.contributors === null || p.contributors === undefined
      ? (p.operator_decision ? (has(`ops.decision.${p.operator_decision}`) ? t(`ops.decision.${p.operator_decision}`) : p.operator_decision) : "")
      : t("ops.contributors", { count: p.contributors, n: p.contributors });
    facts.textContent = [levelLabel(levelKey(p)), voices].filter(Boolean).join(" · ");
    const confirm = document.createElement("button");
    confirm.type = "button";
    confirm.className = "ops-btn ops-btn-primary";
    confirm.textContent = t("ops.confirm");
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "ops-btn";
    dismiss.textContent = t("ops.dismiss");
    const popup = L.popup({ maxWidth: 260 }).setLatLng(latlng).setContent(box);
    confirm.addEventListener("click", () => { popup.close(); onConfirm(); });
    dismiss.addEventListener("click", () => { popup.close(); onDismiss(); });
    box.append(title, facts, confirm, dismiss);
    popup.openOn(this.map);
  }
}
