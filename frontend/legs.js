// How legs read in the page: chips on an itinerary card, steps under it. Shared by the planner and the
// live-trip view. A leg from a simulated feed always carries the "simulated" badge.
import { formatClock, formatDuration, formatDistance, routeColour, textColourOn, modeLabel, escapeHtml, legKind } from "./format.js";
import { modeIcon } from "./icons.js";
import { alertLine, delayBadge, liveClock, simulatedBadge } from "./alerts.js";

export { alertLine, delayBadge };

export const SIM_BADGE = simulatedBadge();

export function legChip(leg) {
  const chip = document.createElement("span");
  const kind = legKind(leg.mode);
  const label = modeLabel(leg.mode);
  const sim = leg.simulated ? SIM_BADGE : "";
  if (kind !== "transit") {
    // Walk, bike, car, shared vehicles: icon + minutes (+ "simulated").
    chip.className = kind === "walk" ? "chip chip-walk" : `chip chip-street chip-${kind} chip-${escapeHtml(leg.mode)}`;
    const mins = Math.max(1, Math.round((leg.duration_s ?? 0) / 60));
    const how = kind === "walk" ? "walking" : `by ${label.toLowerCase()}`;
    chip.innerHTML = `${modeIcon(leg.mode)}<span class="visually-hidden">${escapeHtml(label)} </span>`
      + `<span>${mins}</span><span class="visually-hidden"> ${mins === 1 ? "minute" : "minutes"} ${escapeHtml(how)}</span>${sim}`;
    chip.title = [label, formatDistance(leg.distance_m), leg.system_id && `· ${leg.system_id}`, leg.simulated && "(simulated)"]
      .filter(Boolean).join(" ");
    return chip;
  }
  const bg = routeColour(leg);
  chip.className = `chip chip-transit chip-${escapeHtml(leg.mode)}`;
  chip.style.background = bg;
  chip.style.color = textColourOn(bg);
  const name = leg.route_short_name || leg.route_long_name || label;
  chip.innerHTML = `${modeIcon(leg.mode)}<span class="visually-hidden">${escapeHtml(label)} </span><span>${escapeHtml(name)}</span>`
    + `${delayBadge(leg)}${sim}`;
  chip.title = [label, leg.route_short_name, leg.route_long_name, leg.headsign && `→ ${leg.headsign}`]
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
  ol.setAttribute("aria-label", "Steps");
  (itinerary.legs ?? []).forEach((leg, index) => {
    const li = document.createElement("li");
    const kind = legKind(leg.mode);
    li.dataset.mode = leg.mode ?? "";
    li.dataset.legIndex = String(index);
    const t = formatClock(leg.departure, tz);
    const sim = leg.simulated ? ` ${SIM_BADGE}` : "";
    if (kind === "walk") {
      const dest = leg.to?.name ? ` to ${escapeHtml(leg.to.name)}` : "";
      li.innerHTML = `<span class="leg-time">${t}</span>Walk ${formatDistance(leg.distance_m)}${dest} `
        + `<span class="leg-note">(${formatDuration(leg.duration_s)})</span>${sim}`;
    } else if (kind !== "transit") {
      // "Bike-share: Simulated station 3 → Simulated station 12"
      const system = leg.system_id ? ` · ${escapeHtml(leg.system_id)}` : "";
      li.innerHTML = `<span class="leg-time">${t}</span><span class="leg-mode leg-mode-${kind}">${modeIcon(leg.mode)}`
        + `${escapeHtml(modeLabel(leg.mode))}:</span> ${escapeHtml(leg.from?.name ?? "?")} → ${escapeHtml(leg.to?.name ?? "?")}${sim}, `
        + `arrive ${formatClock(leg.arrival, tz)} <span class="leg-note">(${formatDistance(leg.distance_m)}, `
        + `${formatDuration(leg.duration_s)}${system})</span>`;
    } else {
      const name = escapeHtml(leg.route_short_name || leg.route_long_name || "");
      const head = leg.headsign ? ` towards ${escapeHtml(leg.headsign)}` : "";
      const agency = leg.agency_name ? ` · ${escapeHtml(leg.agency_name)}` : "";
      // live: the timetable's times struck through beside the expected ones (alerts.js)
      li.innerHTML = `<span class="leg-time">${liveClock(leg, "departure", tz)}</span>${escapeHtml(modeLabel(leg.mode))} <strong>${name}</strong>${head}`
        + ` from ${escapeHtml(leg.from?.name ?? "?")} to ${escapeHtml(leg.to?.name ?? "?")}, `
        + `arrive ${liveClock(leg, "arrival", tz)}${delayBadge(leg)} <span class="leg-note">(${formatDuration(leg.duration_s)}${agency})</span>${sim}`;
      for (const alert of Array.isArray(leg.alerts) ? leg.alerts : []) {
        li.insertAdjacentHTML("beforeend", alertLine(alert));
      }
    }
    ol.append(li);
  });
  return ol;
}
