// The dashboard's side panels: key numbers, congested streets (confirm / dismiss), feed health
// and the audit log. Each renders one API answer; none keeps state of its own.
import { levelKey, levelLabel, streetName } from "../congestion.js";

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A k-thresholded count: null means 1 … k − 1. */
export function countText(value, k) {
  if (value === null) return `fewer than ${k}`;
  if (value === undefined || Number.isNaN(Number(value))) return "–";
  return String(value);
}

export function renderKpis({ index, km, aggregates, k }) {
  if (index !== undefined) $("kpi-index").textContent = `${Number(index).toFixed(2)} % (${Number(km).toFixed(1)} km)`;
  if (aggregates) {
    $("kpi-trips").textContent = countText(aggregates.active_trips, k);
    $("kpi-made").textContent = countText(aggregates.suggestions_made, k);
    $("kpi-accepted").textContent = countText(aggregates.suggestions_accepted, k);
  }
  const small = k === 2 ? "A count of 1 shows" : `Counts from 1 to ${k - 1} show`;
  $("kpi-note").textContent = `${small} as “fewer than ${k}”: it could single someone out.`;
}

/** The congested streets, worst first, each with Confirm / Dismiss. */
export function renderCongested(geojson, { onConfirm, onDismiss }) {
  const list = $("congested-list");
  const features = [...(geojson?.features ?? [])];
  const rank = (f) => (levelKey(f.properties) === "closed" ? 5 : Number(levelKey(f.properties)));
  features.sort((a, b) => rank(b) - rank(a) || streetName(a.properties).localeCompare(streetName(b.properties)));
  list.dataset.state = features.length ? "ok" : "empty";
  if (!features.length) {
    list.replaceChildren(el("li", "ops-empty", "No congestion reported by enough contributors right now."));
    return;
  }
  list.replaceChildren(...features.map((f) => {
    const p = f.properties;
    const key = levelKey(p);
    const li = el("li", "ops-item congested-street");
    li.dataset.edge = String(p.edge);
    li.dataset.level = key;
    const head = el("div", "ops-item-head");
    const dot = el("span", `level-dot level-${key}`);
    dot.setAttribute("aria-hidden", "true");
    head.append(dot, el("strong", "", streetName(p)), el("span", "ops-chip", levelLabel(key)));
    const voices = p.contributors === null || p.contributors === undefined ? "" : `${p.contributors} contributors`;
    const decision = p.operator_decision ? `${p.operator_decision} by an operator` : "";
    const facts = el("p", "ops-facts", [voices, decision, `edge ${p.edge}`].filter(Boolean).join(" · "));
    const actions = el("div", "ops-actions");
    const confirm = el("button", "ops-btn ops-btn-small", "Confirm");
    confirm.type = "button";
    confirm.dataset.action = "confirm";
    confirm.setAttribute("aria-label", `Confirm congestion on ${streetName(p)} (edge ${p.edge})`);
    confirm.addEventListener("click", () => onConfirm(p));
    const dismiss = el("button", "ops-btn ops-btn-small", "Dismiss");
    dismiss.type = "button";
    dismiss.dataset.action = "dismiss";
    dismiss.setAttribute("aria-label", `Dismiss congestion on ${streetName(p)} (edge ${p.edge})`);
    dismiss.addEventListener("click", () => onDismiss(p));
    actions.append(confirm, dismiss);
    li.append(head, facts, actions);
    return li;
  }));
}

function formatAge(seconds) {
  const s = Number(seconds);
  if (seconds === null || seconds === undefined || !Number.isFinite(s)) return "never updated";
  if (s < 90) return `${Math.round(s)} s old`;
  if (s < 5400) return `${Math.round(s / 60)} min old`;
  if (s < 172_800) return `${Math.round(s / 3600)} h old`;
  return `${Math.round(s / 86_400)} days old`;
}

/** What a feed's health means to an operator: a replayed or simulated feed is never a green
 *  "ok", and data older than its own freshness limit (3 × ttl, at least an hour) is stale. */
export function feedState(feed) {
  if (["degraded", "stale", "pending"].includes(feed.status)) return feed.status;
  if (feed.replay) return "replay";
  if (feed.simulated) return "simulated";
  const limit = Math.max(3 * (Number(feed.ttl_s) || 0), 3600);
  if (Number(feed.staleness_s) > limit) return "stale";
  return "ok";
}

const STATE_TEXT = {
  ok: "OK",
  degraded: "Degraded",
  stale: "Stale",
  pending: "Waiting for first data",
  replay: "Replay (recorded data)",
  simulated: "Simulated",
};

export function renderFeeds(feeds) {
  const list = $("feed-list");
  list.dataset.state = feeds.length ? "ok" : "empty";
  if (!feeds.length) {
    list.replaceChildren(el("li", "ops-empty", "This city has no live feeds."));
    return;
  }
  list.replaceChildren(...feeds.map((f) => {
    const state = feedState(f);
    const li = el("li", "ops-item feed-health");
    li.dataset.feedId = f.feed_id;
    li.dataset.state = state;
    const head = el("div", "ops-item-head");
    head.append(el("strong", "", f.feed_id), el("span", "ops-kind", f.kind === "gtfs-rt" ? "GTFS-RT" : "GBFS"),
      el("span", `ops-chip feed-${state}`, STATE_TEXT[state] ?? state));
    const lines = [];
    if (f.replay && f.feed_last_updated) {
      lines.push(`Recorded ${new Date(f.feed_last_updated * 1000).toISOString().slice(0, 10)}, replayed as live: ${formatAge(f.staleness_s)} data`);
    } else {
      lines.push(`Data ${formatAge(f.staleness_s)}`);
    }
    lines.push(`${f.records ?? 0} records applied · ${f.records_rejected ?? 0} rejected · ${f.polls ?? 0} polls`);
    if (f.reason) lines.push(`Why: ${f.reason}`);
    else if (f.last_error) lines.push(`Last error: ${f.last_error}`);
    li.append(head, ...lines.map((line) => el("p", "ops-facts", line)));
    return li;
  }));
}

const ACTIONS = {
  "incident.declared": "declared an incident",
  "incident.updated": "edited an incident",
  "incident.ended": "ended an incident",
  "edge.confirmed": "confirmed congestion",
  "edge.dismissed": "dismissed congestion",
};

function detailText(details) {
  const parts = [];
  if (details.kind) parts.push(details.kind);
  if (details.level) parts.push(`level ${details.level}`);
  if (details.note) parts.push(`“${details.note}”`);
  if (details.changes) parts.push(`changed ${details.changes.join(", ")}`);
  if (details.edges) parts.push(`${details.edges.length} edges`);
  if (details.expires_at) parts.push(`until ${new Date(details.expires_at).toLocaleString()}`);
  return parts.join(" · ");
}

export function renderAudit(entries) {
  const body = $("audit-body");
  if (!entries.length) {
    const row = el("tr");
    const cell = el("td", "ops-empty", "No decisions yet.");
    cell.colSpan = 5;
    row.append(cell);
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...entries.map((e) => {
    const row = el("tr");
    row.dataset.action = e.action;
    const when = el("td");
    const time = el("time", "", new Date(e.at).toLocaleString());
    time.dateTime = e.at;
    when.append(time);
    row.append(when, el("td", "", e.operator), el("td", "", ACTIONS[e.action] ?? e.action),
      el("td", "", e.target), el("td", "", detailText(e.details ?? {})));
    return row;
  }));
}
