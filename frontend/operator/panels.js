// The dashboard's side panels: key numbers, congested streets (confirm / dismiss), feed health
// and the audit log. Each renders one API answer; none keeps state of its own.
import { levelKey, levelLabel, streetName } from "../congestion.js";
import { $, el } from "../dom.js";
import { has, locale, t } from "../i18n.js";

/** A k-thresholded count: null means 1 … k − 1. */
export function countText(value, k) {
  if (value === null) return t("ops.fewer_than", { k });
  if (value === undefined || Number.isNaN(Number(value))) return "–";
  return String(value);
}

export function renderKpis({ index, km, aggregates, k }) {
  if (index !== undefined) {
    const pct = new Intl.NumberFormat(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(Number(index));
    const dist = new Intl.NumberFormat(locale(), { minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(Number(km));
    $("kpi-index").textContent = t("ops.kpi_index", { pct, km: dist });
  }
  if (aggregates) {
    $("kpi-trips").textContent = countText(aggregates.active_trips, k);
    $("kpi-made").textContent = countText(aggregates.suggestions_made, k);
    $("kpi-accepted").textContent = countText(aggregates.suggestions_accepted, k);
  }
  $("kpi-note").textContent = k === 2 ? t("ops.kpi_note_k2") : t("ops.kpi_note_k", { max: k - 1, k });
}

/** The congested streets, worst first, each with Confirm / Dismiss. */
export function renderCongested(geojson, { onConfirm, onDismiss }) {
  const list = $("congested-list");
  const features = [...(geojson?.features ?? [])];
  const rank = (f) => (levelKey(f.properties) === "closed" ? 5 : Number(levelKey(f.properties)));
  features.sort((a, b) => rank(b) - rank(a) || streetName(a.properties).localeCompare(streetName(b.properties)));
  list.dataset.state = features.length ? "ok" : "empty";
  if (!features.length) {
    list.replaceChildren(el("li", "ops-empty", t("ops.congested_none")));
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
    const voices = p.contributors === null || p.contributors === undefined ? "" : t("ops.contributors", { count: p.contributors, n: p.contributors });
    const decision = p.operator_decision ? (has(`ops.decision.${p.operator_decision}`) ? t(`ops.decision.${p.operator_decision}`) : p.operator_decision) : "";
    const facts = el("p", "ops-facts", [voices, decision, t("ops.edge", { edge: p.edge })].filter(Boolean).join(" · "));
    const actions = el("div", "ops-actions");
    const confirm = el("button", "ops-btn ops-btn-small", t("ops.confirm"));
    confirm.type = "button";
    confirm.dataset.action = "confirm";
    confirm.setAttribute("aria-label", t("ops.confirm_aria", { street: streetName(p), edge: p.edge }));
    confirm.addEventListener("click", () => onConfirm(p));
    const dismiss = el("button", "ops-btn ops-btn-small", t("ops.dismiss"));
    dismiss.type = "button";
    dismiss.dataset.action = "dismiss";
    dismiss.setAttribute("aria-label", t("ops.dismiss_aria", { street: streetName(p), edge: p.edge }));
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

const STATES = new Set(["ok", "degraded", "stale", "pending", "replay", "simulated"]);

export function renderFeeds(feeds) {
  const list = $("feed-list");
  list.dataset.state = feeds.length ? "ok" : "empty";
  if (!feeds.length) {
    list.replaceChildren(el("li", "ops-empty", t("ops.feeds_none")));
    return;
  }
  list.replaceChildren(...feeds.map((f) => {
    const state = feedState(f);
    const li = el("li", "ops-item feed-health");
    li.dataset.feedId = f.feed_id;
    li.dataset.state = state;
    const head = el("div", "ops-item-head");
    head.append(el("strong", "", f.feed_id), el("span", "ops-kind", f.kind === "gtfs-rt" ? "GTFS-RT" : "GBFS"),
      el("span", `ops-chip feed-${state}`, STATES.has(state) ? t(`ops.feed_state.${state}`) : state));
    const lines = [];
    if (f.replay && f.feed_last_updated) {
      lines.push(t("ops.feed.recorded", { date: new Date(f.feed_last_updated * 1000).toISOString().slice(0, 10), age: formatAge(f.staleness_s) }));
    } else {
      lines.push(t("ops.feed.data", { age: formatAge(f.staleness_s) }));
    }
    lines.push(t("ops.feed.counts", { records: f.records ?? 0, rejected: f.records_rejected ?? 0, polls: f.polls ?? 0 }));
    if (f.reason) lines.push(t("ops.feed.why", { reason: f.reason }));
    else if (f.last_error) lines.push(t("ops.feed.last_error", { error: f.last_error }));
    li.append(head, ...lines.map((line) => el("p", "ops-facts", line)));
    return li;
  }));
}

const ACTIONS = new Set(["incident.declared", "incident.updated", "incident.ended", "edge.confirmed", "edge.dismissed"]);

function detailText(details) {
  const parts = [];
  if (details.kind) parts.push(details.kind);
  if (details.level) parts.push(t("ops.audit.level", { level: details.level }));
  if (details.note) parts.push(t("ops.audit.note", { note: details.note }));
  if (details.changes) parts.push(t("ops.audit.changed", { fields: details.changes.join(", ") }));
  if (details.edges) parts.push(t("ops.audit.edges", { count: details.edges.length, n: details.edges.length }));
  if (details.expires_at) parts.push(t("ops.audit.until", { when: new Date(details.expires_at).toLocaleString(locale()) }));
  return parts.join(" · ");
}

export function renderAudit(entries) {
  const body = $("audit-body");
  if (!entries.length) {
    const row = el("tr");
    const cell = el("td", "ops-empty", t("ops.audit.none"));
    cell.colSpan = 5;
    row.append(cell);
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...entries.map((e) => {
    const row = el("tr");
    row.dataset.action = e.action;
    const when = el("td");
    const time = el("time", "", new Date(e.at).toLocaleString(locale()));
    time.dateTime = e.at;
    when.append(time);
    row.append(when, el("td", "", e.operator), el("td", "", ACTIONS.has(e.action) ? t(`ops.action.${e.action}`) : e.action),
      el("td", "", e.target), el("td", "", detailText(e.details ?? {})));
    return row;
  }));
}
