// Correspondance trip planner page. Plain ES module, no build step.
import {
  parseLatLon, formatLatLon, formatClock, formatDuration, formatDistance, plural,
  modeLabel, escapeHtml, defaultDepartValue, departParam, legKind, isTransitLeg,
} from "./format.js";
import { modeIcon } from "./icons.js";
import { MapView } from "./mapview.js";
import { API, ApiError, getJSON } from "./api.js";
import { alertLine, legChips, legDetails } from "./legs.js";
import { LiveTrips } from "./trip.js";
import { Contributor } from "./report.js";

const $ = (id) => document.getElementById(id);
const els = {
  city: $("city"), from: $("from"), to: $("to"), depart: $("depart"), plan: $("plan"), swap: $("swap"),
  form: $("plan-form"), error: $("error"), list: $("itineraries"), resultsStatus: $("results-status"),
  mapStatus: $("map-status"),
  modes: $("modes"), modesError: $("modes-error"), modesHint: $("modes-hint"), simNote: $("sim-note"),
  feeds: $("feeds"), feedsSummary: $("feeds-summary"), feedsList: $("feeds-list"),
};
els.modeInputs = [...els.modes.querySelectorAll('input[type="checkbox"][name="modes"]')];

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
    const hasFrom = parseLatLon(els.from.value);
    const hasTo = parseLatLon(els.to.value);
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

