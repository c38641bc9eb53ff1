// Live trips (issue 6): start a trip from a planned itinerary and follow it over a websocket
// (docs/protocol.md): progress on the map, live delays and alerts, switch suggestions to accept or
// decline. The trip's id, key and highest `seq` seen live in sessionStorage, so a reload resumes.
import { API, requestJSON } from "./api.js";
import { assignRouteColours, formatClock, formatDuration, formatSpan, formatDelay, formatNumber, modeLabel, escapeHtml } from "./format.js";
import { alertLine, delayBadge, legChips, legDetails } from "./legs.js";
import { TripSocket } from "./tripsocket.js";
import { has, t } from "./i18n.js";

const STORAGE_KEY = "correspondance.trip";
// A position at most this often (the server takes one a second at most: docs/protocol.md).
const POSITION_EVERY_MS = 3000;

// Server codes → catalogue keys (docs/protocol.md, "Texts are codes"); unknown codes have a
// generic text, so a newer server never shows a raw code.
const ENDED_KEYS = new Set(["arrived", "ended", "timeout", "deleted"]);
const CLOSED_KEYS = new Set(["declined", "withdrawn", "expired"]);

/** What is wrong ahead, by reason code, for the warning a declined or expired suggestion leaves. */
function trouble(code, broken) {
  const key = broken && code === "congestion" ? "trip.trouble.road_closed" : `trip.trouble.${code}`;
  return has(key) ? t(key) : t("trip.trouble.other");
}

/** A coded text of the server ({code, params}) in the page's language; times formatted here. */
function phrase(kind, coded, tz) {
  if (!coded?.code || !has(`trip.${kind}.${coded.code}`)) return null;
  const params = { ...(coded.params ?? {}) };
  if (params.time) params.time = formatClock(params.time, tz);
  if (params.mode) params.mode = modeLabel(params.mode).toLowerCase();
  if (params.vehicle) params.vehicle = t(`trip.vehicle.${params.vehicle}`);
  return t(`trip.${kind}.${coded.code}`, params);
}

