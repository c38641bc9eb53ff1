// Live trips (issue 6): start a trip from a planned itinerary and follow it over a websocket
// (docs/protocol.md): progress on the map, live delays and alerts, switch suggestions to accept or
// decline. The trip's id, key and highest `seq` seen live in sessionStorage, so a reload resumes.
import { API, requestJSON } from "./api.js";
import { formatClock, formatDuration, modeLabel, escapeHtml } from "./format.js";
import { legChips, legDetails } from "./legs.js";
import { liveInfo } from "./alerts.js";
import { TripSocket } from "./tripsocket.js";

const STORAGE_KEY = "correspondance.trip";

const ENDED = {
  arrived: "You have arrived.",
  ended: "You ended this trip.",
  timeout: "This trip timed out.",
  deleted: "This trip was deleted.",
};
// What is wrong ahead, by reason code, for the warning a declined or expired suggestion leaves.
const TROUBLE = {
  congestion: "Traffic jammed ahead",
  vehicle_unavailable: "No vehicle left at your pick-up station",
  dock_unavailable: "No free space left at your drop-off station",
  trip_cancelled: "Your connection is cancelled",
  delay: "Your connection is running late",
  stop_closed: "A stop on your way is closed",
};
const BROKEN_TROUBLE = { ...TROUBLE, congestion: "Road ahead closed" };
const CLOSED = {
  declined: "Suggestion declined: you keep your plan.",
  withdrawn: "The suggestion was withdrawn: it is no longer faster.",
  expired: "The suggestion expired.",
};

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
    };
    this.els.end.addEventListener("click", () => this.end());
    this.els.exp.addEventListener("click", () => this.exportData());
    this.els.del.addEventListener("click", () => this.deleteData());
    this.els.leave.addEventListener("click", () => this.leave());
    this.els.demoJam.addEventListener("click", () => this.simulateJam());
    this.socket = null;
    this.reset();
    window.addEventListener("online", () => this.socket?.reconnectNow());
  }

  reset() {
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
    this.els.demoJam.textContent = "Simulate a traffic jam ahead (demo)";
    this.setError("");
    this.liveEta = typeof trip.eta === "string" ? trip.eta : null; // kept across a reload
    this.setWarning(typeof trip.warning === "string" ? trip.warning : "");
    this.setStatus("Connecting to your trip…");
    this.renderSuggestion();
    if (itinerary) this.setPlan(itinerary);
    this.socket = new TripSocket(trip, {
      onMessage: (msg, { replay }) => this.handle(msg, replay),
      onSeq: () => this.save(),
      onConnection: (state, text) => this.setConn(state, text),
      onClosedForGood: (code, reason) => this.refused(code, reason),
    });
    this.socket.connect();
    $("trip-title").focus({ preventScroll: true }); // the planner (and the button just pressed) is gone
  }

  /** The server closed for good (4400 / 4401 / 4404): no such trip any more, or not with this key. */
  refused(code, reason) {
    const gone = code === 4404;
    this.finish(gone ? "gone" : "refused");
    this.setError(gone
      ? "This trip no longer exists on the server (it ended, expired or was deleted)."
      : `The server refused to follow this trip${reason ? `: ${reason}` : "."}`);
  }

  send(message) {
    if (this.socket?.send(message)) return true;
    this.setError("Not connected to the server right now: try again in a moment.");
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
        if (!replay) this.setStatus(CLOSED[msg.outcome] ?? "The suggestion is closed.");
        return undefined;
      }
      case "plan_updated":
        this.live.clear(); // leg indexes of earlier live updates were about the old plan
        this.setLiveEta(null); // the new plan's own arrival holds until the server says otherwise
        this.setWarning("");
        if (!replay) {
          this.setSuggestion(null);
          this.setPlan(msg.itinerary);
          this.setStatus("New plan: follow the steps below.");
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
    if (hellos === 1 && !msg.progress) this.setStatus("Trip started: follow the steps below.");
    else if (hellos > 1) this.setStatus("Reconnected.");
  }

  onProgress(p) {
    this.progress = p;
    if (p.eta) this.eta = p.eta; // the schedule's arrival: a live projection (liveEta) wins
    const legs = this.itinerary?.legs ?? [];
    if (p.position && Number.isFinite(p.position.lat) && Number.isFinite(p.position.lon)) {
      const how = p.source === "position" ? "from your position" : "from the timetable";
      this.mapView.setLivePosition([p.position.lat, p.position.lon], `You are here (${how})`);
    }
    if (Number.isInteger(p.leg_index) && legs.length) {
      const how = p.source === "position" ? "following your position" : "following the timetable";
      this.setStatus(`Step ${Math.min(p.leg_index + 1, legs.length)} of ${legs.length}: `
        + `${modeLabel(p.mode ?? legs[p.leg_index]?.mode)} · ${how}`);
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
      const what = BROKEN_TROUBLE[msg.notice.reason] ?? "Your plan no longer works";
      const tz = this.timezone();
      this.setWarning(`No better way right now. ${what} — your arrival is now ~${formatClock(msg.eta, tz)}.`);
      this.setStatus(msg.notice.message ?? "No better way was found.");
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
    const parts = [ENDED[reason] ?? "This trip has ended."];
    if (at) parts.push(`Ended at ${formatClock(at, tz)}.`);
    if (it) parts.push(`Last plan: ${formatClock(it.departure, tz)} → ${formatClock(it.arrival, tz)} (${formatDuration(it.duration_s)}).`);
    this.els.summary.innerHTML = `<h3 class="trip-subtitle">Trip summary</h3><p>${parts.map(escapeHtml).join(" ")}</p>`;
    this.els.summary.hidden = false;
    this.setStatus(ENDED[reason] ?? "This trip has ended.");
  }

  onError(msg) {
    if (msg.code === "unknown_suggestion" || msg.code === "suggestion_closed") this.setSuggestion(null);
    else this.setSuggestionBusy(false);
    this.setError(msg.message || `The server refused that (${msg.code}).`);
  }

  /** No more reconnecting: the trip ended, was deleted, or the server refused it. */
  finish(state) {
    this.socket?.stop();
    this.els.root.dataset.state = state;
    this.els.end.disabled = true;
    this.els.demo.hidden = true;
    this.els.leave.hidden = false;
    this.els.remaining.textContent = "";
    this.els.warning.textContent = ""; // nothing is ahead of a trip that is over
    this.els.warning.hidden = true;
    this.progress = null;
    this.setConn("closed", state === "ended" ? "ended" : "closed");
  }

  // -------------------------------------------------------------------------------------------
  // Traveller actions

  accept() {
    const id = this.suggestion?.suggestion_id;
    if (id && this.send({ type: "accept", suggestion_id: id })) this.setSuggestionBusy(true, "Switching…");
  }

  decline() {
    const id = this.suggestion?.suggestion_id;
    if (id && this.send({ type: "decline", suggestion_id: id })) this.setSuggestionBusy(true, "Declining…");
  }

  end() {
    if (this.send({ type: "end" })) this.setStatus("Ending the trip…");
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
      this.setError(`Could not download the trip data: ${e.message}`);
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
        this.setError(`Could not delete the trip data: ${e.message}`);
        return;
      }
    }
    sessionStorage.removeItem(STORAGE_KEY);
    this.finish("deleted");
    this.els.exp.disabled = true;
    this.setError("");
    this.els.summary.innerHTML = '<h3 class="trip-subtitle">Trip data deleted</h3><p>The server no longer holds anything about this trip.</p>';
    this.els.summary.hidden = false;
    this.setStatus("Your trip data was deleted.");
  }

  async simulateJam() {
    const trip = this.trip;
    if (!trip) return;
    this.els.demoJam.disabled = true;
    try {
      await requestJSON(`${API}/trips/${encodeURIComponent(trip.trip_id)}/demo`, { method: "POST", token: trip.token, allowEmpty: true });
      this.els.demoJam.textContent = "Traffic jam simulated (demo)";
      this.setStatus("Demo: the road ahead is closed for this trip (simulated)…");
    } catch (e) {
      this.els.demoJam.disabled = false;
      this.setError(e.code === "demo_disabled" ? "Demo mode is off on this server." : `Demo failed: ${e.message}`);
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
    steps.setAttribute("aria-label", "Steps of your plan");
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
    const what = (s.plan_broken ? BROKEN_TROUBLE : TROUBLE)[s.reason?.code] ?? "Trouble ahead on your plan";
    const eta = this.projectedArrival(s);
    const tz = this.timezone();
    this.setWarning(eta ? `${what} — your arrival is now ~${formatClock(eta, tz)}.` : `${what} — your plan no longer works.`);
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
    this.els.eta.title = moved ? `Projected under live conditions (planned ${formatClock(planned, tz)})` : "";
    let left = this.progress?.remaining_s;
    if (Number.isFinite(left) && moved && this.progress?.eta) {
      left += (Date.parse(this.liveEta) - Date.parse(this.progress.eta)) / 1000;
    }
    this.els.remaining.textContent = Number.isFinite(left) ? `(${formatDuration(Math.max(0, left))} left)` : "";
  }

  /** Delays, cancellations, alerts and notes from `live_update` on the steps they touch. */
  renderLive() {
    for (const li of this.els.plan.querySelectorAll("#trip-legs > li")) {
      li.querySelector(".live-info")?.remove();
      const entry = this.live.get(Number(li.dataset.legIndex));
      li.classList.toggle("leg-cancelled", Boolean(entry?.cancelled));
      if (!entry) continue;
      const info = document.createElement("span");
      info.className = "live-info";
      info.innerHTML = liveInfo(entry); // alerts.js
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
      ? `Saves ${Math.max(1, Math.round(saved))} min`
      : "Your plan no longer works";
    const instead = s.current_arrival ? ` instead of ${formatClock(s.current_arrival, tz)}` : "";
    card.innerHTML = `<h3 id="suggestion-title" class="suggestion-title">${s.plan_broken ? "Change of plan needed" : "A faster way"}</h3>`
      + `<p class="suggestion-reason">${escapeHtml(s.reason?.message ?? "A better way exists.")}</p>`
      + `<p><strong class="minutes-saved">${savedText}</strong> · arrive <strong class="new-arrival">${formatClock(s.new_arrival, tz)}</strong>${instead}</p>`
      + `<p>Switch at <strong class="switch-at">${escapeHtml(s.switch_at?.name ?? "your current position")}</strong></p>`
      + `<p class="suggestion-valid">Valid until <time class="valid-until" datetime="${escapeHtml(s.valid_until)}">${formatClock(s.valid_until, tz)}</time></p>`;
    card.append(legChips(s.itinerary.legs ?? []));
    const details = document.createElement("details");
    details.className = "suggestion-steps";
    details.innerHTML = "<summary>Steps of the new plan</summary>";
    details.append(legDetails(s.itinerary, tz));
    card.append(details);
    const actions = document.createElement("div");
    actions.className = "suggestion-actions";
    actions.innerHTML = '<button type="button" class="btn btn-primary suggestion-accept">Accept</button>'
      + '<button type="button" class="btn btn-secondary suggestion-decline">Decline</button>'
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
