// How legs read in the page: chips on an itinerary card, steps under it. Shared by the planner and the
// live-trip view. A leg from a simulated feed always carries the "simulated" badge.
import {
  formatClock, formatSpan, formatDistance, formatNumber, routeColour, routeTextColour, modeLabel, escapeHtml, legKind, formatDelay,
} from "./format.js";
import { modeIcon } from "./icons.js";
import { t } from "./i18n.js";

import { alertLine, delayBadge, liveClock, simulatedBadge } from "./alerts.js";

export { alertLine, delayBadge };

/** The "simulated" label (alerts.js words it). */
export const simBadge = simulatedBadge;

// The planner names the traveller's own ends "Origin" and "Destination" (routing/plan.py):
// words of the API, worded here; stops and stations keep their own names.
const END_NAMES = { Origin: "place.origin", Destination: "place.destination" };
export function placeName(place) {
  const name = place?.name ?? "?";
  if (place?.stop_id || place?.station_id || !END_NAMES[name]) return name;
  return name === "Origin" ? t("place.origin") : t("place.destination");
}

export function legChip(leg) {
  const chip = document.createElement("span");
  const kind = legKind(leg.mode);
  const label = modeLabel(leg.mode);
  const sim = leg.simulated ? simBadge() : "";
  if (kind !== "transit") {
    // Walk, bike, car, shared vehicles: icon + minutes (+ "simulated").
    chip.className = kind === "walk" ? "chip chip-walk" : `chip chip-street chip-${kind} chip-${escapeHtml(leg.mode)}`;
    const mins = Math.max(1, Math.round((leg.duration_s ?? 0) / 60));
    const how = kind === "walk" ? t("chip.walking", { count: mins }) : t("chip.by", { count: mins, mode: label.toLowerCase() });
    chip.innerHTML = `${modeIcon(leg.mode)}<span class="visually-hidden">${escapeHtml(label)} </span>`
      + `<span>${formatNumber(mins)}</span><span class="visually-hidden"> ${escapeHtml(how)}</span>${sim}`;
    chip.title = [label, formatDistance(leg.distance_m), leg.system_id && `· ${leg.system_id}`, leg.simulated && `(${t("badge.simulated")})`]
      .filter(Boolean).join(" ");
    return chip;
  }
  const bg = routeColour(leg);
  chip.className = `chip chip-transit chip-${escapeHtml(leg.mode)}`;
  chip.style.background = bg;
  chip.style.color = routeTextColour(leg);
  const name = leg.route_short_name || leg.route_long_name || label;
  chip.innerHTML = `${modeIcon(leg.mode)}<span class="visually-hidden">${escapeHtml(label)} </span><span>${escapeHtml(name)}</span>`
    + `${delayBadge(leg)}${sim}`;
  const towards = leg.headsign || leg.direction;
  chip.title = [label, leg.route_short_name, leg.route_long_name, towards && `→ ${towards}`]
    .filter(Boolean).join(" ");
  return chip;
}

/** The chips of a whole itinerary, separated by "›". */
export function legChips(legs) {
  const chips = document.createElement("span");
  chips.className = "chips";
  legs.forEach((leg, i) => {
    if (i > 0) {
      const sep = document.createElement("span");
      sep.className = "chip-sep";
      sep.setAttribute("aria-hidden", "true");
      sep.textContent = "›";
      chips.append(sep);
    }
    chips.append(legChip(leg));
  });
  return chips;
}

/** The steps of an itinerary: one `li[data-mode][data-leg-index]` per leg, times in the city's time zone. */
export function legDetails(itinerary, tz) {
  const ol = document.createElement("ol");
  ol.className = "legs";
  ol.setAttribute("aria-label", t("steps.label"));
  (itinerary.legs ?? []).forEach((leg, index) => {
    const li = document.createElement("li");
    const kind = legKind(leg.mode);
    li.dataset.mode = leg.mode ?? "";
    li.dataset.legIndex = String(index);
    const at = formatClock(leg.departure, tz);
    const sim = leg.simulated ? ` ${simBadge()}` : "";
    const span = formatSpan(leg.departure, leg.arrival); // the same minutes the clock times show
    if (kind === "walk") {
      const text = leg.to?.name
        ? t("step.walk_to", { distance: formatDistance(leg.distance_m), place: placeName(leg.to) })
        : t("step.walk", { distance: formatDistance(leg.distance_m) });
      li.innerHTML = `<span class="leg-time">${at}</span>${escapeHtml(text)} `
        + `<span class="leg-note">(${span})</span>${sim}`;
    } else if (kind !== "transit") {
      // "Bike-share: Simulated station 3 → Simulated station 12"
      const system = leg.system_id ? ` · ${escapeHtml(leg.system_id)}` : "";
      li.innerHTML = `<span class="leg-time">${at}</span><span class="leg-mode leg-mode-${kind}">${modeIcon(leg.mode)}`
        + `${escapeHtml(modeLabel(leg.mode))}:</span> ${escapeHtml(placeName(leg.from))} → ${escapeHtml(placeName(leg.to))}${sim}, `
        + `${escapeHtml(t("step.arrive", { time: formatClock(leg.arrival, tz) }))} <span class="leg-note">(${formatDistance(leg.distance_m)}, `
        + `${span}${system})</span>`;
    } else {
      const name = escapeHtml(leg.route_short_name || leg.route_long_name || "");
      const towards = leg.headsign || leg.direction;
      const head = towards ? ` <span class="leg-towards">${escapeHtml(t("step.towards", { place: towards }))}</span>` : "";
      const agency = leg.agency_name ? ` · ${escapeHtml(leg.agency_name)}` : "";
      // live: the timetable's times struck through beside the expected ones (alerts.js)
      const rides = (Number(leg.intermediate_stops) || 0) + 1; // stops travelled: the passed ones and the last
      const stops = `<span class="leg-stops" data-stops="${rides}">${escapeHtml(t("step.stops", { count: rides, n: formatNumber(rides) }))}</span>`;
      const fromTo = t("step.from_to", { from: placeName(leg.from), to: placeName(leg.to) });
      li.innerHTML = `<span class="leg-time">${liveClock(leg, "departure", tz)}</span>${escapeHtml(modeLabel(leg.mode))} <strong>${name}</strong>${head}`
        + ` ${escapeHtml(fromTo)}, `
        + `${escapeHtml(t("step.arrive", { time: "\u0000" })).replace("\u0000", liveClock(leg, "arrival", tz))}${delayBadge(leg)} <span class="leg-note">(${stops} · ${span}${agency})</span>${sim}`;
      for (const alert of Array.isArray(leg.alerts) ? leg.alerts : []) {
        li.insertAdjacentHTML("beforeend", alertLine(alert));
      }
    }
    ol.append(li);
  });
  return ol;
}
