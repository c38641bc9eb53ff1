// Correspondance trip planner page. Plain ES module, no build step.
import {
  parseLatLon, formatLatLon, formatClock, formatSpan, formatDistance, formatNumber, assignRouteColours,
  modeLabel, escapeHtml, defaultDepartValue, departParam, legKind, isTransitLeg,
} from "./format.js";
import { initLanguage, languagePicker, t } from "./i18n.js";
import { modeIcon } from "./icons.js";
import { MapView } from "./mapview.js";
import { API, ApiError, getJSON } from "./api.js";
import { alertLine, legChips, legDetails } from "./legs.js";
import { LiveTrips } from "./trip.js";
import { Contributor } from "./report.js";
import { TimeChoice } from "./timechoice.js";
import { PlaceSearch } from "./search.js";
import { ServiceCalendar } from "./service.js";

const $ = (id) => document.getElementById(id);
await initLanguage(); // the catalogue first: everything below words its texts through t()
languagePicker($("lang"));
const els = {
  city: $("city"), from: $("from"), to: $("to"), depart: $("depart"), plan: $("plan"), swap: $("swap"),
  form: $("plan-form"), error: $("error"), endpointError: $("endpoint-error"), list: $("itineraries"), resultsStatus: $("results-status"),
  mapStatus: $("map-status"),
  modes: $("modes"), modesError: $("modes-error"), modesHint: $("modes-hint"), simNote: $("sim-note"),
  feeds: $("feeds"), feedsSummary: $("feeds-summary"), feedsList: $("feeds-list"),
};
els.modeInputs = [...els.modes.querySelectorAll('input[type="checkbox"][name="modes"]')];
const timeChoice = new TimeChoice({
  root: $("time-choice"), input: els.depart, pager: $("pager"), onPage: (cursor) => plan(null, cursor),
});

const state = {
  cities: [],
  city: null,
  loadToken: 0,
  planToken: 0,
  itineraries: [],
  selected: -1,
  feeds: [],
  feedsToken: 0,
  planned: null, // {city, modes} of the request the shown itineraries answer
};

// ---------------------------------------------------------------------------------------------
// Errors and status

function showError(message, code = "") {
  els.error.textContent = message;
  if (code) els.error.dataset.code = code;
  else delete els.error.dataset.code;
  els.error.hidden = false;
}

function clearError() {
  els.error.textContent = "";
  delete els.error.dataset.code;
  els.error.hidden = true;
  showEndpointError("");
}

/** Why the origin or destination is not set: said under the fields, where the eyes are (the
 * page's error line is a screen below them on a phone). Text that matched no place is named. */
function endpointProblem(from, to) {
  const typed = (input) => input.value.trim();
  const one = (kind, input) =>
    typed(input) ? t(`plan.unmatched_${kind}`, { text: typed(input) }) : t(`plan.missing_${kind}`);
  if (!from && !to && !typed(els.from) && !typed(els.to)) return t("plan.missing_both");
  return [!from ? one("from", els.from) : "", !to ? one("to", els.to) : ""].filter(Boolean).join(" ");
}

function showEndpointError(message) {
  els.endpointError.textContent = message;
  els.endpointError.hidden = !message;
}

