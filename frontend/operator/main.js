// The operator dashboard (/operator): sign-in, then the live map, congested streets, incidents,
// feed health, charts and the audit log of one city. Plain ES module, no build step.
import { API, getJSON } from "../api.js";
import { watchCongestion } from "../congestion.js";
import { Session } from "./session.js";
import { TrafficMap } from "./trafficmap.js";
import { Incidents } from "./incidents.js";
import { Charts } from "./charts.js";
import { renderAudit, renderCongested, renderFeeds, renderKpis } from "./panels.js";
import { initLanguage, languagePicker, t } from "../i18n.js";

await initLanguage(); // the catalogue first: every text below goes through t()

const $ = (id) => document.getElementById(id);
const REFRESH = { feeds: 30_000, metrics: 60_000, audit: 30_000, incidents: 15_000, fallback: 30_000 };

const session = new Session();
const state = { cities: [], city: null, k: 2, timers: [], stopWatching: null, socket: null, aggregates: null, index: undefined, km: 0 };

function toast(message) {
  const box = $("ops-toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

function cityParam() {
  return `city=${encodeURIComponent(state.city.id)}`;
}

// -- sign-in ------------------------------------------------------------------------------------

function showLogin(message = "") {
  stopLive();
  document.body.dataset.view = "login";
  $("ops-login").hidden = false;
  $("ops-dashboard").hidden = true;
  $("ops-user").hidden = true;
  $("ops-logout").hidden = true;
  const error = $("login-error");
  error.textContent = message;
  error.hidden = !message;
  $("login-username").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  const error = $("login-error");
  if (!username || !password) {
    error.textContent = t("ops.login.missing");
    error.hidden = false;
    return;
  }
  $("login-submit").disabled = true;
  try {
    await session.login(username, password);
  } catch (e) {
    error.textContent = e.code === "too_many_attempts"
      ? t("ops.login.too_many")
      : e.code === "invalid_credentials" ? t("ops.login.wrong") : e.message;
    error.hidden = false;
    return;
  } finally {
    $("login-submit").disabled = false;
    $("login-password").value = "";
  }
  await showDashboard();
}

async function onLogout() {
  await session.logout();
  showLogin(t("ops.login.signed_out"));
}

// -- the dashboard ------------------------------------------------------------------------------

let map = null;
let incidents = null;
let charts = null;

async function showDashboard() {
  document.body.dataset.view = "dashboard";
  $("ops-login").hidden = true;
  $("ops-dashboard").hidden = false;
  $("ops-user").textContent = t("ops.signed_in_as", { user: session.username });
  $("ops-user").hidden = false;
  $("ops-logout").hidden = false;
  if (!map) {
    map = new TrafficMap(session, {
      onCongestedClick: (feature, latlng) => map.openDecision(feature, latlng, {
        onConfirm: () => decide(feature.properties, "confirm"),
        onDismiss: () => decide(feature.properties, "dismiss"),
      }),
      onSelectionChange: (streets) => incidents?.onSelection(streets),
      onError: (message) => toast(message),
    });
    incidents = new Incidents(session, map, { cityId: () => state.city.id, onChanged: refreshAfterDecision, toast });
    charts = new Charts();
    map.map.invalidateSize();
  }
  await selectCity(state.city);
}

async function selectCity(city) {
  stopLive();
  state.city = city;
  document.body.dataset.ready = "0";
  try {
    await map.showCity(city);
  } catch (e) {
    toast(t("ops.map_failed", { reason: e.message }));
  }
  await Promise.allSettled([refreshCongestion(), refreshIncidents(), refreshFeeds(), refreshMetrics(), refreshAudit()]);
  document.body.dataset.ready = "1";
  startLive();
}

function every(ms, fn) {
  state.timers.push(setInterval(() => { if (document.visibilityState === "visible") fn(); }, ms));
}

function startLive() {
  state.stopWatching = watchCongestion(state.city.id, () => refreshCongestion());
  every(REFRESH.fallback, refreshCongestion);
  every(REFRESH.incidents, refreshIncidents);
  every(REFRESH.feeds, refreshFeeds);
  every(REFRESH.metrics, refreshMetrics);
  every(REFRESH.audit, refreshAudit);
  openAggregates();
}

function stopLive() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  state.stopWatching?.();
  state.stopWatching = null;
  if (state.socket) {
    state.socket.onclose = null;
    state.socket.close();
    state.socket = null;
  }
}

/** WS /ws/v1/operator: live-trip aggregates every few seconds (token in the first message). */
function openAggregates() {
  if (!session.active) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/v1/operator?${cityParam()}`);
  state.socket = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: session.token }));
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    if (msg.type === "aggregates") {
      state.k = msg.k ?? state.k;
      state.aggregates = msg;
      renderKpis({ index: state.index, km: state.km, aggregates: msg, k: state.k });
    }
  };
  ws.onclose = (event) => {
    if (state.socket !== ws) return;
    state.socket = null;
    if (event.code === 4401) return; // the session ended: the next API call says so
    setTimeout(() => { if (!state.socket && document.body.dataset.view === "dashboard") openAggregates(); }, 3000);
  };
}

async function refreshCongestion() {
  try {
    const body = await session.call(`${API}/operators/congestion/geojson?${cityParam()}`);
    state.k = body.k ?? state.k;
    state.index = body.congestion_index;
    state.km = body.congested_km;
    map.setLive(body);
    renderCongested(body, { onConfirm: (p) => decide(p, "confirm"), onDismiss: (p) => decide(p, "dismiss") });
    renderKpis({ index: state.index, km: state.km, aggregates: state.aggregates, k: state.k });
    const n = body.features.length;
    $("map-summary").textContent = n ? t("ops.map_summary", { count: n, n }) : t("ops.map_summary_none");
  } catch (e) {
    if (e.status !== 401) $("map-summary").textContent = t("ops.traffic_unavailable", { reason: e.message });
  }
}

async function refreshIncidents() {
  try {
    incidents.render(await session.call(`${API}/operators/incidents?${cityParam()}`));
  } catch (e) {
    if (e.status !== 401) toast(t("ops.incidents_unavailable", { reason: e.message }));
  }
}

async function refreshFeeds() {
  try {
    const body = await getJSON(`${API}/feeds?${cityParam()}`);
    renderFeeds(Array.isArray(body?.feeds) ? body.feeds : []);
  } catch (e) {
    $("feed-list").replaceChildren(Object.assign(document.createElement("li"), { textContent: t("ops.feeds_unavailable", { reason: e.message }) }));
  }
}

async function refreshMetrics() {
  try {
    const [metrics, history] = await Promise.all([
      session.call(`${API}/operators/metrics?${cityParam()}&hours=3`),
      session.call(`${API}/operators/congestion/history?${cityParam()}&hours=3`),
    ]);
    charts.render(metrics);
    map.setHistory(history);
  } catch (e) {
    if (e.status !== 401) $("charts-status").textContent = t("ops.charts_unavailable", { reason: e.message });
  }
}

async function refreshAudit() {
  try {
    const body = await session.call(`${API}/operators/audit?${cityParam()}&limit=50`);
    renderAudit(body.entries ?? []);
  } catch (e) {
    if (e.status !== 401) toast(t("ops.audit_unavailable", { reason: e.message }));
  }
}

function refreshAfterDecision() {
  refreshCongestion();
  refreshIncidents();
  refreshAudit();
}

async function decide(props, decision) {
  const status = $("decision-status");
  try {
    await session.call(`${API}/operators/edges/${props.edge}/${decision}?${cityParam()}`, { method: "POST" });
    const street = props.name || t("ops.an_unnamed_street");
    status.textContent = decision === "confirm" ? t("ops.confirmed", { street }) : t("ops.dismissed", { street });
  } catch (e) {
    status.textContent = decision === "confirm" ? t("ops.confirm_failed", { reason: e.message }) : t("ops.dismiss_failed", { reason: e.message });
  }
  refreshAfterDecision();
}

// -- start ----------------------------------------------------------------------------------

async function loadCities() {
  const body = await getJSON(`${API}/cities`);
  state.cities = Array.isArray(body?.cities) ? body.cities : [];
  const select = $("ops-city");
  select.replaceChildren(...state.cities.map((c) => Object.assign(document.createElement("option"), { value: c.id, textContent: c.name ?? c.id })));
  state.city = state.cities.find((c) => c.default) ?? state.cities[0];
  select.value = state.city?.id ?? "";
  select.disabled = state.cities.length < 2;
  select.addEventListener("change", () => {
    const city = state.cities.find((c) => c.id === select.value);
    if (city && session.active) selectCity(city);
  });
}

session.onExpired = (message) => showLogin(message);
$("login-form").addEventListener("submit", onLogin);
$("ops-logout").addEventListener("click", onLogout);

languagePicker($("ops-lang"));
// Another language: the dashboard starts again in it (the session stays in this tab).
window.addEventListener("languagechange", () => location.reload());
try {
  await loadCities();
  if (session.active) await showDashboard();
  else showLogin();
} catch (e) {
  showLogin(t("ops.unreachable", { reason: e.message }));
}
