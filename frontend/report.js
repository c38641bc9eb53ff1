// The contributor app inside the commuter page: one-tap traffic reports at the device's position
// or at a street tapped on the map, a truthful receipt, "My reports" (list, delete, export), an
// offline queue sent through /api/v1/reports/batch, and the live congestion layer for everyone.
import { API, ApiError, getJSON } from "./api.js";
import { CongestionLayer, legendElement, watchCongestion } from "./congestion.js";
import { $, el } from "./dom.js";
import { formatNumber } from "./format.js";
import { locale, t } from "./i18n.js";

const TOKEN_KEY = "correspondance.contributor";
const QUEUE_KEY = "correspondance.reports.queue";
const MAX_BATCH = 100;
const FUSION_WAIT_MS = 1800; // the server fuses once a second
const KINDS = ["congestion", "closure", "incident", "clear"];
const kindName = (kind) => (KINDS.includes(kind) ? t(`report.kind.${kind}`) : String(kind));
const levelName = (level) => t(`report.level_name.${level}`);
const COMPASS = ["n", "ne", "e", "se", "s", "sw", "w", "nw"];

function compass(heading) {
  return t(`report.compass.${COMPASS[Math.round(((heading % 360) + 360) % 360 / 45) % 8]}`);
}

/** This device's contributor token: random, made here, kept in localStorage (the server keeps
 *  only a keyed hash of it). It is what lets you export or delete your reports. */
function contributorToken() {
  let token = localStorage.getItem(TOKEN_KEY);
  if (!token || !/^[A-Za-z0-9_-]{16,128}$/.test(token)) {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    localStorage.setItem(TOKEN_KEY, token);
  }
  return token;
}

function contributorHeaders() {
  return { "X-Contributor-Token": contributorToken() };
}

/** fetch() with the contributor header; JSON in and out, errors as ApiError (like api.js). */
async function contributorJSON(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json", ...contributorHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError("offline", { status: 0, code: "offline" });
  }
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  if (!res.ok) {
    const err = parsed?.error;
    const error = new ApiError(err?.message || t("error.status", { status: res.status }), { status: res.status, code: err?.code ?? "" });
    error.retryAfter = Number(res.headers.get("Retry-After")) || null;
    throw error;
  }
  return parsed;
}

/** Why a report was refused, in plain words. */
export function refusalText(error, cityName) {
  switch (error.code) {
    case "rate_limited":
      return error.retryAfter
        ? t("report.refused.rate_limited_in", { n: formatNumber(Math.ceil(error.retryAfter / 60)) })
        : t("report.refused.rate_limited");
    case "outside_city": return t("report.refused.outside_city", { city: cityName });
    case "no_street_nearby": return t("report.refused.no_street_nearby");
    case "implausible_sequence": return t("report.refused.implausible_sequence");
    case "report_too_old": return t("report.refused.report_too_old");
    case "report_in_future": return t("report.refused.report_in_future");
    case "invalid_report": return t("report.refused.invalid_report", { reason: error.message });
    default: return t("report.refused.other", { reason: error.message });
  }
}

export class Contributor {
  /** `map`: the Leaflet map; `getCity()`: the current city ({id, name}). */
  constructor({ map, getCity }) {
    this.map = map;
    this.getCity = getCity;
    this.place = null; // {lat, lon, heading, street, directions, source}
    this.directionIndex = 0;
    this.level = null;
    this.armed = false; // the next map tap picks the street to report on
    this.k = 2;
    this.layer = new CongestionLayer(map);
    this.stopWatching = null;
    this.els = {
      open: $("report-open"), section: $("report"), close: $("report-close"), title: $("report-title"),
      locate: $("report-locate"), tap: $("report-tap"), where: $("report-where"), flip: $("report-flip"),
      receipt: $("report-receipt"), queue: $("report-queue"), mine: $("my-reports"), list: $("my-reports-list"),
      deleteAll: $("my-reports-delete"), exportBtn: $("my-reports-export"), mineStatus: $("my-reports-status"),
      legend: $("traffic-legend"),
    };
    this.els.legend.append(legendElement({ title: t("traffic.live") }));
    window.addEventListener("languagechange", () => {
      this.els.legend.replaceChildren(legendElement({ title: t("traffic.live") }));
      if (this.place) this.describePlace();
      else if (!this.armed) this.clearPlace();
      this.showQueue();
    });
    this.els.open.addEventListener("click", () => this.open());
    this.els.close.addEventListener("click", () => this.close());
    this.els.locate.addEventListener("click", () => this.locate().catch(() => {}));
    this.els.tap.addEventListener("click", () => this.arm());
    this.els.flip.addEventListener("click", () => this.flip());
    for (const button of document.querySelectorAll("#report-kinds button[data-kind]")) {
      button.addEventListener("click", () => this.send(button.dataset.kind));
    }
    for (const input of document.querySelectorAll('#report-levels input[name="report-level"]')) {
      input.addEventListener("change", () => { this.level = input.value ? Number(input.value) : null; });
    }
    this.els.mine.addEventListener("toggle", () => { if (this.els.mine.open) this.loadMine(); });
    this.els.deleteAll.addEventListener("click", () => this.deleteAll());
    this.els.exportBtn.addEventListener("click", () => this.exportMine());
    window.addEventListener("online", () => this.flush());
    this.showQueue();
  }