function setMapStatus(text) {
  els.mapStatus.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Map

const mapView = new MapView($("map"), {
  onTap: (latlng) => {
    if (contributor.takeTap(latlng)) return; // the street of a traffic report
    if (trips.active) return; // on a live trip the map shows the trip, taps plan nothing
    const hasFrom = pointOf(els.from);
    const hasTo = pointOf(els.to);
    if (!hasFrom) {
      setPoint("from", [latlng.lat, latlng.lng]);
    } else if (!hasTo) {
      setPoint("to", [latlng.lat, latlng.lng]);
    } else {
      // Both set: a new tap starts a new trip from here.
      setPoint("from", [latlng.lat, latlng.lng]);
      setPoint("to", null);
    }
  },
  onDrag: (kind, latlng) => setPoint(kind, [latlng.lat, latlng.lng], { fromMarker: true }),
});

const contributor = new Contributor({ map: mapView.map, getCity: () => state.city });
const service = new ServiceCalendar({
  onPick: (value, { plan: replan = false } = {}) => {
    els.depart.value = value;
    els.depart.removeAttribute("aria-invalid");
    service.setValue(value);
    if (replan) plan();
  },
});

// Place search in the From/To fields (search.js); pointOf() reads a picked place or "lat,lon".
const places = new PlaceSearch({
  inputs: { from: els.from, to: els.to },
  city: () => state.city,
  centre: () => { const c = mapView.map.getCenter(); return [c.lat, c.lng]; },
  onPick: (kind, latlon) => { showEndpointError(""); mapView.setMarker(kind, latlon); },
});
const pointOf = (input) => places.pointOf(input);

function setPoint(kind, latlon, { fromMarker = false } = {}) {
  const input = kind === "from" ? els.from : els.to;
  input.value = latlon ? formatLatLon(latlon[0], latlon[1]) : "";
  input.removeAttribute("aria-invalid");
  if (latlon) showEndpointError("");
  if (!fromMarker) mapView.setMarker(kind, latlon);
}

function onCoordInput(kind) {
  const input = kind === "from" ? els.from : els.to;
  const text = input.value.trim();
  if (!text) {
    input.removeAttribute("aria-invalid");
    mapView.setMarker(kind, null);
    return;
  }
  const ll = pointOf(input);
  if (ll) {
    input.removeAttribute("aria-invalid");
    showEndpointError("");
    mapView.setMarker(kind, ll);
  } else {
    input.setAttribute("aria-invalid", "true");
  }
}

// ---------------------------------------------------------------------------------------------
// Cities

async function loadCities() {
  const body = await getJSON(`${API}/cities`);
  const cities = Array.isArray(body?.cities) ? body.cities : [];
  if (!cities.length) throw new ApiError(t("city.none"));
  state.cities = cities;
  els.city.replaceChildren(...cities.map((c) => {
    const opt = document.createElement("option");
    opt.value = c.id;
    opt.textContent = c.name ?? c.id;
    return opt;
  }));
  const preferred = cities.find((c) => c.default) ?? cities[0];
  els.city.value = preferred.id;
  els.city.disabled = false;
  return preferred;
}

async function selectCity(city) {
  const token = ++state.loadToken;
  document.body.dataset.ready = "0";
  state.city = city;
  clearError();
  clearResults();
  setPoint("from", null);
  setPoint("to", null);
  els.depart.value = defaultDepartValue(city);
  // The feeds are dated: hint the valid service window when the server tells it.
  els.depart.min = city.service_start ? `${city.service_start}T00:00` : "";
  els.depart.max = city.service_end ? `${city.service_end}T23:59` : "";
  timeChoice.setCity(city);
  service.setValue(els.depart.value);
  service.load(city);
  mapView.clearBasemap();
  mapView.showCity(city);
  refreshFeeds();
  setMapStatus(t("map.loading"));

  const id = encodeURIComponent(city.id);
  const stopsPromise = getJSON(`${API}/cities/${id}/stops`).catch((e) => e);
  try {
    await mapView.setBasemap(city.id);
    if (token !== state.loadToken) return;
  } catch (e) {
    if (token !== state.loadToken) return;
    setMapStatus("");
    showError(t("map.failed", { city: city.name ?? city.id, reason: e.message }), e.code);
    return;
  }
  setMapStatus("");
  document.body.dataset.ready = "1";
  contributor.setCity(city);
  const stops = await stopsPromise;
  if (token !== state.loadToken) return;
  if (stops instanceof Error) {
    // Stops are a nicety on the map; planning still works without them.
    setMapStatus(t("map.stops_unavailable"));
    return;
  }
  mapView.setStops(stops);
}

// ---------------------------------------------------------------------------------------------
// Planning

function clearResults() {
  state.itineraries = [];
  state.selected = -1;
  els.list.replaceChildren();
  els.list.dataset.state = "idle";
  els.resultsStatus.textContent = "";
  els.simNote.hidden = true;
  service.hideNoTransit();
  mapView.clearRoute();
  timeChoice.showPages(null);
}

// ---------------------------------------------------------------------------------------------
// Modes

function selectedModes() {
  return els.modeInputs.filter((input) => input.checked).map((input) => input.value);
}

/** Inline check of the mode chips; returns true when at least one mode is chosen. */
function validateModes() {
  const ok = selectedModes().length > 0;
  els.modesError.hidden = ok;
  els.modesError.textContent = ok ? "" : t("plan.modes_error");
  if (ok) els.modes.removeAttribute("aria-invalid");
  else els.modes.setAttribute("aria-invalid", "true");
  updateModesHint();
  return ok;
}

/** Under the chips: say so when the shared-vehicle systems of this city are simulated. */
function updateModesHint() {
  const shared = els.modeInputs.some((i) => i.checked && (i.value === "bikeshare" || i.value === "carshare"));
  const simulated = state.feeds.filter((f) => f.kind === "gbfs" && f.simulated).map((f) => f.feed_id);
  const show = shared && simulated.length > 0;
  els.modesHint.hidden = !show;
  els.modesHint.textContent = show
    ? t("plan.modes_simulated", { feeds: simulated.join(", ") })
    : "";
}

async function plan(event, cursor = null) {
  event?.preventDefault();
  clearError();
  const city = state.city;
  if (!city) {
    showError(t("city.not_loaded"));
    return;
  }
  const from = pointOf(els.from);
  const to = pointOf(els.to);
  const when = cursor ? { cursor } : timeChoice.query(city);
  if (!from) els.from.setAttribute("aria-invalid", "true");
  if (!to) els.to.setAttribute("aria-invalid", "true");
  if (!from || !to) {
    showEndpointError(endpointProblem(from, to));
    (from ? els.to : els.from).focus();
    return;
  }
  if (!validateModes()) {
    els.modeInputs[0].focus();
    return;
  }
  if (!when) {
    els.depart.setAttribute("aria-invalid", "true");
    showError(timeChoice.missing(), "client_validation");
    els.depart.focus();
    return;
  }
  els.depart.removeAttribute("aria-invalid");

  const token = ++state.planToken;
  const modes = selectedModes();
  const plannedAt = els.depart.value;
  const params = new URLSearchParams({
    city: city.id,
    from: `${from[0]},${from[1]}`,
    to: `${to[0]},${to[1]}`,
    ...when,
    modes: modes.join(","),
  });
  clearResults();
  els.list.dataset.state = "loading";
  els.list.setAttribute("aria-busy", "true");
  els.plan.disabled = true;
  els.resultsStatus.textContent = t("plan.planning");
  try {
    const body = await getJSON(`${API}/plan?${params}`);
    if (token !== state.planToken) return;
    state.planned = { city: city.id, modes };
    renderItineraries(Array.isArray(body?.itineraries) ? body.itineraries : []);
    timeChoice.showPages(body?.page);
    // no transit in the answer although transit was asked for: say why, offer the next service
    service.explain(plannedAt, {
      wantedTransit: modes.includes("transit"),
      anyTransit: state.itineraries.some((it) => (it.legs ?? []).some(isTransitLeg)),
    });
    revealResults();
  } catch (e) {
    if (token !== state.planToken) return;
    els.resultsStatus.textContent = "";
    els.list.dataset.state = "error";
    showError(e.message || t("plan.failed"), e.code);
    if (e.code === "date_out_of_service") {
      service.explain(plannedAt, { wantedTransit: modes.includes("transit"), anyTransit: false });
    }
  } finally {
    if (token === state.planToken) {
      els.plan.disabled = false;
      els.list.removeAttribute("aria-busy");
    }
  }
}

/** "1 transfer · 4.2 km by car-share · 19 min walk", "Walk only · 4.5 km", "Own bike only · 4.5 km". */
function itineraryMeta(it) {
  const legs = it.legs ?? [];
  const transit = legs.filter(isTransitLeg);
  const rides = new Map(); // mode → metres, for bikes and cars
  for (const leg of legs) {
    const kind = legKind(leg.mode);
    if (kind === "bike" || kind === "drive") rides.set(leg.mode, (rides.get(leg.mode) ?? 0) + (Number(leg.distance_m) || 0));
  }
  const walkMin = Math.round((it.walk_s ?? 0) / 60);
  if (!transit.length && !rides.size) return t("results.walk_only", { distance: formatDistance(it.walk_m) });
  const parts = [];
  if (transit.length) parts.push(t("results.transfers", { count: it.transfers ?? 0, n: formatNumber(it.transfers ?? 0) }));
  for (const [mode, metres] of rides) parts.push(t("results.ride", { distance: formatDistance(metres), mode: modeLabel(mode).toLowerCase() }));
  if (walkMin > 0 || transit.length) parts.push(t("results.walk_min", { n: formatNumber(walkMin) }));
  return parts.join(" · ");
}

/** On a phone the results sit below the map and the form: bring them into view after "Plan". */
function revealResults() {
  if (!window.matchMedia("(max-width: 799px)").matches) return; // side panel: already in sight
  const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  $("results").scrollIntoView({ behavior: reduce ? "auto" : "smooth", block: "start" });
}

function renderItineraries(itineraries, { keep = -1 } = {}) {
  const tz = state.city?.timezone;
  state.itineraries = itineraries;
  state.selected = -1;
  assignRouteColours(itineraries); // GTFS colours, or distinct ones: two lines never share one
  let anySimulated = false;
  const items = itineraries.map((it, index) => {
    const li = document.createElement("li");
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "itinerary";
    btn.dataset.index = String(index);
    btn.setAttribute("aria-pressed", "false");
    const legs = it.legs ?? [];
    btn.dataset.modes = [...new Set(legs.map((l) => l.mode))].join(" ");
    if (legs.some((l) => l.simulated)) {
      btn.dataset.simulated = "true";
      anySimulated = true;
    }
    const dep = formatClock(it.departure, tz);
    const arr = formatClock(it.arrival, tz);
    btn.innerHTML = `<span class="it-head"><span class="it-times">${dep} → ${arr}</span>`
      + `<span class="it-duration">${formatSpan(it.departure, it.arrival)}</span></span>`
      + `<span class="it-meta">${escapeHtml(itineraryMeta(it))}</span>`;
    btn.append(legChips(legs));
    // Live service alerts on any leg, once each.
    const seen = new Set();
    for (const leg of legs) {
      for (const alert of Array.isArray(leg.alerts) ? leg.alerts : []) {
        const key = alert?.alert_id ?? alert?.header;
        if (seen.has(key)) continue;
        seen.add(key);
        btn.insertAdjacentHTML("beforeend", alertLine(alert));
      }
    }
    btn.addEventListener("click", () => selectItinerary(index));
    const start = document.createElement("button");
    start.type = "button";
    start.className = "btn btn-secondary start-trip";
    start.dataset.index = String(index);
    start.innerHTML = `${escapeHtml(t("results.start_trip"))}<span class="visually-hidden"> ${escapeHtml(t("results.start_trip_when", { dep, arr }))}</span>`;
    start.addEventListener("click", () => startTrip(index));
    li.append(btn, start);
    return li;
  });
  els.list.replaceChildren(...items);
  els.simNote.hidden = !anySimulated;
  els.resultsStatus.textContent = itineraries.length
    ? t("results.found", { count: itineraries.length, n: formatNumber(itineraries.length) })
    : t("results.none");
  if (itineraries.length) selectItinerary(Math.max(0, Math.min(keep, itineraries.length - 1)), { focus: false });
  els.list.dataset.state = "planned";
}

function selectItinerary(index, { focus = false } = {}) {
  const it = state.itineraries[index];
  if (!it) return;
  state.selected = index;
  for (const btn of els.list.querySelectorAll(".itinerary")) {
    const on = Number(btn.dataset.index) === index;
    btn.setAttribute("aria-pressed", on ? "true" : "false");
    const li = btn.parentElement;
    li.querySelector(".legs")?.remove();
    if (on) li.querySelector(".start-trip")?.before(legDetails(it, state.city?.timezone));
    if (on && focus) btn.focus();
  }
  mapView.drawItinerary(it);
}

// Arrow keys move between itineraries (Tab/Enter/Space work natively on the buttons).
els.list.addEventListener("keydown", (e) => {
  const btn = e.target.closest?.(".itinerary");
  if (!btn) return;
  const buttons = [...els.list.querySelectorAll(".itinerary")];
  const i = buttons.indexOf(btn);
  let next = -1;
  if (e.key === "ArrowDown") next = Math.min(buttons.length - 1, i + 1);
  else if (e.key === "ArrowUp") next = Math.max(0, i - 1);
  else if (e.key === "Home") next = 0;
  else if (e.key === "End") next = buttons.length - 1;
  if (next < 0) return;
  e.preventDefault();
  selectItinerary(Number(buttons[next].dataset.index), { focus: true });
});

// ---------------------------------------------------------------------------------------------
// Live trips (trip.js): start one from an itinerary, resume it after a reload, or the demo

const trips = new LiveTrips({
  mapView,
  timezone: () => state.city?.timezone,
  onLeave: (lastPlan) => {
    els.city.disabled = false;
    clearError();
    if (state.itineraries.length) {
      selectItinerary(Math.max(0, state.selected), { focus: true });
      return;
    }
    // After a reload the results are gone: keep the trip's ends, ready to plan again.
    const legs = lastPlan?.legs ?? [];
    const from = legs[0]?.from;
    const to = legs[legs.length - 1]?.to;
    if (from && !pointOf(els.from)) setPoint("from", [from.lat, from.lon]);
    if (to && !pointOf(els.to)) setPoint("to", [to.lat, to.lon]);
    els.plan.focus();
  },
});

async function startTrip(index, { demo = false } = {}) {
  const it = state.itineraries[index];
  if (!it || trips.active || !state.planned) return;
  clearError();
  const button = els.list.querySelector(`.start-trip[data-index="${index}"]`);
  if (button) button.disabled = true;
  try {
    await trips.start(it, { city: state.planned.city, modes: state.planned.modes, demo });
    els.city.disabled = true;
  } catch (e) {
    showError(t("trip.start_failed", { reason: e.message }), e.code);
  } finally {
    if (button) button.disabled = false;
  }
}

/** `?demo=1`: plan the server's demo trip (GET /api/v1/demo) and start its first car-share itinerary. */
async function runDemo() {
  let demo;
  try {
    demo = await getJSON(`${API}/demo`);
  } catch (e) {
    const off = e.code === "demo_disabled" || e.status === 404;
    showError(off ? t("demo.off") : t("demo.unavailable", { reason: e.message }), e.code);
    return;
  }
  const city = state.cities.find((c) => c.id === demo.city);
  if (city && city !== state.city) {
    els.city.value = city.id;
    await selectCity(city);
  }
  setPoint("from", [demo.from.lat, demo.from.lon]);
  setPoint("to", [demo.to.lat, demo.to.lon]);
  const depart = String(demo.depart ?? "").slice(0, 16);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(depart)) els.depart.value = depart;
  service.setValue(els.depart.value);
  if (Array.isArray(demo.modes)) {
    for (const input of els.modeInputs) input.checked = demo.modes.includes(input.value);
  }
  validateModes();
  await plan();
  const index = state.itineraries.findIndex((it) => (it.legs ?? []).some((l) => l.mode === "carshare"));
  if (index < 0) {
    if (els.list.dataset.state === "planned") showError(t("demo.no_carshare"));
    return;
  }
  selectItinerary(index);
  await startTrip(index, { demo: true });
}