function sentence(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

/** A suggestion's reason, worded from its codes: "No vehicle left at X: take bus T5 at Y, arrive 4 min earlier." */
export function suggestionText(s, tz) {
  const r = s?.reason ?? {};
  const head = phrase("detail", r.detail, tz) ?? (has(`trip.reason.${r.code}`) ? t(`trip.reason.${r.code}`) : null);
  const doing = phrase("action", r.action, tz);
  if (!head || !doing) return r.message ?? t("trip.suggestion.better");
  const first = phrase("leave", r.leave, tz);
  const saved = Number(s.minutes_saved);
  const gain = s.minutes_saved !== null && s.minutes_saved !== undefined && Number.isFinite(saved)
    ? t("trip.gain.earlier", { n: formatNumber(Math.round(saved)) })
    : t("trip.gain.arrive", { time: formatClock(s.new_arrival, tz) });
  return sentence(t("trip.suggestion.sentence", {
    why: head, then: first ? t("trip.suggestion.then", { leave: first, action: doing }) : doing, gain,
  }));
}

const $ = (id) => document.getElementById(id);

export class LiveTrips {
  /** `mapView`: the page's MapView; `timezone()`: the city's time zone; `onLeave(lastPlan)`: back to the planner. */
  constructor({ mapView, timezone, onLeave }) {
    this.mapView = mapView;
    this.timezone = timezone;
    this.onLeave = onLeave;
    this.els = {
      root: $("trip"), conn: $("trip-conn"), status: $("trip-status"), eta: $("trip-eta"), remaining: $("trip-remaining"),
      error: $("trip-error"), warning: $("trip-warning"), demo: $("trip-demo"), demoJam: $("trip-demo-jam"), suggestion: $("trip-suggestion"),
      plan: $("trip-plan"), simNote: $("trip-sim-note"), summary: $("trip-summary"), id: $("trip-id"),
      end: $("trip-end"), exp: $("trip-export"), del: $("trip-delete"), leave: $("trip-leave"),
      follow: $("trip-follow"), source: $("trip-source"),
    };
    this.els.follow.addEventListener("click", () => this.toggleFollow());
    this.watchId = null;
    this.geo = "off"; // off | asking | on | refused | unavailable
    this.els.end.addEventListener("click", () => this.end());
    this.els.exp.addEventListener("click", () => this.exportData());
    this.els.del.addEventListener("click", () => this.deleteData());
    this.els.leave.addEventListener("click", () => this.leave());
    this.els.demoJam.addEventListener("click", () => this.simulateJam());
    this.socket = null;
    this.reset();
    window.addEventListener("online", () => this.socket?.reconnectNow());
    window.addEventListener("languagechange", () => this.relabel());
  }

  reset() {
    this.stopWatching();
    this.geo = "off";
    this.socket?.stop();
    this.socket = null;
    this.trip = null; // {trip_id, token, last_seq, city, demo}
    this.itinerary = null;
    this.planKey = "";
    this.suggestion = null;
    this.progress = null;
    this.live = new Map(); // leg_index → the latest live_update entry for that leg
    this.eta = null; // the plan's arrival as progress states it (the schedule)
    this.liveEta = null; // the server's projection: live_update, or a suggestion's word on the plan
  }

  /** Another language: re-word the plan, the open suggestion and the arrival. */
  relabel() {
    if (!this.trip) return;
    this.renderSource();
    if (this.itinerary) this.setPlan(this.itinerary);
    this.renderSuggestion();
    this.renderEta();
  }

  get active() {
    return this.trip !== null;
  }

  /** The trip this tab was following, if any: {trip_id, token, last_seq, city, demo}. */
  static stored() {
    try {
      const t = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
      if (t && typeof t.trip_id === "string" && typeof t.token === "string") {
        return { ...t, last_seq: Number.isInteger(t.last_seq) && t.last_seq > 0 ? t.last_seq : 0 };
      }
    } catch {
      // Unreadable: start afresh.
    }
    return null;
  }

  save() {
    if (this.trip) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.trip));
  }

  /** POST the itinerary as planned; resolves once the trip exists (the websocket opens on its own). */
  async start(itinerary, { city, modes, demo = false }) {
    const body = { itinerary, city };
    if (modes?.length) body.modes = modes;
    const created = await requestJSON(`${API}/trips`, { method: "POST", body });
    this.follow({ trip_id: created.trip_id, token: created.token, last_seq: 0, city, demo }, itinerary);
  }

  /** Show the live view for `trip` and connect; `itinerary` (optional) is drawn until the hello. */
  follow(trip, itinerary = null) {
    this.reset();
    this.trip = trip;
    this.save();
    document.body.dataset.view = "trip";
    const r = this.els.root;
    r.hidden = false;
    r.dataset.state = "connecting";
    r.dataset.tripId = trip.trip_id;
    r.dataset.hellos = "0";
    this.els.id.textContent = trip.trip_id;
    this.els.summary.hidden = true;
    this.els.leave.hidden = true;
    this.els.end.disabled = false;
    this.els.exp.disabled = false;
    this.els.del.disabled = false;
    this.els.demo.hidden = true;
    this.els.demoJam.disabled = false;
    this.els.demoJam.textContent = t("trip.demo.jam");
    this.setError("");
    this.liveEta = typeof trip.eta === "string" ? trip.eta : null; // kept across a reload
    this.setWarning(typeof trip.warning === "string" ? trip.warning : "");
    this.setStatus(t("trip.status.connecting"));
    this.renderSuggestion();
    if (itinerary) this.setPlan(itinerary);
    this.socket = new TripSocket(trip, {
      onMessage: (msg, { replay }) => this.handle(msg, replay),
      onSeq: () => this.save(),
      onConnection: (state, text) => this.setConn(state, text),
      onClosedForGood: (code, reason) => this.refused(code, reason),
    });
    this.socket.connect();
    if (trip.follow) this.startWatching(); // the traveller said yes before this reload
    this.renderSource();
    $("trip-title").focus({ preventScroll: true }); // the planner (and the button just pressed) is gone
  }

  /** The server closed for good (4400 / 4401 / 4404): no such trip any more, or not with this key. */
  refused(code, reason) {
    const gone = code === 4404;
    this.finish(gone ? "gone" : "refused");
    this.setError(gone ? t("trip.gone") : reason ? t("trip.refused_reason", { reason }) : t("trip.refused"));
  }

  send(message) {
    if (this.socket?.send(message)) return true;
    this.setError(t("trip.not_connected"));
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Server messages

  handle(msg, replay) {
    switch (msg.type) {
      case "hello": return this.onHello(msg);
      case "progress": return this.onProgress(msg);
      case "live_update": return this.onLiveUpdate(msg);
      case "switch_suggestion":
        // A replayed suggestion is in the hello already if it is still open.
        if (!replay) this.setSuggestion(msg);
        return undefined;
      case "suggestion_closed": {
        const closed = this.suggestion?.suggestion_id === msg.suggestion_id ? this.suggestion : null;
        if (closed) this.setSuggestion(null);
        // Keeping a plan that lost time or broke: what is wrong ahead stays in sight.
        if (closed && msg.outcome !== "withdrawn") this.warnAhead(closed);
        if (!replay) this.setStatus(t(CLOSED_KEYS.has(msg.outcome) ? `trip.closed.${msg.outcome}` : "trip.closed.other"));
        return undefined;
      }
      case "plan_updated":
        this.live.clear(); // leg indexes of earlier live updates were about the old plan
        this.setLiveEta(null); // the new plan's own arrival holds until the server says otherwise
        this.setWarning("");
        if (!replay) {
          this.setSuggestion(null);
          this.setPlan(msg.itinerary);
          this.setStatus(t("trip.status.new_plan"));
        }
        return undefined;
      case "trip_ended": return this.onEnded(msg.reason, msg.sent_at);
      case "error": return this.onError(msg);
      default: return undefined; // heartbeat, or a type from a later protocol version
    }
  }

  onHello(msg) {
    const hellos = this.socket.hellos;
    this.els.root.dataset.hellos = String(hellos);
    this.setError("");
    if (msg.itinerary) this.setPlan(msg.itinerary);
    this.setSuggestion(msg.suggestion ?? null);
    this.setSuggestionBusy(false); // an accept or decline lost with the old connection can be sent again
    if (msg.progress) this.onProgress(msg.progress);
    if (msg.status === "ended") {
      this.onEnded(null, msg.sent_at);
      return;
    }
    this.els.root.dataset.state = "live";
    this.els.demo.hidden = !this.trip.demo;
    this.els.follow.disabled = false;
    this.flushPosition(); // a position seen while disconnected
    if (hellos === 1 && !msg.progress) this.setStatus(t("trip.status.started"));
    else if (hellos > 1) this.setStatus(t("trip.status.reconnected"));
  }

  onProgress(p) {
    this.progress = p;
    this.renderSource();
    if (p.eta) this.eta = p.eta; // the schedule's arrival: a live projection (liveEta) wins
    const legs = this.itinerary?.legs ?? [];
    if (p.position && Number.isFinite(p.position.lat) && Number.isFinite(p.position.lon)) {
      const how = p.source === "position" ? t("trip.here.position") : t("trip.here.schedule");
      this.mapView.setLivePosition([p.position.lat, p.position.lon], t("trip.here", { how }));
    }
    if (Number.isInteger(p.leg_index) && legs.length) {
      const how = p.source === "position" ? t("trip.following.position") : t("trip.following.schedule");
      this.setStatus(t("trip.status.step", {
        i: formatNumber(Math.min(p.leg_index + 1, legs.length)), n: formatNumber(legs.length),
        mode: modeLabel(p.mode ?? legs[p.leg_index]?.mode), how,
      }));
    }
    this.renderEta();
    this.markCurrentLeg();
  }

  onLiveUpdate(msg) {
    for (const entry of Array.isArray(msg.legs) ? msg.legs : []) {
      if (Number.isInteger(entry?.leg_index)) this.live.set(entry.leg_index, entry);
    }
    if (msg.eta) this.setLiveEta(msg.eta);
    if (msg.notice?.code === "no_better_option") {
      // The plan broke and no other way exists: say so, with what is wrong and the new arrival.
      const tz = this.timezone();
      const what = trouble(msg.notice.reason, true);
      this.setWarning(t("trip.warning.no_better", { what, time: formatClock(msg.eta, tz) }));
      const why = phrase("detail", msg.notice.detail, tz)
        ?? (has(`trip.reason.${msg.notice.reason}`) ? t(`trip.reason.${msg.notice.reason}`) : t("trip.trouble.other"));
      this.setStatus(msg.notice.arrival
        ? t("trip.status.no_better_eta", { why, time: formatClock(msg.notice.arrival, tz) })
        : t("trip.status.no_better", { why }));
    }
    this.renderEta();
    this.renderLive();
  }

  onEnded(reason, at) {
    if (this.els.root.dataset.state === "deleted") return; // the deletion's own trip_ended: said already
    this.finish("ended");
    this.setSuggestion(null);
    const tz = this.timezone();
    const it = this.itinerary;
    const endedText = t(ENDED_KEYS.has(reason) ? `trip.ended.${reason}` : "trip.ended.other");
    const parts = [endedText];
    if (at) parts.push(t("trip.summary.ended_at", { time: formatClock(at, tz) }));
    if (it) {
      parts.push(t("trip.summary.last_plan", {
        dep: formatClock(it.departure, tz), arr: formatClock(it.arrival, tz), duration: formatSpan(it.departure, it.arrival),
      }));
    }
    this.els.summary.innerHTML = `<h3 class="trip-subtitle">${escapeHtml(t("trip.summary.title"))}</h3><p>${parts.map(escapeHtml).join(" ")}</p>`;
    this.els.summary.hidden = false;
    this.setStatus(endedText);
  }

  onError(msg) {
    if (msg.code === "unknown_suggestion" || msg.code === "suggestion_closed") this.setSuggestion(null);
    else this.setSuggestionBusy(false);
    this.setError(has(`trip.error.${msg.code}`) ? t(`trip.error.${msg.code}`) : msg.message || t("trip.error.other", { code: msg.code }));
  }

  /** No more reconnecting: the trip ended, was deleted, or the server refused it. */
  finish(state) {
    this.stopWatching();
    this.els.follow.disabled = true;
    this.socket?.stop();
    this.els.root.dataset.state = state;
    this.els.end.disabled = true;
    this.els.demo.hidden = true;
    this.els.leave.hidden = false;
    this.els.remaining.textContent = "";
    this.els.warning.textContent = ""; // nothing is ahead of a trip that is over
    this.els.warning.hidden = true;
    this.progress = null;
    this.setConn("closed", state === "ended" ? t("trip.conn.ended") : t("trip.conn.closed_short"));
  }

  // -------------------------------------------------------------------------------------------
  // Following the device's position (with the traveller's permission), else the timetable

  toggleFollow() {
    if (!this.trip) return;
    if (this.watchId !== null || this.geo === "asking") {
      this.stopWatching();
      this.geo = "off";
      this.trip.follow = false;
    } else {
      this.trip.follow = true;
      this.startWatching();
    }
    this.save();
    this.renderSource();
  }

  startWatching() {
    if (this.watchId !== null) return;
    if (!("geolocation" in navigator)) {
      this.geo = "unavailable";
      this.renderSource();
      return;
    }
    this.geo = "asking";
    this.lastSentAt = 0;
    this.watchId = navigator.geolocation.watchPosition(
      (pos) => this.onPosition(pos),
      (err) => this.onPositionError(err),
      { enableHighAccuracy: true, maximumAge: 5000, timeout: 30_000 },
    );
    this.renderSource();
  }

  stopWatching() {
    if (this.watchId !== null) navigator.geolocation.clearWatch(this.watchId);
    this.watchId = null;
    clearTimeout(this.positionTimer);
    this.pendingPosition = null;
  }

  onPosition(pos) {
    if (!this.trip) return;
    this.geo = "on";
    const { latitude, longitude, accuracy } = pos.coords;
    this.pendingPosition = { type: "position", lat: latitude, lon: longitude };
    if (Number.isFinite(accuracy)) this.pendingPosition.accuracy_m = Math.round(accuracy);
    this.flushPosition();
    this.renderSource();
  }

  /** Send the latest position, at most every POSITION_EVERY_MS; kept for later when offline. */
  flushPosition() {
    clearTimeout(this.positionTimer);
    if (!this.pendingPosition) return;
    const wait = this.lastSentAt + POSITION_EVERY_MS - Date.now();
    if (wait > 0) {
      this.positionTimer = setTimeout(() => this.flushPosition(), wait);
      return;
    }
    if (this.socket?.send(this.pendingPosition)) {
      this.lastSentAt = Date.now();
      this.pendingPosition = null;
    } else {
      this.positionTimer = setTimeout(() => this.flushPosition(), 1000); // not connected yet
    }
  }

  onPositionError(err) {
    if (err?.code === 1) { // PERMISSION_DENIED: no more asking; the timetable it is
      this.stopWatching();
      this.geo = "refused";
      if (this.trip) {
        this.trip.follow = false;
        this.save();
      }
    } else {
      this.geo = "unavailable"; // no fix yet, or lost: keep watching
    }
    this.renderSource();
  }

  /** Which clock the live trip follows, as the server's last progress says, and why. */
  renderSource() {
    const byPosition = this.progress?.source === "position";
    const { source, follow } = this.els;
    const key = {
      on: byPosition ? "trip.source.position" : "trip.source.waiting",
      asking: "trip.source.asking",
      refused: "trip.source.refused",
      unavailable: byPosition ? "trip.source.lost" : "trip.source.unavailable",
    }[this.geo] ?? (byPosition ? "trip.source.last" : "trip.source.off");
    source.textContent = t(key);
    source.dataset.source = byPosition ? "position" : "schedule";
    source.dataset.geo = this.geo;
    const watching = this.watchId !== null || this.geo === "asking";
    follow.setAttribute("aria-pressed", watching ? "true" : "false");
    follow.textContent = t(watching ? "trip.follow.stop" : "trip.follow.start");
  }

  // -------------------------------------------------------------------------------------------
  // Traveller actions

  accept() {
    const id = this.suggestion?.suggestion_id;
    if (id && this.send({ type: "accept", suggestion_id: id })) this.setSuggestionBusy(true, t("trip.suggestion.switching"));
  }

  decline() {
    const id = this.suggestion?.suggestion_id;
    if (id && this.send({ type: "decline", suggestion_id: id })) this.setSuggestionBusy(true, t("trip.suggestion.declining"));
  }

  end() {
    if (this.send({ type: "end" })) this.setStatus(t("trip.status.ending"));
  }

  /** GET /api/v1/trips/{id}: everything the server holds about this trip, saved as a JSON file. */
  async exportData() {
    const trip = this.trip;
    if (!trip) return;
    try {
      const data = await requestJSON(`${API}/trips/${encodeURIComponent(trip.trip_id)}`, { token: trip.token });
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `correspondance-trip-${trip.trip_id}.json`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      this.setError(t("trip.export_failed", { reason: e.message }));
    }
  }

  async deleteData() {
    const trip = this.trip;
    if (!trip) return;
    this.els.del.disabled = true;
    try {
      await requestJSON(`${API}/trips/${encodeURIComponent(trip.trip_id)}`, { method: "DELETE", token: trip.token, allowEmpty: true });
    } catch (e) {
      if (e?.status !== 404) { // 404: already gone, which is what was asked
        this.els.del.disabled = false;
        this.setError(t("trip.delete_failed", { reason: e.message }));
        return;
      }
    }
    sessionStorage.removeItem(STORAGE_KEY);
    this.finish("deleted");
    this.els.exp.disabled = true;
    this.setError("");
    this.els.summary.innerHTML = `<h3 class="trip-subtitle">${escapeHtml(t("trip.deleted.title"))}</h3><p>${escapeHtml(t("trip.deleted.body"))}</p>`;
    this.els.summary.hidden = false;
    this.setStatus(t("trip.deleted.status"));
  }

  async simulateJam() {
    const trip = this.trip;
    if (!trip) return;
    this.els.demoJam.disabled = true;
    try {
      await requestJSON(`${API}/trips/${encodeURIComponent(trip.trip_id)}/demo`, { method: "POST", token: trip.token, allowEmpty: true });
      this.els.demoJam.textContent = t("trip.demo.done");
      this.setStatus(t("trip.demo.status"));
    } catch (e) {
      this.els.demoJam.disabled = false;
      this.setError(e.code === "demo_disabled" ? t("trip.demo.off") : t("trip.demo.failed", { reason: e.message }));
    }
  }

  leave() {
    sessionStorage.removeItem(STORAGE_KEY);
    const { itinerary } = this;
    this.reset();
    this.els.root.hidden = true;
    this.els.root.dataset.state = "idle";
    this.mapView.clearTrip();
    this.mapView.clearRoute();
    document.body.dataset.view = "plan";
    this.onLeave?.(itinerary);
  }

  // -------------------------------------------------------------------------------------------
  // Rendering

  setPlan(itinerary) {
    this.itinerary = itinerary;
    // the lines keep the colours the traveller chose the plan by (map and chips alike)
    assignRouteColours([itinerary, this.suggestion?.itinerary].filter(Boolean), { keep: true });
    const key = JSON.stringify(itinerary);
    if (key !== this.planKey) {
      this.planKey = key;
      this.mapView.drawItinerary(itinerary);
      if (this.suggestion) this.mapView.drawSuggestion(this.suggestion.itinerary, this.suggestion.switch_at);
    }
    const legs = itinerary?.legs ?? [];
    const steps = legDetails(itinerary, this.timezone());
    steps.id = "trip-legs";
    steps.classList.add("trip-legs");
    steps.setAttribute("aria-label", t("trip.steps_label"));
    this.els.plan.replaceChildren(legChips(legs), steps);
    this.els.simNote.hidden = !legs.some((l) => l.simulated);
    this.renderEta();
    this.renderLive();
    this.markCurrentLeg();
  }

  /** When the current plan now arrives, by a suggestion: re-timed (`current_arrival`), or when
   * it broke, going around the trouble (`projected_arrival`), else the best way now (`new_arrival`). */
  projectedArrival(s) {
    if (!s) return null;
    if (!s.plan_broken) return s.current_arrival ?? null;
    return s.projected_arrival ?? s.new_arrival ?? null;
  }

  setLiveEta(eta) {
    this.liveEta = eta;
    if (this.trip) {
      if (eta) this.trip.eta = eta;
      else delete this.trip.eta;
      this.save();
    }
    this.renderEta();
  }

  /** A declined (or expired) suggestion: the plan kept still has trouble ahead; say what and when. */
  warnAhead(s) {
    const what = trouble(s.reason?.code, s.plan_broken);
    const eta = this.projectedArrival(s);
    const tz = this.timezone();
    this.setWarning(eta ? t("trip.warning.eta", { what, time: formatClock(eta, tz) }) : t("trip.warning.broken", { what }));
  }

  setWarning(text) {
    this.els.warning.textContent = text;
    this.els.warning.hidden = !text;
    if (this.trip) {
      if (text) this.trip.warning = text;
      else delete this.trip.warning;
      this.save();
    }
  }

  renderEta() {
    const tz = this.timezone();
    const planned = this.eta ?? this.itinerary?.arrival;
    const eta = this.liveEta ?? planned;
    const moved = Boolean(this.liveEta && planned && formatClock(this.liveEta, tz) !== formatClock(planned, tz));
    this.els.eta.textContent = eta ? `${moved ? "~" : ""}${formatClock(eta, tz)}` : "–";
    this.els.eta.dataset.live = moved ? "1" : "0";
    this.els.eta.title = moved ? t("trip.eta.projected", { time: formatClock(planned, tz) }) : "";
    let left = this.progress?.remaining_s;
    if (Number.isFinite(left) && moved && this.progress?.eta) {
      left += (Date.parse(this.liveEta) - Date.parse(this.progress.eta)) / 1000;
    }
    this.els.remaining.textContent = Number.isFinite(left) ? t("trip.remaining", { duration: formatDuration(Math.max(0, left)) }) : "";
  }

  /** Delays, cancellations, alerts and notes from `live_update` on the steps they touch. */
  renderLive() {
    const tz = this.timezone();
    for (const li of this.els.plan.querySelectorAll("#trip-legs > li")) {
      li.querySelector(".live-info")?.remove();
      const entry = this.live.get(Number(li.dataset.legIndex));
      li.classList.toggle("leg-cancelled", Boolean(entry?.cancelled));
      if (!entry) continue;
      const info = document.createElement("span");
      info.className = "live-info";
      const note = phrase("note", entry.note_code, tz) ?? entry.note;
      info.innerHTML = (entry.cancelled ? `<span class="cancelled">${escapeHtml(t("trip.note.cancelled"))}</span>` : "")
        + delayBadge(entry).trim() // alerts.js
        + (note ? `<span class="live-note">${escapeHtml(note)}</span>` : "")
        + (Array.isArray(entry.alerts) ? entry.alerts.map(alertLine).join("") : "");
      if (info.innerHTML) li.append(info);
    }
  }

  markCurrentLeg() {
    const current = this.progress?.leg_index;
    for (const li of this.els.plan.querySelectorAll("#trip-legs > li")) {
      if (Number(li.dataset.legIndex) === current) li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
    }
  }

  setSuggestion(s) {
    const changed = (s?.suggestion_id ?? null) !== (this.suggestion?.suggestion_id ?? null);
    this.suggestion = s && s.itinerary ? s : null;
    const projected = this.projectedArrival(this.suggestion);
    if (projected) this.setLiveEta(projected); // the server's latest word on the current plan
    if (!changed) return;
    this.renderSuggestion();
    if (this.suggestion) {
      this.mapView.drawSuggestion(this.suggestion.itinerary, this.suggestion.switch_at);
    } else {
      this.mapView.clearSuggestion();
    }
  }

  renderSuggestion() {
    const s = this.suggestion;
    if (!s) {
      this.els.suggestion.replaceChildren();
      return;
    }
    const tz = this.timezone();
    const card = document.createElement("article");
    card.className = "suggestion";
    card.dataset.suggestionId = s.suggestion_id;
    card.dataset.reason = s.reason?.code ?? "";
    card.setAttribute("role", "alert");
    card.setAttribute("aria-labelledby", "suggestion-title");
    const saved = Number(s.minutes_saved);
    const savedText = s.minutes_saved !== null && Number.isFinite(saved)
      ? t("trip.suggestion.saves", { n: formatNumber(Math.max(1, Math.round(saved))) })
      : t("trip.suggestion.broken");
    const instead = s.current_arrival ? ` ${escapeHtml(t("trip.suggestion.instead", { time: formatClock(s.current_arrival, tz) }))}` : "";
    const where = s.switch_at?.here || !s.switch_at?.name ? t("trip.suggestion.here") : s.switch_at.name;
    card.innerHTML = `<h3 id="suggestion-title" class="suggestion-title">${escapeHtml(t(s.plan_broken ? "trip.suggestion.title_broken" : "trip.suggestion.title"))}</h3>`
      + `<p class="suggestion-reason">${escapeHtml(suggestionText(s, tz))}</p>`
      + `<p><strong class="minutes-saved">${escapeHtml(savedText)}</strong> · ${escapeHtml(t("trip.suggestion.arrive"))} <strong class="new-arrival">${formatClock(s.new_arrival, tz)}</strong>${instead}</p>`
      + `<p>${escapeHtml(t("trip.suggestion.switch_at"))} <strong class="switch-at">${escapeHtml(where)}</strong></p>`
      + `<p class="suggestion-valid">${escapeHtml(t("trip.suggestion.valid_until"))} <time class="valid-until" datetime="${escapeHtml(s.valid_until)}">${formatClock(s.valid_until, tz)}</time></p>`;
    card.append(legChips(s.itinerary.legs ?? []));
    const details = document.createElement("details");
    details.className = "suggestion-steps";
    details.innerHTML = `<summary>${escapeHtml(t("trip.suggestion.steps"))}</summary>`;
    details.append(legDetails(s.itinerary, tz));
    card.append(details);
    const actions = document.createElement("div");
    actions.className = "suggestion-actions";
    actions.innerHTML = `<button type="button" class="btn btn-primary suggestion-accept">${escapeHtml(t("trip.suggestion.accept"))}</button>`
      + `<button type="button" class="btn btn-secondary suggestion-decline">${escapeHtml(t("trip.suggestion.decline"))}</button>`
      + '<span class="suggestion-busy" role="status"></span>';
    actions.querySelector(".suggestion-accept").addEventListener("click", () => this.accept());
    actions.querySelector(".suggestion-decline").addEventListener("click", () => this.decline());
    card.append(actions);
    this.els.suggestion.replaceChildren(card);
  }

  setSuggestionBusy(busy, text = "") {
    const card = this.els.suggestion.querySelector(".suggestion");
    if (!card) return;
    for (const b of card.querySelectorAll("button")) b.disabled = busy;
    card.querySelector(".suggestion-busy").textContent = busy ? text : "";
  }

  setStatus(text) {
    this.els.status.textContent = text;
  }

  setError(text) {
    this.els.error.textContent = text;
    this.els.error.hidden = !text;
  }

  setConn(state, text) {
    this.els.conn.dataset.conn = state;
    this.els.conn.textContent = text;
  }
}