  // -- the congestion layer every commuter sees ----------------------------------------------

  setCity(city) {
    this.stopWatching?.();
    this.layer.clear();
    this.clearPlace();
    if (!city) return;
    this.stopWatching = watchCongestion(city.id, () => this.refreshTraffic());
    this.flush();
  }

  async refreshTraffic() {
    const city = this.getCity();
    if (!city) return null;
    try {
      const layer = await getJSON(`${API}/congestion?city=${encodeURIComponent(city.id)}`);
      if (this.getCity()?.id !== city.id) return null;
      this.k = layer.k ?? this.k;
      this.layer.setData(layer);
      document.body.dataset.traffic = String(this.layer.count);
      return layer;
    } catch {
      return null; // the traffic layer is a nicety: planning works without it
    }
  }

  // -- where -------------------------------------------------------------------------------------

  open() {
    this.els.section.hidden = false;
    this.els.open.setAttribute("aria-expanded", "true");
    document.body.dataset.reporting = "1";
    this.els.title.focus();
  }

  close() {
    this.els.section.hidden = true;
    this.els.open.setAttribute("aria-expanded", "false");
    this.armed = false;
    document.body.dataset.reporting = "0";
    this.els.open.focus();
  }

  arm() {
    this.armed = true;
    this.showWhere(t("report.where.tap"));
  }

  /** The page hands map taps here first; true when the tap was for a report. */
  takeTap(latlng) {
    if (!this.armed) return false;
    this.armed = false;
    this.pickStreet(latlng.lat, latlng.lng, null, "map").catch(() => {});
    return true;
  }

  clearPlace() {
    this.place = null;
    this.showWhere(t("report.where.none"));
  }

  showWhere(text) {
    this.els.where.textContent = text;
    this.els.flip.hidden = !(this.place?.directions?.length > 1);
  }

  async locate() {
    if (!("geolocation" in navigator)) {
      this.showWhere(t("report.where.no_geolocation"));
      throw new Error("no geolocation");
    }
    this.showWhere(t("report.where.finding"));
    const position = await new Promise((resolve, reject) => {
      navigator.geolocation.getCurrentPosition(resolve, reject, { enableHighAccuracy: true, timeout: 10_000, maximumAge: 0 });
    }).catch((e) => {
      this.showWhere(e?.code === 1 ? t("report.where.refused") : t("report.where.not_found"));
      throw e;
    });
    const { latitude, longitude, heading, speed } = position.coords;
    const moving = Number.isFinite(heading) && heading !== null && (speed ?? 0) > 1;
    await this.pickStreet(latitude, longitude, moving ? heading : null, "device");
  }

  /** Snap a point to its street; the heading is the device's, else the street's direction. */
  async pickStreet(lat, lon, deviceHeading, source) {
    const city = this.getCity();
    if (!city) return;
    const params = new URLSearchParams({ city: city.id, lat: lat.toFixed(6), lon: lon.toFixed(6) });
    let street = null;
    if (navigator.onLine) {
      try {
        street = await getJSON(`${API}/streets/nearest?${params}`);
      } catch (e) {
        if (e instanceof ApiError && e.status) {
          this.place = null;
          this.showWhere(refusalText(e, city.name ?? city.id));
          return;
        }
        // the connection dropped: keep the raw position, the queue sends it later
      }
    }
    const directions = street?.properties?.directions ?? [];
    this.place = { lat, lon, source, street: street?.properties?.name ?? "", directions, deviceHeading };
    this.directionIndex = 0;
    this.describePlace();
  }

  flip() {
    if (!this.place?.directions?.length) return;
    this.directionIndex = (this.directionIndex + 1) % this.place.directions.length;
    this.place.deviceHeading = null;
    this.describePlace();
  }

  heading() {
    if (!this.place) return null;
    if (this.place.deviceHeading !== null && this.place.deviceHeading !== undefined) return this.place.deviceHeading;
    return this.place.directions[this.directionIndex]?.heading ?? null;
  }