// ---------------------------------------------------------------------------------------------
// Live feeds status (GET /api/v1/feeds), refreshed every 30 s while the page is visible

const FEEDS_REFRESH_MS = 30_000;
const FEEDS_TIMEOUT_MS = 10_000;
const STATUS_ORDER = ["stale", "degraded", "pending", "replay", "ok"];

function formatAge(seconds) {
  const s = Number(seconds);
  if (seconds === null || seconds === undefined || !Number.isFinite(s)) return "";
  if (s < 90) return t("age.s", { n: formatNumber(Math.max(0, Math.round(s))) });
  if (s < 5400) return t("age.min", { n: formatNumber(Math.round(s / 60)) });
  return t("age.h", { n: formatNumber(Math.round(s / 3600)) });
}

async function refreshFeeds() {
  const city = state.city;
  if (!city) return;
  const token = ++state.feedsToken;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FEEDS_TIMEOUT_MS);
  try {
    const body = await getJSON(`${API}/feeds?city=${encodeURIComponent(city.id)}`, { signal: controller.signal });
    if (token !== state.feedsToken) return;
    renderFeeds(Array.isArray(body?.feeds) ? body.feeds : []);
  } catch (e) {
    // Never let a failing status endpoint disturb the page: say so quietly.
    if (token !== state.feedsToken) return;
    renderFeedsUnavailable(e?.name === "AbortError" ? t("feeds.timeout") : e?.message);
  } finally {
    clearTimeout(timer);
  }
}

