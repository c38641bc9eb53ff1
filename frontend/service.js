// When transit runs (GET /api/v1/cities/{city}/service): the feeds' service period, a week
// strip under the date choice marking days without service, a line on the chosen day's
// service hours, and — when a plan finds no transit — why, with the next time that has service.
import { API, getJSON } from "./api.js";
import { escapeHtml, formatDate, modeLabel } from "./format.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const MAX_DAYS = 366;

function addDays(iso, n) {
  const d = new Date(`${iso}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

const hh = (h) => `${String(h).padStart(2, "0")}:00`;

export class ServiceCalendar {
  /** `onPick(value)`: a new "YYYY-MM-DDTHH:MM" for the departure field (a strip day or the next service). */
  constructor({ onPick }) {
    this.onPick = onPick;
    this.city = null;
    this.days = new Map(); // "YYYY-MM-DD" → {trips, hours, first_departure, last_departure}
    this.period = null;
    this.modes = []; // the transit modes that run on some day of the period
    this.value = "";
    this.token = 0;
    this.els = {
      root: $("service"), period: $("service-period"), strip: $("service-days"), note: $("service-note"),
      noTransit: $("no-transit"), noTransitText: $("no-transit-text"), next: $("next-service"),
    };
    this.els.next.addEventListener("click", () => {
      if (this.els.next.dataset.value) this.onPick(this.els.next.dataset.value, { plan: true });
    });
    window.addEventListener("languagechange", () => this.render());
  }

  /** Load the city's service calendar (its whole period, at most a year). */
  async load(city) {
    const token = ++this.token;
    this.city = city;
    this.days = new Map();
    this.period = null;
    this.els.root.dataset.state = "loading";
    this.hideNoTransit();
    const start = city.service_start;
    const end = city.service_end && start && city.service_end < addDays(start, MAX_DAYS - 1)
      ? city.service_end : start && addDays(start, MAX_DAYS - 1);
    try {
      const params = new URLSearchParams(start ? { from: start, to: end } : {});
      const body = await getJSON(`${API}/cities/${encodeURIComponent(city.id)}/service?${params}`);
      if (token !== this.token) return;
      this.period = { start: body.service_start, end: body.service_end };
      for (const day of body.days ?? []) this.days.set(day.date, day);
      const modes = new Set();
      for (const day of this.days.values()) {
        for (const [mode, hours] of Object.entries(day.modes ?? {})) if (hours.length) modes.add(mode);
      }
      this.modes = [...modes].sort();
      this.els.root.dataset.state = "ready";
    } catch {
      if (token !== this.token) return;
      this.els.root.dataset.state = "error"; // a nicety: planning works without it
    }
    this.render();
  }

  /** The departure field changed. */
  setValue(value) {
    this.value = value;
    this.render();
  }

  day(date) {
    return this.days.get(date) ?? null;
  }

  /** The modes that do not run at all on `date` although they run on other days. */
  missing(date) {
    const day = this.day(date);
    return this.modes.filter((m) => !(day?.modes?.[m] ?? []).length);
  }

  /** A day: "none" (no trip), "partial" (some of the city's modes do not run), "ok". */
  dayStatus(date) {
    const day = this.day(date);
    if (!day || !day.trips) return "none";
    return this.missing(date).length ? "partial" : "ok";
  }

  /** "none" (no trip that day), "outside" (none running at that hour), "partial" (running,
   *  but some of the city's modes not that day), "ok", or "" (unknown). */
  status(value = this.value) {
    const [date, time] = String(value).split("T");
    if (!this.period || !date) return "";
    const day = this.day(date);
    if (!day || !day.trips) return "none";
    const hour = Number(String(time ?? "").slice(0, 2));
    if (!day.hours.includes(hour)) return "outside";
    return this.missing(date).length ? "partial" : "ok";
  }

  modeNames(modes) {
    return modes.map((m) => modeLabel(m).toLowerCase()).join(", ");
  }

  /** The first "YYYY-MM-DDTHH:MM" after `value` in an hour when every mode of the city runs
   *  (`full`), or any (not `full`); null when none comes before the period ends. */
  nextService(value = this.value, { full = true } = {}) {
    const [date, time] = String(value).split("T");
    if (!date) return null;
    const hour = Number(String(time ?? "00").slice(0, 2));
    for (let i = 0; i < MAX_DAYS; i += 1) {
      const d = addDays(date, i);
      const day = this.day(d);
      if (!day) {
        if (this.period && d > this.period.end) return null;
        continue;
      }
      const allRun = (h) => this.modes.every((m) => (day.modes?.[m] ?? []).includes(h));
      const next = day.hours.find((h) => (i === 0 ? h > hour : true) && (!full || allRun(h)));
      if (next !== undefined && day.trips) {
        // the first departure's minute when it falls in that hour, else the hour itself
        const first = String(day.first_departure ?? "");
        const minute = first.startsWith(hh(next).slice(0, 2)) ? first.slice(3, 5) : "00";
        return `${d}T${hh(next).slice(0, 2)}:${minute}`;
      }
    }
    return null;
  }

  render() {
    const { period, strip, note } = this.els;
    if (!this.period) {
      period.textContent = "";
      strip.replaceChildren();
      note.textContent = "";
      note.dataset.service = "";
      return;
    }
    period.textContent = t("service.period", { start: formatDate(this.period.start), end: formatDate(this.period.end) });
    const [date, time] = String(this.value).split("T");
    if (!date) return;
    // the chosen date's week, Monday first
    const weekday = (new Date(`${date}T12:00:00Z`).getUTCDay() + 6) % 7;
    const monday = addDays(date, -weekday);
    strip.replaceChildren(...Array.from({ length: 7 }, (_, i) => {
      const d = addDays(monday, i);
      const day = this.day(d);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "service-day";
      button.dataset.date = d;
      button.dataset.service = this.dayStatus(d);
      button.setAttribute("aria-pressed", d === date ? "true" : "false");
      const name = formatDate(d, { weekday: "short" });
      const num = formatDate(d, { day: "numeric" });
      const long = formatDate(d, { weekday: "long", day: "numeric", month: "long" });
      const state = button.dataset.service;
      // the visible "Mon 13" starts the accessible name; the rest says what runs that day
      const label = state === "none" ? t("service.day_none_label", { date: long })
        : state === "partial" ? t("service.day_partial_label", { date: long, missing: this.modeNames(this.missing(d)) })
          : t("service.day_label", { date: long, from: hh(day.hours[0] ?? 0), to: hh(((day.hours.at(-1) ?? 23) + 1) % 24) });
      button.innerHTML = `<span class="service-day-name">${escapeHtml(name)}</span> <span class="service-day-num">${escapeHtml(num)}</span>`
        + `<span class="visually-hidden">, ${escapeHtml(label)}</span>`;
      button.title = label;
      button.addEventListener("click", () => this.onPick(`${d}T${time ?? "12:00"}`));
      return button;
    }));
    const status = this.status();
    const day = this.day(date);
    const long = formatDate(date, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
    note.dataset.service = status;
    if (status === "none") note.textContent = t("service.note.none", { date: long });
    else if (status === "outside") {
      note.textContent = t("service.note.outside", { date: long, hours: this.hoursText(day) });
    } else if (status === "partial") {
      const running = this.modes.filter((m) => !this.missing(date).includes(m));
      note.textContent = t("service.note.partial", {
        date: long, missing: this.modeNames(this.missing(date)), running: this.modeNames(running), hours: this.hoursText(day),
      });
    } else if (status === "ok") note.textContent = t("service.note.ok", { date: long, hours: this.hoursText(day) });
    else note.textContent = "";
  }

  /** "05:00–00:00" — or several ranges when service pauses during the day. */
  hoursText(day) {
    const ranges = [];
    for (const h of day?.hours ?? []) {
      const last = ranges.at(-1);
      if (last && last[1] === h) last[1] = h + 1;
      else ranges.push([h, h + 1]);
    }
    return ranges.map(([a, b]) => `${hh(a)}–${hh(b % 24)}`).join(", ");
  }

  /** After a plan: when transit was asked for and none came back, say why and offer the next
   *  time with service. `planned`: the departure value planned; `anyTransit`: whether an
   *  itinerary uses transit. */
  explain(planned, { wantedTransit, anyTransit }) {
    this.hideNoTransit();
    if (!wantedTransit || anyTransit || !this.period) return;
    const status = this.status(planned);
    const [date] = String(planned).split("T");
    const long = formatDate(date, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
    const { noTransit, noTransitText, next } = this.els;
    noTransit.dataset.reason = {
      none: "no_service_day", outside: "no_service_hour", partial: "partial_service",
    }[status] ?? "no_route";
    if (status === "none") {
      const outside = date < this.period.start || date > this.period.end;
      noTransitText.textContent = outside
        ? t("service.plan.outside_period", { date: long, start: formatDate(this.period.start), end: formatDate(this.period.end) })
        : t("service.plan.no_day", { date: long });
    } else if (status === "outside") {
      noTransitText.textContent = t("service.plan.no_hour", { date: long, hours: this.hoursText(this.day(date)) });
    } else if (status === "partial") {
      const missing = this.missing(date);
      const running = this.modes.filter((m) => !missing.includes(m));
      noTransitText.textContent = t("service.plan.partial", {
        date: long, missing: this.modeNames(missing), running: this.modeNames(running),
      });
    } else {
      noTransitText.textContent = t("service.plan.no_route");
    }
    // nothing at that hour: the next hour with any service; a day short of a mode: with all
    const after = status === "ok" ? null : this.nextService(planned, { full: status !== "outside" });
    if (after) {
      const [d, time] = after.split("T");
      next.textContent = t("service.plan.next", { date: formatDate(d, { weekday: "short", day: "numeric", month: "short" }), time });
      next.dataset.value = after;
      next.hidden = false;
    }
    noTransit.hidden = false;
  }

  hideNoTransit() {
    this.els.noTransit.hidden = true;
    this.els.next.hidden = true;
    delete this.els.next.dataset.value;
    delete this.els.noTransit.dataset.reason;
  }
}