  describePlace() {
    const p = this.place;
    const where = p.source === "device" ? t("report.where.device") : t("report.where.tapped");
    const street = p.street ? t("report.where.on", { street: p.street }) : p.directions.length ? t("report.where.unnamed") : "";
    const heading = this.heading();
    const fromPhone = p.deviceHeading !== null && p.deviceHeading !== undefined;
    const direction = heading === null ? ""
      : fromPhone ? t("report.where.heading_phone", { direction: compass(heading) })
        : t("report.where.heading", { direction: compass(heading) });
    this.showWhere(t("report.where.sentence", { where, street, direction }));
    this.els.where.dataset.ready = "1";
  }

  // -- sending -----------------------------------------------------------------------------------

  body(kind) {
    const body = { lat: Number(this.place.lat.toFixed(6)), lon: Number(this.place.lon.toFixed(6)), kind, observed_at: new Date().toISOString() };
    if (kind === "congestion") body.level = this.level ?? 2;
    const heading = this.heading();
    if (heading !== null) body.heading = Math.round(((heading % 360) + 360) % 360 * 10) / 10;
    return body;
  }

  receipt(text, state) {
    this.els.receipt.textContent = text;
    this.els.receipt.dataset.state = state;
    // On a phone the receipt sits below the kind buttons, under the fold: a tap that
    // changed nothing on screen looks like a tap that did nothing.
    if (state !== "idle") this.els.receipt.scrollIntoView({ block: "nearest" });
  }

  async send(kind) {
    const city = this.getCity();
    if (!city) return;
    if (!this.place) {
      try {
        await this.locate(); // one tap: the device's position when nothing was chosen
      } catch {
        this.receipt(t("report.receipt.no_place"), "refused");
        return;
      }
      if (!this.place) {
        this.receipt(t("report.receipt.no_place"), "refused");
        return;
      }
    }
    const body = this.body(kind);
    const levelNote = kind !== "congestion" ? ""
      : this.level === null ? t("report.receipt.level_default", { level: levelName(body.level) })
        : t("report.receipt.level", { level: levelName(body.level) });
    const what = kindName(kind);
    if (!navigator.onLine) {
      this.enqueue(city.id, body);
      this.receipt(t("report.receipt.queued", { kind: what }), "queued");
      return;
    }
    this.receipt(t("report.receipt.sending", { kind: what, level: levelNote }), "sending");
    let ack;
    try {
      ack = await contributorJSON(`${API}/reports?city=${encodeURIComponent(city.id)}`, { method: "POST", body });
    } catch (e) {
      if (e.code === "offline" || e.status === 503 || !navigator.onLine) {
        this.enqueue(city.id, body);
        this.receipt(t("report.receipt.queued", { kind: what }), "queued");
        return;
      }
      this.receipt(refusalText(e, city.name ?? city.id), "refused");
      return;
    }
    if (ack.status === "duplicate") {
      this.receipt(t("report.receipt.duplicate"), "duplicate");
      return;
    }
    this.receipt(t("report.receipt.checking", { kind: what, level: levelNote }), "checking");
    await new Promise((resolve) => setTimeout(resolve, FUSION_WAIT_MS));
    const layer = await this.refreshTraffic();
    const shown = new Set((layer?.features ?? []).map((f) => f.properties.edge));
    const onMap = ack.edge_ids.some((e) => shown.has(e));
    const independent = t("report.receipt.independent");
    if (kind === "clear") {
      this.receipt(onMap
        ? `${t("report.receipt.clear_pending", { k: formatNumber(this.k) })} ${independent}`
        : t("report.receipt.clear_counted"), onMap ? "received" : "counted");
      return;
    }
    if (onMap) {
      this.receipt(t("report.receipt.counted"), "counted");
    } else {
      const more = this.k - 1;
      this.receipt(`${t("report.receipt.needs_more", { count: more, n: formatNumber(more) })} ${independent}`, "received");
    }
  }

  // -- offline queue -----------------------------------------------------------------------------

  queued() {
    try {
      const items = JSON.parse(localStorage.getItem(QUEUE_KEY) ?? "[]");
      return Array.isArray(items) ? items : [];
    } catch {
      return [];
    }
  }

  enqueue(cityId, body) {
    const items = this.queued();
    items.push({ city: cityId, body });
    localStorage.setItem(QUEUE_KEY, JSON.stringify(items.slice(-500)));
    this.showQueue();
  }

  showQueue() {
    const n = this.queued().length;
    this.els.queue.hidden = n === 0;
    this.els.queue.dataset.count = String(n);
    this.els.queue.textContent = n ? t("report.queue", { count: n, n: formatNumber(n) }) : "";
  }

