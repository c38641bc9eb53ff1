// The contributor app inside the commuter page: one-tap traffic reports at the device's position
// or at a street tapped on the map, a truthful receipt, "My reports" (list, delete, export), an
// offline queue sent through /api/v1/reports/batch, and the live congestion layer for everyone.
import { API, ApiError, getJSON } from "./api.js";
import { CongestionLayer, legendElement, watchCongestion } from "./congestion.js";

const TOKEN_KEY = "correspondance.contributor";
const QUEUE_KEY = "correspondance.reports.queue";
const MAX_BATCH = 100;
const FUSION_WAIT_MS = 1800; // the server fuses once a second
const KINDS = {
  congestion: "Jam",
  closure: "Closure",
  incident: "Incident",
  clear: "All clear",
};
const LEVEL_NAMES = { 1: "slow", 2: "heavy", 3: "very heavy", 4: "standstill" };
const COMPASS = ["north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"];

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function compass(heading) {
  return COMPASS[Math.round(((heading % 360) + 360) % 360 / 45) % 8];
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
    const error = new ApiError(err?.message || `The server answered ${res.status}`, { status: res.status, code: err?.code ?? "" });
    error.retryAfter = Number(res.headers.get("Retry-After")) || null;
    throw error;
  }
  return parsed;
}