function renderFeeds(feeds) {
  state.feeds = feeds.filter((f) => f && typeof f.feed_id === "string");
  els.feeds.dataset.state = state.feeds.length ? "ok" : "empty";
  if (!state.feeds.length) {
    els.feedsSummary.textContent = t("feeds.none");
    els.feedsList.replaceChildren();
    updateModesHint();
    return;
  }
  const counts = new Map();
  for (const f of state.feeds) counts.set(f.status, (counts.get(f.status) ?? 0) + 1);
  const worst = STATUS_ORDER.find((st) => counts.has(st)) ?? "pending";
  els.feeds.dataset.worst = worst;
  const parts = [...counts].sort((a, b) => STATUS_ORDER.indexOf(a[0]) - STATUS_ORDER.indexOf(b[0]))
    .map(([st, n]) => t("feeds.count", { n: formatNumber(n), status: t(`feeds.status.${st}`) }));
  const nSim = state.feeds.filter((f) => f.simulated).length;
  const nReplay = state.feeds.filter((f) => f.replay).length;
  if (nSim) parts.push(nSim === state.feeds.length ? t("feeds.all_simulated") : t("feeds.n_simulated", { n: formatNumber(nSim) }));
  if (nReplay) parts.push(t("feeds.n_replay", { n: formatNumber(nReplay) }));
  els.feedsSummary.innerHTML = `<span class="feed-dot status-${escapeHtml(worst)}" aria-hidden="true"></span>${escapeHtml(parts.join(" · "))}`;
  els.feedsList.replaceChildren(...state.feeds.map((f) => {
    const li = document.createElement("li");
    li.className = "feed";
    li.dataset.feedId = f.feed_id;
    li.dataset.status = String(f.status ?? "");
    if (f.simulated) li.dataset.simulated = "true";
    const tags = [
      f.simulated ? `<span class="badge-simulated">${escapeHtml(t("badge.simulated"))}</span>` : "",
      f.replay ? `<span class="badge-replay">${escapeHtml(t("badge.replay"))}</span>` : "",
    ].join("");
    const notes = [
      f.kind ? String(f.kind).toUpperCase() : "",
      Number.isFinite(f.records) ? t("feeds.records", { n: formatNumber(f.records) }) : "",
      f.records_rejected ? t("feeds.rejected", { n: formatNumber(f.records_rejected) }) : "",
      formatAge(f.staleness_s) && t("feeds.age", { age: formatAge(f.staleness_s) }),
      f.reason ? String(f.reason) : "",
    ].filter(Boolean).join(" · ");
    const statusWord = f.status ? t(`feeds.status.${f.status}`) : "?";
    li.innerHTML = `<span class="feed-status status-${escapeHtml(f.status)}">${escapeHtml(statusWord)}</span>`
      + `<span class="feed-id">${escapeHtml(f.feed_id)}</span>${tags}`
      + (notes ? `<span class="feed-note">${escapeHtml(notes)}</span>` : "");
    return li;
  }));
  updateModesHint();
}

