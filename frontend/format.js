// Pure helpers: parsing and formatting in the page's language (numbers, times, durations,
// distances through Intl in i18n.js's locale; words through t()). No DOM, no Leaflet.
import { locale, t } from "./i18n.js";

/** Parse "lat,lon" (spaces allowed). Returns [lat, lon] or null. */
export function parseLatLon(text) {
  const m = String(text ?? "").trim().match(/^(-?\d+(?:\.\d+)?)\s*[,;\s]\s*(-?\d+(?:\.\d+)?)$/);
  if (!m) return null;
  const lat = Number(m[1]);
  const lon = Number(m[2]);
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  return [lat, lon];
}

export function formatLatLon(lat, lon) {
  return `${lat.toFixed(5)},${lon.toFixed(5)}`;
}

/** The instant of an ISO-8601 string rounded to the minute it shows (half a minute up), so that
 *  clock times and durations computed from the same instants always agree. */
export function roundedMinute(iso) {
  const ms = Date.parse(iso);
  // seconds dropped, as the API's duration_s does: a departure at 12:37:35 reads 12:37, never a
  // minute after the vehicle left
  return Number.isNaN(ms) ? NaN : Math.floor(ms / 60_000) * 60_000;
}

/** "HH:MM" (24-hour, the locale's separator: "13:05", "13 h 05" is not used) of an ISO-8601
 *  instant, seconds dropped, shown in the city's time zone. */
export function formatClock(iso, timeZone) {
  const ms = roundedMinute(iso);
  if (Number.isNaN(ms)) return "?";
  const d = new Date(ms);
  try {
    return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone }).format(d);
  } catch {
    // Unknown time zone: fall back to the wall-clock part of the ISO string itself.
    const m = String(iso).match(/T(\d{2}:\d{2})/);
    return m ? m[1] : "?";
  }
}

/** The minutes between two instants as the clock shows them: the same minutes as formatClock,
 *  so "13:00 → 13:14" always reads "14 min". */
export function clockMinutes(startIso, endIso) {
  const a = roundedMinute(startIso);
  const b = roundedMinute(endIso);
  return Number.isNaN(a) || Number.isNaN(b) ? null : Math.max(0, Math.round((b - a) / 60_000));
}

/** "14 min", "1 h 05 min" in the page's language. */
export function formatMinutes(mins) {
  const n = Math.max(0, Math.round(Number(mins) || 0));
  if (n < 60) return t("duration.minutes", { n: formatNumber(n) });
  const h = Math.floor(n / 60);
  const m = n % 60;
  return m ? t("duration.hours_minutes", { h: formatNumber(h), m: String(m).padStart(2, "0") }) : t("duration.hours", { h: formatNumber(h) });
}

export function formatDuration(seconds) {
  return formatMinutes(Math.round((Number(seconds) || 0) / 60));
}

/** The duration between two ISO instants as their shown clock times say (see clockMinutes). */
export function formatSpan(startIso, endIso) {
  const mins = clockMinutes(startIso, endIso);
  return mins === null ? "?" : formatMinutes(mins);
}

export function formatNumber(n, options = {}) {
  return new Intl.NumberFormat(locale(), options).format(n);
}

export function formatDistance(meters) {
  const m = Number(meters) || 0;
  return m < 1000
    ? t("distance.m", { n: formatNumber(Math.round(m / 10) * 10) })
    : t("distance.km", { n: formatNumber(m / 1000, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) });
}

/** A date ("2019-05-15" or an ISO instant) in the page's language: "15 May 2019", "15 mai 2019". */
export function formatDate(isoDate, options = { dateStyle: "medium" }) {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(String(isoDate)) ? `${isoDate}T12:00:00Z` : isoDate);
  if (Number.isNaN(d.getTime())) return String(isoDate ?? "?");
  return new Intl.DateTimeFormat(locale(), { timeZone: "UTC", ...options }).format(d);
}

/** "#RRGGBB" from a GTFS route_color, or a per-mode default. */
const MODE_COLOURS = {
  bus: "#1f6fb2", rail: "#2e7d32", subway: "#6a1b9a", tram: "#c2185b", ferry: "#00838f",
  cable_car: "#8d6e63", gondola: "#8d6e63", funicular: "#8d6e63", trolleybus: "#1565c0", monorail: "#5d4037",
  bicycle: "#00796b", bike: "#00796b", bikeshare: "#00796b", scooter: "#00796b", car: "#455a64", carshare: "#455a64",
};
function hexColour(c) {
  return typeof c === "string" && /^#?[0-9a-fA-F]{6}$/.test(c) ? (c.startsWith("#") ? c : `#${c}`).toLowerCase() : null;
}
// Distinct route colours when a feed gives none, or gives one colour to several lines (Porto
// Alegre's EPTC paints every bus FF0000): all dark enough for white text (WCAG AA).
export const ROUTE_PALETTE = [
  "#1f6fb2", "#b23a1f", "#2e7d32", "#6a1b9a", "#ad5400", "#00697a", "#c2185b", "#4e5d12", "#5d4037", "#283593",
];
let assigned = new Map(); // route key → {bg, fg}, for the itineraries on screen

export function routeKey(leg) {
  return String(leg?.route_id ?? leg?.route_short_name ?? leg?.route_long_name ?? leg?.mode ?? "");
}

/** Colour every transit route of a set of itineraries: its GTFS route_color (and
 *  route_text_color) when no other route of the set has the same one, otherwise a palette
 *  colour no other route of the set uses. Two lines never share a colour in one set.
 *  With `keep`, a route that has a colour on screen keeps it (the trip a traveller started
 *  shows the lines in the colours they chose it by). */
