// Pure helpers: parsing and formatting. No DOM, no Leaflet.

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

/** "HH:MM" of an ISO-8601 instant, shown in the city's time zone. */
export function formatClock(iso, timeZone) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "?";
  try {
    return new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone }).format(d);
  } catch {
    // Unknown time zone: fall back to the wall-clock part of the ISO string itself.
    const m = String(iso).match(/T(\d{2}:\d{2})/);
    return m ? m[1] : "?";
  }
}

export function formatDuration(seconds) {
  const mins = Math.max(0, Math.round((seconds ?? 0) / 60));
  if (mins < 60) return `${mins} min`;
  const h = Math.floor(mins / 60);
  const m = mins % 60;
  return m ? `${h} h ${String(m).padStart(2, "0")} min` : `${h} h`;
}

export function formatDistance(meters) {
  const m = Number(meters) || 0;
  return m < 1000 ? `${Math.round(m / 10) * 10} m` : `${(m / 1000).toFixed(1)} km`;
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** "#RRGGBB" from a GTFS route_color, or a per-mode default. */
const MODE_COLOURS = {
  bus: "#1f6fb2", rail: "#2e7d32", subway: "#6a1b9a", tram: "#c2185b", ferry: "#00838f",
  cable_car: "#8d6e63", gondola: "#8d6e63", funicular: "#8d6e63", trolleybus: "#1565c0", monorail: "#5d4037",
  bicycle: "#00796b", bike: "#00796b", bikeshare: "#00796b", scooter: "#00796b", car: "#455a64", carshare: "#455a64",
};
export function routeColour(leg) {
  const c = leg?.route_color;
  if (typeof c === "string" && /^#?[0-9a-fA-F]{6}$/.test(c)) return c.startsWith("#") ? c : `#${c}`;
  return MODE_COLOURS[leg?.mode] ?? "#37474f";
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
  return `+${Math.round(d / 60)} min`;
}
export function modeLabel(mode) {
  return MODE_LABELS[mode] ?? (mode ? mode[0].toUpperCase() + mode.slice(1).replace(/_/g, " ") : "Transit");
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
