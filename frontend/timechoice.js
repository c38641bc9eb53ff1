// Time choices of the commuter page: "Leave now" / "Depart at" / "Arrive by", and the
// "Earlier" / "Later" buttons under the results, which replay the plan with the page
// cursors the API returns (GET /api/v1/plan: depart= or arrive=, or cursor=).
// Texts go through t(key, params); the app gives this module two empty containers.
import { language, loadLanguage, t } from "./i18n.js";

const CHOICES = ["now", "depart", "arrive"];

/** "YYYY-MM-DDTHH:MM" of a Date in a timezone (local city time, as the API reads it). */
export function localMinute(date, timeZone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(date).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

/**
 * "Leave now" for a city whose feeds are dated: now if today lies in the service period,
 * else the current clock time on the city's default service date (and say so).
 */
export function nowFor(city, date = new Date()) {
  const here = localMinute(date, city?.timezone || "UTC");
  const day = here.slice(0, 10);
  const start = city?.service_start ?? "";
  const end = city?.service_end ?? "";
  if (!start || !end || (day >= start && day <= end)) return { value: here, shifted: false };
  const onDay = city?.default_date || start;
  return { value: `${onDay}${here.slice(10)}`, shifted: true, day: onDay, start, end };
}

export class TimeChoice {
  /**
   * @param {object} options
   * @param {HTMLElement} options.root empty container for the choice (in the plan form)
   * @param {HTMLInputElement} options.input the datetime-local input the page already has
   * @param {HTMLElement} options.pager empty container under the results
   * @param {(cursor: string) => void} options.onPage asked to plan the page of a cursor
   */
  constructor({ root, input, pager, onPage }) {
    this.root = root;
    this.input = input;
    this.pager = pager;
    this.onPage = onPage;
    this.city = null;
    this.choice = "depart";
    this.ready = loadLanguage(language()).then(() => this.render());
  }

  render() {
    const fieldset = document.createElement("fieldset");
    fieldset.className = "time-choice";
    const legend = document.createElement("legend");
    legend.textContent = t("time.legend");
    fieldset.append(legend);
    const options = document.createElement("div");
    options.className = "time-options";
    for (const value of CHOICES) {
      const label = document.createElement("label");
      label.className = "time-option";
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "time-choice";
      radio.value = value;
      radio.id = `time-${value}`;
      radio.checked = value === this.choice;
      radio.addEventListener("change", () => this.choose(value));
      const text = document.createElement("span");
      text.textContent = t(`time.${value}`);
      label.append(radio, text);
      options.append(label);
    }
    fieldset.append(options);
    this.note = document.createElement("p");
    this.note.className = "hint time-note";
    this.note.id = "time-note";
    this.note.hidden = true;
    fieldset.append(this.note);
    this.root.replaceChildren(fieldset);
    this.pager.classList.add("pager");
    this.pager.setAttribute("aria-label", t("time.pages"));
    this.choose(this.choice);
  }

  /** The city changed: forget a shifted "now" note. */
  setCity(city) {
    this.city = city;
    if (this.note) this.choose(this.choice);
  }

  choose(value) {
    this.choice = value;
    const field = this.input.closest(".field") ?? this.input;
    const label = field.querySelector?.(`label[for="${this.input.id}"]`);
    if (label) label.textContent = t(value === "arrive" ? "time.arrive_at_label" : "time.depart_at_label");
    field.hidden = value === "now";
    this.input.required = value !== "now";
    if (!this.note) return;
    const now = value === "now" && this.city ? nowFor(this.city) : null;
    this.note.hidden = !now?.shifted;
    this.note.textContent = now?.shifted
      ? t("time.now_outside_service", { day: now.day, start: now.start, end: now.end })
      : "";
  }

  /** {depart} or {arrive} for the API (local city time, seconds), or null if unset. */
  query(city) {
    this.city = city;
    if (this.choice === "now") return { depart: `${nowFor(city).value}:00` };
    const v = String(this.input.value ?? "").trim();
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v)) return null;
    const at = v.length === 16 ? `${v}:00` : v;
    return this.choice === "arrive" ? { arrive: at } : { depart: at };
  }

  /** The text to show when no time is set. */
  missing() {
    return t(this.choice === "arrive" ? "time.missing_arrive" : "time.missing_depart");
  }

  /** Show "Earlier" / "Later" for a plan's `page` cursors (nothing: hide them). */
  showPages(page) {
    const buttons = [];
    for (const [key, cursor] of [["earlier", page?.earlier], ["later", page?.later]]) {
      if (!cursor) continue;
      const button = document.createElement("button");
      button.type = "button";
      button.className = `btn btn-secondary page-${key}`;
      button.dataset.page = key;
      button.textContent = t(`time.${key}`);
      button.addEventListener("click", () => this.onPage(cursor));
      buttons.push(button);
    }
    this.pager.replaceChildren(...buttons);
    this.pager.hidden = buttons.length === 0;
  }
}