export function assignRouteColours(itineraries, { keep = false } = {}) {
  const routes = new Map(); // key → first leg seen
  for (const it of itineraries ?? []) {
    for (const leg of it?.legs ?? []) {
      if (legKind(leg.mode) === "transit" && !routes.has(routeKey(leg))) routes.set(routeKey(leg), leg);
    }
  }
  const byGtfs = new Map();
  for (const leg of routes.values()) {
    const c = hexColour(leg.route_color);
    if (c) byGtfs.set(c, (byGtfs.get(c) ?? 0) + 1);
  }
  const next = new Map();
  const used = new Set();
  if (keep) {
    for (const key of routes.keys()) {
      const kept = assigned.get(key);
      if (kept && !used.has(kept.bg)) {
        next.set(key, kept);
        used.add(kept.bg);
      }
    }
  }
  for (const [key, leg] of routes) {
    if (next.has(key)) continue;
    const c = hexColour(leg.route_color);
    if (c && byGtfs.get(c) === 1 && !used.has(c)) {
      const text = hexColour(leg.route_text_color);
      next.set(key, { bg: c, fg: text && contrastRatio(text, c) >= 4.5 ? text : textColourOn(c) });
      used.add(c);
    }
  }
  let i = 0;
  for (const key of routes.keys()) {
    if (next.has(key)) continue;
    while (i < ROUTE_PALETTE.length && used.has(ROUTE_PALETTE[i])) i += 1;
    // more lines than the palette: shades cycle (never in practice at one plan's size)
    const bg = ROUTE_PALETTE[i % ROUTE_PALETTE.length];
    used.add(bg);
    i += 1;
    next.set(key, { bg, fg: "#ffffff" });
  }
  assigned = next;
  return next;
}

/** "#rrggbb" of a leg on the map and its chip: the colour assignRouteColours gave its route,
 *  else its GTFS route_color, else the mode's. */
export function routeColour(leg) {
  const given = legKind(leg?.mode) === "transit" ? assigned.get(routeKey(leg)) : null;
  if (given) return given.bg;
  return hexColour(leg?.route_color) ?? MODE_COLOURS[leg?.mode] ?? "#37474f";
}

/** The text colour on a leg's chip (route_text_color when its GTFS colour is shown). */
export function routeTextColour(leg) {
  const given = legKind(leg?.mode) === "transit" ? assigned.get(routeKey(leg)) : null;
  return given ? given.fg : textColourOn(routeColour(leg));
}

function luminance(hex) {
  const n = parseInt(hex.slice(1), 16);
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * lin((n >> 16) & 255) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255);
}

/** WCAG contrast ratio of two "#rrggbb" colours. */
export function contrastRatio(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

/** Black or white, whichever reads better on the given "#RRGGBB" background (WCAG relative luminance). */
export function textColourOn(hex) {
  const n = parseInt(hex.slice(1), 16);
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const L = 0.2126 * lin((n >> 16) & 255) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255);
  return (1.05) / (L + 0.05) >= (L + 0.05) / 0.05 ? "#ffffff" : "#000000";
}

export const MODE_LABELS = {
  walk: "Walk", bus: "Bus", rail: "Train", subway: "Metro", tram: "Tram", ferry: "Ferry",
  cable_car: "Cable car", gondola: "Gondola", funicular: "Funicular", trolleybus: "Trolleybus", monorail: "Monorail",
  bicycle: "Bike", bike: "Bike", car: "Car", bikeshare: "Bike-share", carshare: "Car-share", scooter: "Scooter",
};

/** How a leg is travelled, for styling: "walk", "bike" (own or shared bike, scooter), "drive" (own or shared car)
 *  or "transit" (anything with a timetable). */
const LEG_KINDS = {
  walk: "walk", bicycle: "bike", bike: "bike", bikeshare: "bike", scooter: "bike", car: "drive", carshare: "drive",
};
export function legKind(mode) {
  return LEG_KINDS[mode] ?? "transit";
}
export function isTransitLeg(leg) {
  return legKind(leg?.mode) === "transit";
}
/** Shared vehicles (bike-share, car-share, scooters): they come from a GBFS feed, which may be simulated. */
export function isSharedLeg(leg) {
  return Boolean(leg?.system_id) || ["bikeshare", "carshare", "scooter"].includes(leg?.mode);
}

/** "+N min" for a live delay of more than a minute; null otherwise (on time, early or unknown). */
export function formatDelay(delayS) {
  const d = Number(delayS);
  if (delayS === null || delayS === undefined || !Number.isFinite(d) || d <= 60) return null;
  return t("delay.plus", { n: formatNumber(Math.round(d / 60)) });
}
export function modeLabel(mode) {
  if (mode && MODE_LABELS[mode]) return t(`mode.${mode}`);
  return mode ? mode[0].toUpperCase() + mode.slice(1).replace(/_/g, " ") : t("mode.transit");
}

export function escapeHtml(s) {
  return String(s ?? "").replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]));
}

/** Local date-time for an <input type="datetime-local"> from the city's defaults ("2019-05-15", "13:00[:00]"). */
export function defaultDepartValue(city) {
  const date = city?.default_date ?? "";
  const time = String(city?.default_time ?? "12:00").slice(0, 5);
  return date ? `${date}T${time}` : "";
}

/** The API's `depart`: local time of the city, no offset, with seconds. */
export function departParam(inputValue) {
  const v = String(inputValue ?? "").trim();
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(v)) return `${v}:00`;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$/.test(v)) return v.slice(0, 19);
  return null;
}