function renderFeedsUnavailable(reason) {
  state.feeds = [];
  els.feeds.dataset.state = "error";
  delete els.feeds.dataset.worst;
  els.feedsSummary.textContent = t("feeds.unavailable");
  const li = document.createElement("li");
  li.className = "feed feed-error";
  li.textContent = reason ? t("feeds.unavailable_reason", { reason }) : t("feeds.unavailable_long");
  els.feedsList.replaceChildren(li);
  updateModesHint();
}

setInterval(() => {
  if (!document.hidden) refreshFeeds();
}, FEEDS_REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshFeeds();
});

// ---------------------------------------------------------------------------------------------
// Wiring

els.form.addEventListener("submit", plan);
for (const label of els.modes.querySelectorAll(".mode-chip[data-icon]")) {
  label.querySelector("span")?.insertAdjacentHTML("afterbegin", modeIcon(label.dataset.icon));
}
for (const input of els.modeInputs) input.addEventListener("change", validateModes);
els.from.addEventListener("change", () => onCoordInput("from"));
els.to.addEventListener("change", () => onCoordInput("to"));
els.depart.addEventListener("change", () => els.depart.removeAttribute("aria-invalid"));
els.depart.addEventListener("input", () => service.setValue(els.depart.value));
els.swap.addEventListener("click", () => {
  places.swap(); // texts and picked places
  mapView.setMarker("from", pointOf(els.from));
  mapView.setMarker("to", pointOf(els.to));
});
els.city.addEventListener("change", () => {
  if (trips.active) return;
  const city = state.cities.find((c) => c.id === els.city.value);
  if (city) selectCity(city);
});
window.addEventListener("resize", () => mapView.invalidateSize());
// Another language chosen in the page: re-word what was drawn from data (static markup is
// re-worded by i18n.js itself).
window.addEventListener("languagechange", () => {
  if (els.list.dataset.state === "planned") renderItineraries(state.itineraries, { keep: state.selected });
  if (state.feeds.length || els.feeds.dataset.state === "ok") renderFeeds(state.feeds);
  if (!els.modesError.hidden) validateModes();
  else updateModesHint();
  setMapStatus(document.body.dataset.ready === "1" ? "" : t("map.loading"));
});

(async () => {
  try {
    const city = await loadCities();
    const stored = LiveTrips.stored();
    const tripCity = stored && state.cities.find((c) => c.id === stored.city);
    if (tripCity) els.city.value = tripCity.id;
    await selectCity(tripCity ?? city);
    if (stored) {
      trips.follow(stored); // a reload: resume the trip with after_seq
      els.city.disabled = true;
    } else if (new URLSearchParams(location.search).get("demo") === "1") {
      await runDemo();
    }
  } catch (e) {
    setMapStatus("");
    els.city.replaceChildren(new Option(t("city.unavailable"), ""));
    showError(t("city.load_failed", { reason: e.message }), e.code);
  }
})();

// For tests and debugging in the console: `(await import("/static/app.js")).mapView.map`.
export { mapView, state, trips };