function setPoint(kind, latlon, { fromMarker = false } = {}) {
  const input = kind === "from" ? els.from : els.to;
  input.value = latlon ? formatLatLon(latlon[0], latlon[1]) : "";
  input.removeAttribute("aria-invalid");
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
  const ll = parseLatLon(text);
  if (ll) {
    input.removeAttribute("aria-invalid");
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
  if (!cities.length) throw new ApiError("No city is configured on this server.");
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
  mapView.clearBasemap();
  mapView.showCity(city);
  refreshFeeds();
  setMapStatus("Loading map…");

  const id = encodeURIComponent(city.id);
  const stopsPromise = getJSON(`${API}/cities/${id}/stops`).catch((e) => e);
  try {
    await mapView.setBasemap(city.id);
    if (token !== state.loadToken) return;
  } catch (e) {
    if (token !== state.loadToken) return;
    setMapStatus("");
    showError(`The map of ${city.name ?? city.id} could not be loaded: ${e.message}`, e.code);
    return;
  }
  setMapStatus("");
  document.body.dataset.ready = "1";
  contributor.setCity(city);
  const stops = await stopsPromise;
  if (token !== state.loadToken) return;
  if (stops instanceof Error) {
    // Stops are a nicety on the map; planning still works without them.
    setMapStatus("Transit stops unavailable");
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
  mapView.clearRoute();
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
  els.modesError.textContent = ok ? "" : "Choose at least one way to travel (for example Transit and Walk).";
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
    ? `Shared bikes and cars here come from simulated feeds (${simulated.join(", ")}): demonstration data, not a real service.`
    : "";
}

async function plan(event) {
  event?.preventDefault();
  clearError();
  const city = state.city;
  if (!city) {
    showError("The city list has not loaded yet.");
    return;
  }
  const from = parseLatLon(els.from.value);
  const to = parseLatLon(els.to.value);
  const depart = departParam(els.depart.value);
  const problems = [];
  if (!from) { problems.push("origin"); els.from.setAttribute("aria-invalid", "true"); }
  if (!to) { problems.push("destination"); els.to.setAttribute("aria-invalid", "true"); }
  if (problems.length) {
    showError(`Set the ${problems.join(" and ")}: tap the map or type "lat,lon" (e.g. -30.0346,-51.2177).`, "client_validation");
    (from ? els.to : els.from).focus();
    return;
  }
  if (!validateModes()) {
    els.modeInputs[0].focus();
    return;
  }
  if (!depart) {
    els.depart.setAttribute("aria-invalid", "true");
    showError("Choose a departure date and time.", "client_validation");
    els.depart.focus();
    return;
  }
  els.depart.removeAttribute("aria-invalid");

  const token = ++state.planToken;
  const modes = selectedModes();
  const params = new URLSearchParams({
    city: city.id,
    from: `${from[0]},${from[1]}`,
    to: `${to[0]},${to[1]}`,
    depart,
    modes: modes.join(","),
  });
  clearResults();
  els.list.dataset.state = "loading";
  els.list.setAttribute("aria-busy", "true");
  els.plan.disabled = true;
  els.resultsStatus.textContent = "Planning…";
  try {
    const body = await getJSON(`${API}/plan?${params}`);
    if (token !== state.planToken) return;
    state.planned = { city: city.id, modes };
    renderItineraries(Array.isArray(body?.itineraries) ? body.itineraries : []);
  } catch (e) {
    if (token !== state.planToken) return;
    els.resultsStatus.textContent = "";
    els.list.dataset.state = "error";
    showError(e.message || "Planning failed.", e.code);
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
  if (!transit.length && !rides.size) return `Walk only · ${formatDistance(it.walk_m)}`;
  const parts = [];
  if (transit.length) parts.push(plural(it.transfers ?? 0, "transfer", "transfers"));
  for (const [mode, metres] of rides) parts.push(`${formatDistance(metres)} by ${modeLabel(mode).toLowerCase()}`);
  if (walkMin > 0 || transit.length) parts.push(`${walkMin} min walk`);
  return parts.join(" · ");
}

function renderItineraries(itineraries) {
  const tz = state.city?.timezone;
  state.itineraries = itineraries;
  state.selected = -1;
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
      + `<span class="it-duration">${formatDuration(it.duration_s)}</span></span>`
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
    start.innerHTML = `Start trip<span class="visually-hidden"> leaving ${dep}, arriving ${arr}</span>`;
    start.addEventListener("click", () => startTrip(index));
    li.append(btn, start);
    return li;
  });
  els.list.replaceChildren(...items);
  els.simNote.hidden = !anySimulated;
  els.resultsStatus.textContent = itineraries.length
    ? `${plural(itineraries.length, "itinerary", "itineraries")} found`
    : "No itinerary found for this trip and time. Try another departure time or other modes.";
  if (itineraries.length) selectItinerary(0, { focus: false });
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
    if (from && !parseLatLon(els.from.value)) setPoint("from", [from.lat, from.lon]);
    if (to && !parseLatLon(els.to.value)) setPoint("to", [to.lat, to.lon]);
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
    showError(`Could not start the trip: ${e.message}`, e.code);
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
    showError(off ? "Demo mode is off on this server (scripts/run.sh turns it on)." : `Demo unavailable: ${e.message}`, e.code);
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
  if (Array.isArray(demo.modes)) {
    for (const input of els.modeInputs) input.checked = demo.modes.includes(input.value);
  }
  validateModes();
  await plan();
  const index = state.itineraries.findIndex((it) => (it.legs ?? []).some((l) => l.mode === "carshare"));
  if (index < 0) {
    if (els.list.dataset.state === "planned") showError("The demo trip has no car-share itinerary to start.");
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
  if (s < 90) return `${Math.max(0, Math.round(s))} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
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
    renderFeedsUnavailable(e?.name === "AbortError" ? "the server did not answer in time" : e?.message);
  } finally {
    clearTimeout(timer);
  }
}

function renderFeeds(feeds) {
  state.feeds = feeds.filter((f) => f && typeof f.feed_id === "string");
  els.feeds.dataset.state = state.feeds.length ? "ok" : "empty";
  if (!state.feeds.length) {
    els.feedsSummary.textContent = "none for this city";
    els.feedsList.replaceChildren();
    updateModesHint();
    return;
  }
  const counts = new Map();
  for (const f of state.feeds) counts.set(f.status, (counts.get(f.status) ?? 0) + 1);
  const worst = STATUS_ORDER.find((st) => counts.has(st)) ?? "pending";
  els.feeds.dataset.worst = worst;
  const parts = [...counts].sort((a, b) => STATUS_ORDER.indexOf(a[0]) - STATUS_ORDER.indexOf(b[0]))
    .map(([st, n]) => `${n} ${st}`);
  const nSim = state.feeds.filter((f) => f.simulated).length;
  const nReplay = state.feeds.filter((f) => f.replay).length;
  if (nSim) parts.push(nSim === state.feeds.length ? "all simulated" : `${nSim} simulated`);
  if (nReplay) parts.push(`${nReplay} replay`);
  els.feedsSummary.innerHTML = `<span class="feed-dot status-${escapeHtml(worst)}" aria-hidden="true"></span>${escapeHtml(parts.join(" · "))}`;
  els.feedsList.replaceChildren(...state.feeds.map((f) => {
    const li = document.createElement("li");
    li.className = "feed";
    li.dataset.feedId = f.feed_id;
    li.dataset.status = String(f.status ?? "");
    if (f.simulated) li.dataset.simulated = "true";
    const tags = [
      f.simulated ? '<span class="badge-simulated">simulated</span>' : "",
      f.replay ? '<span class="badge-replay">replay</span>' : "",
    ].join("");
    const notes = [
      f.kind ? String(f.kind).toUpperCase() : "",
      Number.isFinite(f.records) ? `${f.records} records` : "",
      f.records_rejected ? `${f.records_rejected} rejected` : "",
      formatAge(f.staleness_s) && `${formatAge(f.staleness_s)} old`,
      f.reason ? String(f.reason) : "",
    ].filter(Boolean).join(" · ");
    li.innerHTML = `<span class="feed-status status-${escapeHtml(f.status)}">${escapeHtml(f.status ?? "?")}</span>`
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
  els.feedsSummary.textContent = "unavailable";
  const li = document.createElement("li");
  li.className = "feed feed-error";
  li.textContent = `Live feeds unavailable${reason ? `: ${reason}` : ""}. Planning still works on the timetable.`;
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
els.swap.addEventListener("click", () => {
  const a = parseLatLon(els.from.value);
  const b = parseLatLon(els.to.value);
  const [fa, fb] = [els.from.value, els.to.value];
  els.from.value = fb;
  els.to.value = fa;
  mapView.setMarker("from", b);
  mapView.setMarker("to", a);
});
els.city.addEventListener("change", () => {
  if (trips.active) return;
  const city = state.cities.find((c) => c.id === els.city.value);
  if (city) selectCity(city);
});
window.addEventListener("resize", () => mapView.invalidateSize());

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
    els.city.replaceChildren(new Option("Unavailable", ""));
    showError(`Could not load the city list: ${e.message}`, e.code);
  }
})();

// For tests and debugging in the console: `(await import("/static/app.js")).mapView.map`.
export { mapView, state, trips };