  /** Send what was saved offline, a city and at most 100 reports at a time. */
  async flush() {
    if (this.flushing || !navigator.onLine) return;
    this.flushing = true;
    let accepted = 0;
    const refused = [];
    try {
      for (;;) {
        const items = this.queued();
        if (!items.length) break;
        const city = items[0].city;
        const batch = items.filter((i) => i.city === city).slice(0, MAX_BATCH);
        let answer;
        try {
          answer = await contributorJSON(`${API}/reports/batch?city=${encodeURIComponent(city)}`, { method: "POST", body: { reports: batch.map((i) => i.body) } });
        } catch (e) {
          if (e.code === "offline" || e.status === 503 || e.status === 429) break; // keep them for later
          refused.push(refusalText(e, city));
          answer = null;
        }
        const keep = [];
        if (answer) {
          answer.results.forEach((r, index) => {
            if (r.status === "accepted" || r.status === "duplicate") accepted += 1;
            else if (r.error?.code === "rate_limited" || r.error?.code === "store_unavailable") keep.push(batch[index]);
            else refused.push(refusalText(r.error ?? {}, city));
          });
        }
        const rest = this.queued().filter((i) => !batch.includes(i) && !batch.some((b) => JSON.stringify(b) === JSON.stringify(i)));
        localStorage.setItem(QUEUE_KEY, JSON.stringify([...keep, ...rest]));
        if (keep.length) break;
      }
    } finally {
      this.flushing = false;
      this.showQueue();
    }
    if (accepted || refused.length) {
      const parts = [];
      if (accepted) parts.push(t("report.flush.accepted", { count: accepted, n: formatNumber(accepted) }));
      if (refused.length) parts.push(t("report.flush.refused", { n: formatNumber(refused.length), reasons: [...new Set(refused)].join(" ") }));
      this.receipt(t("report.flush.back_online", { parts: parts.join("; ") }), refused.length ? "refused" : "received");
      this.refreshTraffic();
    }
  }

  // -- my reports --------------------------------------------------------------------------------

  async loadMine() {
    this.els.mineStatus.textContent = t("common.loading");
    let data;
    try {
      data = await contributorJSON(`${API}/me/reports`);
    } catch (e) {
      this.els.mineStatus.textContent = e.code === "offline" ? t("report.mine.offline") : e.message;
      return;
    }
    const reports = [...(data.reports ?? [])].reverse();
    this.els.list.dataset.count = String(reports.length);
    this.els.mineStatus.textContent = reports.length
      ? t("report.mine.kept", { count: reports.length, n: formatNumber(reports.length) })
      : t("report.mine.none");
    this.els.deleteAll.disabled = reports.length === 0;
    this.els.list.replaceChildren(...reports.map((r) => {
      const li = el("li", "my-report");
      li.dataset.reportId = r.report_id;
      const when = new Date(r.observed_at * 1000).toLocaleString(locale(), { dateStyle: "short", timeStyle: "short" });
      const what = `${kindName(r.kind)}${r.level ? ` · ${levelName(r.level)}` : ""}`;
      li.append(el("span", "my-report-what", what), el("span", "my-report-when", `${when} · ${r.lat.toFixed(4)}, ${r.lon.toFixed(4)}`));
      const del = el("button", "btn btn-danger btn-small", t("common.delete"));
      del.type = "button";
      del.setAttribute("aria-label", t("report.mine.delete_one", { what, when }));
      del.addEventListener("click", () => this.deleteOne(r.report_id));
      li.append(del);
      return li;
    }));
  }

  async deleteOne(reportId) {
    try {
      await contributorJSON(`${API}/me/reports/${encodeURIComponent(reportId)}`, { method: "DELETE" });
    } catch (e) {
      this.els.mineStatus.textContent = e.message;
      return;
    }
    await this.loadMine();
    this.els.mineStatus.textContent = `${t("report.mine.deleted")} ${this.els.mineStatus.textContent}`;
    this.refreshTraffic();
  }

  async deleteAll() {
    let answer;
    try {
      answer = await contributorJSON(`${API}/me/reports`, { method: "DELETE" });
    } catch (e) {
      this.els.mineStatus.textContent = e.message;
      return;
    }
    await this.loadMine();
    this.els.mineStatus.textContent = `${t("report.mine.deleted_all", { count: answer.deleted, n: formatNumber(answer.deleted) })} ${this.els.mineStatus.textContent}`;
    this.refreshTraffic();
  }

  async exportMine() {
    let data;
    try {
      data = await contributorJSON(`${API}/me/reports`);
    } catch (e) {
      this.els.mineStatus.textContent = e.message;
      return;
    }
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = "correspondance-my-reports.json";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
}