/** Why a report was refused, in plain words. */
export function refusalText(error, cityName) {
  switch (error.code) {
    case "rate_limited": {
      const wait = error.retryAfter ? ` Try again in ${Math.ceil(error.retryAfter / 60)} min.` : " Try again in a few minutes.";
      return `Not sent: too many reports from this phone or this network in a short time.${wait}`;
    }
    case "outside_city": return `Not taken: this place is outside ${cityName}. Reports are taken only inside the city.`;
    case "no_street_nearby": return "Not taken: there is no street for cars within 60 m of this point. Tap on a street.";
    case "implausible_sequence": return "Not taken: this place is too far from your previous report for the time between them.";
    case "report_too_old": return "Not taken: the report waited more than an hour before it could be sent.";
    case "report_in_future": return "Not taken: this phone's clock is ahead of the server's.";
    case "invalid_report": return `Not taken: the report was not valid (${error.message}).`;
    default: return `Not taken: ${error.message}`;
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
    this.els.legend.append(legendElement({ title: "Live traffic" }));
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
    this.showWhere("Tap the street on the map.");
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
    this.showWhere("No place chosen yet: use your location or tap a street.");
  }

  showWhere(text) {
    this.els.where.textContent = text;
    this.els.flip.hidden = !(this.place?.directions?.length > 1);
  }

  async locate() {
    if (!("geolocation" in navigator)) {
      this.showWhere("This browser cannot tell your position: tap a street on the map instead.");
      throw new Error("no geolocation");
    }
    this.showWhere("Finding your position…");
    const position = await new Promise((resolve, reject) => {
      navigator.geolocation.getCurrentPosition(resolve, reject, { enableHighAccuracy: true, timeout: 10_000, maximumAge: 0 });
    }).catch((e) => {
      this.showWhere(e?.code === 1
        ? "Location permission was refused: tap a street on the map instead."
        : "Your position could not be found: tap a street on the map instead.");
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
    const where = p.source === "device" ? "At your position" : "At the street you tapped";
    const street = p.street ? ` on ${p.street}` : p.directions.length ? " on an unnamed street" : "";
    const heading = this.heading();
    const direction = heading === null ? "" : `, travelling ${compass(heading)}${p.deviceHeading !== null && p.deviceHeading !== undefined ? " (from your phone)" : ""}`;
    this.showWhere(`${where}${street}${direction}.`);
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
  }

  async send(kind) {
    const city = this.getCity();
    if (!city) return;
    if (!this.place) {
      try {
        await this.locate(); // one tap: the device's position when nothing was chosen
      } catch {
        this.receipt("Choose a place first: use your location or tap a street on the map.", "refused");
        return;
      }
      if (!this.place) {
        this.receipt("Choose a place first: use your location or tap a street on the map.", "refused");
        return;
      }
    }
    const body = this.body(kind);
    const levelNote = kind === "congestion" ? ` (${LEVEL_NAMES[body.level]}${this.level === null ? ", the default" : ""})` : "";
    if (!navigator.onLine) {
      this.enqueue(city.id, body);
      this.receipt(`No connection: your “${KINDS[kind]}” report is saved on this phone and will be sent when you are back online.`, "queued");
      return;
    }
    this.receipt(`Sending “${KINDS[kind]}”${levelNote}…`, "sending");
    let ack;
    try {
      ack = await contributorJSON(`${API}/reports?city=${encodeURIComponent(city.id)}`, { method: "POST", body });
    } catch (e) {
      if (e.code === "offline" || e.status === 503 || !navigator.onLine) {
        this.enqueue(city.id, body);
        this.receipt(`No connection: your “${KINDS[kind]}” report is saved on this phone and will be sent when you are back online.`, "queued");
        return;
      }
      this.receipt(refusalText(e, city.name ?? city.id), "refused");
      return;
    }
    if (ack.status === "duplicate") {
      this.receipt("Already received: you sent the same report in the last two minutes. It counts once.", "duplicate");
      return;
    }
    this.receipt(`Received “${KINDS[kind]}”${levelNote}. Checking whether it counts…`, "checking");
    await new Promise((resolve) => setTimeout(resolve, FUSION_WAIT_MS));
    const layer = await this.refreshTraffic();
    const shown = new Set((layer?.features ?? []).map((f) => f.properties.edge));
    const onMap = ack.edge_ids.some((e) => shown.has(e));
    const independent = "Independent means a different person on a different network (not the same phone, Wi-Fi or mobile connection).";
    if (kind === "clear") {
      this.receipt(onMap
        ? `Received: the map still shows congestion here; an all-clear counts once ${this.k} independent people agree. ${independent}`
        : "Counted: the live map shows no congestion on this street.", onMap ? "received" : "counted");
      return;
    }
    if (onMap) {
      this.receipt(`Counted: the live map now shows it, and trips are routed around it. Thank you.`, "counted");
    } else {
      const more = this.k - 1 === 1 ? "one more independent report" : `${this.k - 1} more independent reports`;
      this.receipt(`Received, needs ${more} before it counts. ${independent}`, "received");
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
    this.els.queue.textContent = n ? `${n} report${n === 1 ? "" : "s"} saved on this phone, waiting for a connection.` : "";
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
      if (accepted) parts.push(`${accepted} saved report${accepted === 1 ? "" : "s"} sent and received`);
      if (refused.length) parts.push(`${refused.length} not taken: ${[...new Set(refused)].join(" ")}`);
      this.receipt(`Back online: ${parts.join("; ")}.`, refused.length ? "refused" : "received");
      this.refreshTraffic();
    }
  }

  // -- my reports --------------------------------------------------------------------------------

  async loadMine() {
    this.els.mineStatus.textContent = "Loading…";
    let data;
    try {
      data = await contributorJSON(`${API}/me/reports`);
    } catch (e) {
      this.els.mineStatus.textContent = e.code === "offline" ? "Offline: your reports cannot be read now." : e.message;
      return;
    }
    const reports = [...(data.reports ?? [])].reverse();
    this.els.list.dataset.count = String(reports.length);
    this.els.mineStatus.textContent = reports.length
      ? `${reports.length} report${reports.length === 1 ? "" : "s"} kept (each is deleted after 24 hours).`
      : "The server keeps no report of yours.";
    this.els.deleteAll.disabled = reports.length === 0;
    this.els.list.replaceChildren(...reports.map((r) => {
      const li = el("li", "my-report");
      li.dataset.reportId = r.report_id;
      const when = new Date(r.observed_at * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
      const what = `${KINDS[r.kind] ?? r.kind}${r.level ? ` · ${LEVEL_NAMES[r.level]}` : ""}`;
      li.append(el("span", "my-report-what", what), el("span", "my-report-when", `${when} · ${r.lat.toFixed(4)}, ${r.lon.toFixed(4)}`));
      const del = el("button", "btn btn-danger btn-small", "Delete");
      del.type = "button";
      del.setAttribute("aria-label", `Delete report ${what} of ${when}`);
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
    this.els.mineStatus.textContent = `Deleted. ${this.els.mineStatus.textContent}`;
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
    this.els.mineStatus.textContent = `Deleted ${answer.deleted} report${answer.deleted === 1 ? "" : "s"}, your trust score and counters. ${this.els.mineStatus.textContent}`;
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
