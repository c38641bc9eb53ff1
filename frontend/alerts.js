// Live transit state as the traveller sees it: the delay badge ("+4 min"), the timetable's
// time struck through beside the expected one, service alerts with what they mean, the
// cancelled mark, and the "simulated" label on anything a simulated feed said. Every text
// goes through t(); the API sends codes (effect, delay_s) and this module words them.
// Hooked in by legs.js (chips and steps) and trip.js (live_update on a followed trip).
import { escapeHtml, formatClock } from "./format.js";
import { language, loadLanguage, t } from "./i18n.js";

// The catalogue this module words with (a no-op when the app already loaded it).
await loadLanguage(language());

const ALERT_ICON = '<svg class="alert-icon" viewBox="0 0 24 24" fill="currentColor" aria-hidden="true" focusable="false"><path d="M1 21h22L12 2 1 21zm12-3h-2v-2h2v2zm0-4h-2v-4h2v4z"/></svg>';
const EFFECTS = new Set([
  "NO_SERVICE", "REDUCED_SERVICE", "SIGNIFICANT_DELAYS", "DETOUR", "ADDITIONAL_SERVICE", "MODIFIED_SERVICE",
  "STOP_MOVED", "ACCESSIBILITY_ISSUE", "OTHER_EFFECT", "UNKNOWN_EFFECT", "NO_EFFECT",
]);

/** The "simulated" label: anything from a simulated feed carries it. */
export function simulatedBadge() {
  return `<span class="badge-simulated" title="${escapeHtml(t("sim.title"))}">${escapeHtml(t("sim.badge"))}</span>`;
}

/** Whole minutes late, or 0 when on time, early, or the delay is under a minute. */
export function lateMinutes(delayS) {
  const d = Number(delayS);
  if (delayS === null || delayS === undefined || !Number.isFinite(d) || d < 60) return 0;
  return Math.round(d / 60);
}

/** " +4 min" badge for a leg (or live_update entry) more than a minute late; "" otherwise. */
export function delayBadge(leg) {
  const minutes = lateMinutes(leg?.delay_s);
  if (!minutes) return "";
  return ` <span class="delay" data-delay-s="${Number(leg.delay_s)}" title="${escapeHtml(t("live.delay_title"))}">`
    + `${escapeHtml(t("live.delay", { minutes }))}<span class="visually-hidden"> ${escapeHtml(t("live.late_sr", { minutes }))}</span></span>`;
}

/** A clock time, with the timetable's one struck through before it when the live feed moved it:
 *  "<s>13:05</s> 13:09". `which` is "departure" or "arrival". */
export function liveClock(leg, which, timeZone) {
  const expected = formatClock(leg[which], timeZone);
  const planned = leg[`scheduled_${which}`];
  if (!planned || !lateMinutes(leg.delay_s)) return expected;
  const scheduled = formatClock(planned, timeZone);
  if (scheduled === expected) return expected;
  return `<s class="scheduled-time"><span class="visually-hidden">${escapeHtml(t("live.scheduled_sr"))} </span>${scheduled}</s> `
    + `<span class="expected-time"><span class="visually-hidden">${escapeHtml(t("live.expected_sr"))} </span>${expected}</span>`;
}

/** One service alert: what it does (its effect, worded), the feed's own header, "simulated". */
export function alertLine(alert) {
  const effect = EFFECTS.has(alert?.effect) ? alert.effect : "UNKNOWN_EFFECT";
  const what = t(`alert.effect.${effect}`);
  const header = alert?.header || alert?.description || t("alert.fallback");
  const title = alert?.description && alert.description !== header ? ` title="${escapeHtml(alert.description)}"` : "";
  const sim = alert?.simulated ? ` ${simulatedBadge()}` : "";
  return `<span class="alert" data-effect="${escapeHtml(effect)}"${title}>${ALERT_ICON}`
    + `<span><strong class="alert-effect">${escapeHtml(what)}</strong><span class="visually-hidden">: </span> `
    + `<span class="alert-text">${escapeHtml(header)}</span>${sim}</span></span>`;
}

/** Every alert of the given legs once (by id), as lines. */
export function alertLines(legs) {
  const seen = new Set();
  let html = "";
  for (const leg of legs ?? []) {
    for (const alert of Array.isArray(leg?.alerts) ? leg.alerts : []) {
      const key = alert?.alert_id ?? alert?.header;
      if (seen.has(key)) continue;
      seen.add(key);
      html += alertLine(alert);
    }
  }
  return html;
}

/** What a `live_update` says of one leg of a followed trip: cancelled, late, its note, alerts. */
export function liveInfo(entry) {
  return (entry?.cancelled ? `<span class="cancelled">${escapeHtml(t("live.cancelled"))}</span>` : "")
    + delayBadge(entry).trim()
    + (entry?.note ? `<span class="live-note">${escapeHtml(entry.note)}</span>` : "")
    + (Array.isArray(entry?.alerts) ? entry.alerts.map(alertLine).join("") : "");
}
