// Correspondance trip planner page. Plain ES module, no build step.
import {
  parseLatLon, formatLatLon, formatClock, formatDuration, formatDistance, plural,
  routeColour, textColourOn, modeLabel, escapeHtml, defaultDepartValue, departParam,
} from "./format.js";
import { modeIcon } from "./icons.js";
import { MapView } from "./mapview.js";

const API = "/api/v1";

const $ = (id) => document.getElementById(id);
const els = {
  city: $("city"), from: $("from"), to: $("to"), depart: $("depart"), plan: $("plan"), swap: $("swap"),
  form: $("plan-form"), error: $("error"), list: $("itineraries"), resultsStatus: $("results-status"),
  mapStatus: $("map-status"),
};

const state = {
  cities: [],
  city: null,
  loadToken: 0,
  planToken: 0,
  itineraries: [],
  selected: -1,
};

class ApiError extends Error {
  constructor(message, { status = 0, code = "" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function getJSON(path, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, { headers: { Accept: "application/json" }, signal });
  } catch (e) {
    if (e?.name === "AbortError") throw e;
    throw new ApiError("Cannot reach the Correspondance server. Check your connection and try again.");
  }
  let body = null;
  const text = await res.text();
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = body?.error;
    const message = (err && typeof err.message === "string" && err.message)
      || (typeof body?.detail === "string" && body.detail)
      || `The server answered ${res.status} ${res.statusText}`.trim();
    throw new ApiError(message, { status: res.status, code: err?.code ?? "" });
  }
  if (body === null) throw new ApiError("The server sent an unreadable answer.", { status: res.status });
  return body;
}

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
  setMapStatus("Loading map…");

  const id = encodeURIComponent(city.id);
  const stopsPromise = getJSON(`${API}/cities/${id}/stops`).catch((e) => e);
  try {
    const basemap = await getJSON(`${API}/cities/${id}/basemap`);
    if (token !== state.loadToken) return;
    mapView.setBasemap(basemap);
  } catch (e) {
    if (token !== state.loadToken) return;
    setMapStatus("");
    showError(`The map of ${city.name ?? city.id} could not be loaded: ${e.message}`, e.code);
    return;
  }
  setMapStatus("");
  document.body.dataset.ready = "1";
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
  mapView.clearRoute();
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
  if (!depart) {
    els.depart.setAttribute("aria-invalid", "true");
    showError("Choose a departure date and time.", "client_validation");
    els.depart.focus();
    return;
  }
  els.depart.removeAttribute("aria-invalid");

  const token = ++state.planToken;
  const params = new URLSearchParams({
    city: city.id,
    from: `${from[0]},${from[1]}`,
    to: `${to[0]},${to[1]}`,
    depart,
  });
  clearResults();
  els.list.dataset.state = "loading";
  els.list.setAttribute("aria-busy", "true");
  els.plan.disabled = true;
  els.resultsStatus.textContent = "Planning…";
  try {
    const body = await getJSON(`${API}/plan?${params}`);
    if (token !== state.planToken) return;
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

function legChip(leg) {
  const chip = document.createElement("span");
  if (leg.mode === "walk") {
    chip.className = "chip chip-walk";
    const mins = Math.max(1, Math.round((leg.duration_s ?? 0) / 60));
    chip.innerHTML = `${modeIcon("walk")}<span>${mins}</span><span class="visually-hidden"> minutes walking</span>`;
    chip.title = `Walk ${formatDistance(leg.distance_m)}`;
    return chip;
  }
  const bg = routeColour(leg);
  chip.className = `chip chip-transit chip-${escapeHtml(leg.mode)}`;
  chip.style.background = bg;
  chip.style.color = textColourOn(bg);
  const name = leg.route_short_name || leg.route_long_name || modeLabel(leg.mode);
  chip.innerHTML = `${modeIcon(leg.mode)}<span class="visually-hidden">${escapeHtml(modeLabel(leg.mode))} </span><span>${escapeHtml(name)}</span>`;
  chip.title = [modeLabel(leg.mode), leg.route_short_name, leg.route_long_name, leg.headsign && `→ ${leg.headsign}`]
    .filter(Boolean).join(" ");
  return chip;
}

function legDetails(itinerary) {
  const tz = state.city?.timezone;
  const ol = document.createElement("ol");
  ol.className = "legs";
  ol.setAttribute("aria-label", "Steps");
  for (const leg of itinerary.legs ?? []) {
    const li = document.createElement("li");
    const t = formatClock(leg.departure, tz);
    if (leg.mode === "walk") {
      const dest = leg.to?.name ? ` to ${escapeHtml(leg.to.name)}` : "";
      li.innerHTML = `<span class="leg-time">${t}</span>Walk ${formatDistance(leg.distance_m)}${dest} `
        + `<span class="leg-note">(${formatDuration(leg.duration_s)})</span>`;
    } else {
      const name = escapeHtml(leg.route_short_name || leg.route_long_name || "");
      const head = leg.headsign ? ` towards ${escapeHtml(leg.headsign)}` : "";
      const agency = leg.agency_name ? ` · ${escapeHtml(leg.agency_name)}` : "";
      li.innerHTML = `<span class="leg-time">${t}</span>${escapeHtml(modeLabel(leg.mode))} <strong>${name}</strong>${head}`
        + ` from ${escapeHtml(leg.from?.name ?? "?")} to ${escapeHtml(leg.to?.name ?? "?")}, `
        + `arrive ${formatClock(leg.arrival, tz)} <span class="leg-note">(${formatDuration(leg.duration_s)}${agency})</span>`;
    }
    ol.append(li);
  }
  return ol;
}

function renderItineraries(itineraries) {
  const tz = state.city?.timezone;
  state.itineraries = itineraries;
  state.selected = -1;
  const items = itineraries.map((it, index) => {
    const li = document.createElement("li");
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "itinerary";
    btn.dataset.index = String(index);
    btn.setAttribute("aria-pressed", "false");
    const dep = formatClock(it.departure, tz);
    const arr = formatClock(it.arrival, tz);
    const walkMin = Math.round((it.walk_s ?? 0) / 60);
    const transfers = it.transfers ?? 0;
    const onlyWalk = (it.legs ?? []).every((l) => l.mode === "walk");
    const meta = onlyWalk
      ? `Walk only · ${formatDistance(it.walk_m)}`
      : `${plural(transfers, "transfer", "transfers")} · ${walkMin} min walk`;
    btn.innerHTML = `<span class="it-head"><span class="it-times">${dep} → ${arr}</span>`
      + `<span class="it-duration">${formatDuration(it.duration_s)}</span></span>`
      + `<span class="it-meta">${meta}</span>`;
    const chips = document.createElement("span");
    chips.className = "chips";
    (it.legs ?? []).forEach((leg, i) => {
      if (i > 0) {
        const sep = document.createElement("span");
        sep.className = "chip-sep";
        sep.setAttribute("aria-hidden", "true");
        sep.textContent = "›";
        chips.append(sep);
      }
      chips.append(legChip(leg));
    });
    btn.append(chips);
    btn.addEventListener("click", () => selectItinerary(index));
    li.append(btn);
    return li;
  });
  els.list.replaceChildren(...items);
  els.resultsStatus.textContent = itineraries.length
    ? `${plural(itineraries.length, "itinerary", "itineraries")} found`
    : "No itinerary found for this trip and time. Try another departure time.";
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
    if (on) li.append(legDetails(it));
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
// Wiring

els.form.addEventListener("submit", plan);
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
  const city = state.cities.find((c) => c.id === els.city.value);
  if (city) selectCity(city);
});
window.addEventListener("resize", () => mapView.invalidateSize());

(async () => {
  try {
    const city = await loadCities();
    await selectCity(city);
  } catch (e) {
    setMapStatus("");
    els.city.replaceChildren(new Option("Unavailable", ""));
    showError(`Could not load the city list: ${e.message}`, e.code);
  }
})();

// For tests and debugging in the console: `(await import("/static/app.js")).mapView.map`.
export { mapView, state };
