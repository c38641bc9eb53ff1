// Place search for the From and To fields: suggestions as you type (GET /api/v1/places),
// "my location" (asked for only when the traveller presses it), and recent places kept on
// this device (localStorage, clearable). Typing "lat,lon" and tapping the map keep working:
// pointOf() reads a picked place, else the field's "lat,lon".
//
// Each field is an ARIA 1.2 combobox (https://www.w3.org/WAI/ARIA/apg/patterns/combobox/):
// the input keeps focus; ArrowDown/ArrowUp move through the listbox (aria-activedescendant),
// Enter picks, Escape closes, Alt+ArrowDown opens. A polite live region says how many places
// were found.
import * as i18n from "./i18n.js";
import { API, getJSON } from "./api.js";
import { parseLatLon, formatDistance } from "./format.js";

const { t } = i18n;
const DEBOUNCE_MS = 120;
const LIMIT = 8;
const RECENT_KEY = "correspondance.recent-places.v1";
const RECENT_MAX = 6;
const GEO_OPTIONS = { enableHighAccuracy: true, timeout: 15_000, maximumAge: 60_000 };

/** The word for a place's category ("Stop", "Street", "School"...), falling back on its kind. */
function categoryWord(place) {
  const word = t(`places.category.${place.category}`);
  return word === `places.category.${place.category}` ? t(`places.kind.${place.kind}`) : word;
}

/** "Stop · 343, T5 · 1.2 km" */
function secondaryLine(place) {
  const parts = [categoryWord(place)];
  if (place.secondary) parts.push(place.secondary);
  if (Number.isFinite(place.distance_m)) parts.push(formatDistance(place.distance_m));
  return parts.join(" · ");
}

/** Recent places per city, on this device only. Storage may be off (private mode): then none. */
const recent = {
  read() {
    try {
      const all = JSON.parse(localStorage.getItem(RECENT_KEY) ?? "{}");
      return all && typeof all === "object" && !Array.isArray(all) ? all : {};
    } catch {
      return {};
    }
  },
  list(cityId) {
    const items = this.read()[cityId];
    return Array.isArray(items)
      ? items.filter((p) => p && typeof p.name === "string" && Number.isFinite(p.lat) && Number.isFinite(p.lon))
      : [];
  },
  add(cityId, place) {
    const all = this.read();
    const key = (p) => `${p.kind}|${p.name}|${p.lat.toFixed(5)}|${p.lon.toFixed(5)}`;
    const kept = { kind: place.kind, name: place.name, secondary: place.secondary ?? "",
      category: place.category, lat: place.lat, lon: place.lon, ids: place.ids ?? [] };
    const items = [kept, ...this.list(cityId).filter((p) => key(p) !== key(kept))].slice(0, RECENT_MAX);
    try {
      localStorage.setItem(RECENT_KEY, JSON.stringify({ ...all, [cityId]: items }));
    } catch { /* full or disabled: recent places are a nicety */ }
  },
  clear(cityId) {
    const all = this.read();
    delete all[cityId];
    try {
      if (Object.keys(all).length) localStorage.setItem(RECENT_KEY, JSON.stringify(all));
      else localStorage.removeItem(RECENT_KEY);
    } catch { /* nothing to clear */ }
  },
};

let uid = 0;

/** One From or To field made a combobox. */
class PlaceField {
  constructor(owner, kind, input) {
    this.owner = owner;
    this.kind = kind;
    this.input = input;
    this.options = []; // [{place, element, action}]
    this.active = -1;
    this.token = 0;
    this.timer = 0;
    const id = input.id || `place-${++uid}`;

    this.popup = document.createElement("div");
    this.popup.className = "place-popup";
    this.popup.hidden = true;
    this.note = document.createElement("p");
    this.note.className = "place-note";
    this.note.hidden = true;
    this.listbox = document.createElement("ul");
    this.listbox.id = `${id}-places`;
    this.listbox.className = "place-list";
    this.listbox.setAttribute("role", "listbox");
    this.listbox.dataset.state = "idle";
    this.clearButton = document.createElement("button");
    this.clearButton.type = "button";
    this.clearButton.className = "place-clear";
    this.clearButton.hidden = true;
    this.popup.append(this.note, this.listbox, this.clearButton);
    input.after(this.popup);
    input.closest(".field")?.classList.add("place-field");

    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", this.listbox.id);
    input.setAttribute("inputmode", "search");
    input.setAttribute("enterkeyhint", "search");
    input.maxLength = 200;

    input.addEventListener("input", () => this.onInput());
    input.addEventListener("keydown", (e) => this.onKeyDown(e));
    // an empty field offers its recent places on focus (a list would cover the next field:
    // without recent places it waits for a second tap or ArrowDown, "my location" has a button)
    input.addEventListener("focus", () => {
      this.focusedAt = performance.now();
      if (!input.value.trim() && recent.list(this.owner.cityId()).length) this.showStart();
    });
    input.addEventListener("click", () => {
      const secondTap = performance.now() - (this.focusedAt ?? 0) > 300;
      if (!input.value.trim() && this.popup.hidden && secondTap) this.showStart();
    });
    input.addEventListener("blur", (e) => this.onBlur(e));
    this.clearButton.addEventListener("blur", (e) => this.onBlur(e));
    this.clearButton.addEventListener("click", () => {
      recent.clear(this.owner.cityId());
      this.owner.announce(t("places.recentCleared"));
      this.input.focus();
      this.showStart();
    });
    // a pointer on an option must not blur the input first
    this.popup.addEventListener("mousedown", (e) => { if (e.target.closest("[role=option]")) e.preventDefault(); });
    this.listbox.addEventListener("click", (e) => {
      const li = e.target.closest("[role=option]");
      if (li) this.choose(Number(li.dataset.index));
    });
    this.label();
  }

  /** Texts that depend on the language. */
  label() {
    this.input.placeholder = t("places.placeholder");
    this.listbox.setAttribute("aria-label", this.kind === "from" ? t("places.listFrom") : t("places.listTo"));
    this.clearButton.textContent = t("places.clearRecent");
  }

  /** The picked place's [lat, lon] while the field still shows its name, else the typed "lat,lon". */
  point() {
    const d = this.input.dataset;
    if (d.placeName !== undefined && d.placeName === this.input.value) {
      const lat = Number(d.placeLat);
      const lon = Number(d.placeLon);
      if (Number.isFinite(lat) && Number.isFinite(lon)) return [lat, lon];
    }
    return parseLatLon(this.input.value);
  }

  get picked() {
    const d = this.input.dataset;
    return d.placeName === undefined ? null
      : { name: d.placeName, lat: Number(d.placeLat), lon: Number(d.placeLon) };
  }

  set picked(place) {
    const d = this.input.dataset;
    if (!place) {
      delete d.placeName; delete d.placeLat; delete d.placeLon;
      return;
    }
    d.placeName = place.name;
    d.placeLat = String(place.lat);
    d.placeLon = String(place.lon);
  }

  onInput() {
    const text = this.input.value.trim();
    clearTimeout(this.timer);
    if (!text) {
      this.showStart();
      return;
    }
    if (parseLatLon(text)) { // coordinates: nothing to look up
      this.close();
      return;
    }
    this.listbox.dataset.state = "loading";
    this.timer = setTimeout(() => this.search(text), DEBOUNCE_MS);
  }

  async search(text) {
    const city = this.owner.cityId();
    if (!city) return;
    // an answer to an older text is dropped when it comes (its request is not aborted: the
    // answer is small and fast, and an abort is a failed request in the browser's log)
    const token = ++this.token;
    const params = new URLSearchParams({ city, q: text, limit: String(LIMIT) });
    const centre = this.owner.centre();
    if (centre) params.set("near", `${centre[0].toFixed(5)},${centre[1].toFixed(5)}`);
    try {
      const body = await getJSON(`${API}/places?${params}`);
      if (token !== this.token) return;
      const found = Array.isArray(body?.places) ? body.places : [];
      this.render(found.map((place) => ({ place })), found.length ? "" : t("places.none", { query: text }));
      this.listbox.dataset.state = found.length ? "results" : "empty";
      this.owner.announce(found.length ? t("places.found", { count: found.length }) : t("places.none", { query: text }));
    } catch (e) {
      if (token !== this.token) return;
      this.render([], t("places.unavailable"));
      this.listbox.dataset.state = "error";
      this.owner.announce(t("places.unavailable"));
    }
  }

  /** The empty field's list: "my location", then recent places. */
  showStart() {
    ++this.token;
    const items = [{ action: "locate" }];
    const recents = recent.list(this.owner.cityId());
    for (const place of recents) items.push({ place, recent: true });
    this.render(items, "");
    this.clearButton.hidden = recents.length === 0;
    this.listbox.dataset.state = recents.length ? "recent" : "start";
  }

  render(items, note) {
    this.options = items;
    this.active = -1;
    this.input.removeAttribute("aria-activedescendant");
    this.clearButton.hidden = true;
    this.note.textContent = note;
    this.note.hidden = !note;
    const elements = items.map((item, index) => {
      const li = document.createElement("li");
      li.id = `${this.listbox.id}-${index}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.className = "place-option";
      li.dataset.index = String(index);
      const icon = document.createElement("span");
      icon.className = "place-icon";
      icon.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "place-name";
      const second = document.createElement("span");
      second.className = "place-secondary";
      if (item.action === "locate") {
        li.dataset.kind = "locate";
        name.textContent = t("places.myLocation");
        second.textContent = t("places.myLocationHint");
      } else {
        const place = item.place;
        li.dataset.kind = item.recent ? "recent" : place.kind;
        li.dataset.category = place.category ?? "";
        name.textContent = place.name;
        second.textContent = item.recent ? `${t("places.recent")} · ${categoryWord(place)}` : secondaryLine(place);
      }
      const text = document.createElement("span");
      text.className = "place-text";
      text.append(name, " ", second);
      li.append(icon, text);
      item.element = li;
      return li;
    });
    this.listbox.replaceChildren(...elements);
    this.listbox.hidden = !elements.length; // an empty listbox is no list at all
    this.popup.hidden = !elements.length && !note;
    this.input.setAttribute("aria-expanded", elements.length ? "true" : "false");
  }

  close() {
    this.popup.hidden = true;
    this.active = -1;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  get open() {
    return !this.popup.hidden && this.options.length > 0;
  }

  move(to) {
    if (!this.options.length) return;
    const n = this.options.length;
    this.active = ((to % n) + n) % n;
    this.options.forEach((item, i) => item.element.setAttribute("aria-selected", i === this.active ? "true" : "false"));
    const el = this.options[this.active].element;
    this.input.setAttribute("aria-activedescendant", el.id);
    el.scrollIntoView({ block: "nearest" });
  }

  onKeyDown(e) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!this.open) {
        if (e.key !== "ArrowDown") return;
        e.preventDefault();
        if (!this.input.value.trim()) {
          this.showStart();
        } else if (this.options.length) { // reopen the last suggestions
          this.popup.hidden = false;
          this.listbox.hidden = false;
          this.input.setAttribute("aria-expanded", "true");
        } else {
          this.onInput();
          return;
        }
        if (!e.altKey) this.move(0); // Alt+ArrowDown opens without choosing
        return;
      }
      e.preventDefault();
      if (e.altKey && e.key === "ArrowUp") { this.close(); return; }
      this.move(this.active + (e.key === "ArrowDown" ? 1 : -1));
    } else if (e.key === "Enter") {
      if (this.open && this.active >= 0) {
        e.preventDefault(); // pick, do not submit the form
        this.choose(this.active);
      }
    } else if (e.key === "Escape") {
      if (!this.popup.hidden) {
        e.preventDefault();
        this.close();
      }
    }
  }

  onBlur(e) {
    if (e.relatedTarget && this.popup.contains(e.relatedTarget)) return; // to "clear recent"
    if (e.relatedTarget === this.input) return;
    this.close();
  }

  choose(index) {
    const item = this.options[index];
    if (!item) return;
    if (item.action === "locate") {
      this.close();
      this.owner.locate(this);
      return;
    }
    this.pick(item.place, { remember: true });
  }

  pick(place, { remember = false, announce = true } = {}) {
    this.input.value = place.name;
    this.picked = place;
    this.input.removeAttribute("aria-invalid");
    this.close();
    if (remember) recent.add(this.owner.cityId(), place);
    if (announce) this.owner.announce(t("places.picked", { name: place.name }));
    this.owner.picked(this.kind, [place.lat, place.lon], place);
  }
}

export class PlaceSearch {
  /**
   * @param {object} options
   * @param {{from: HTMLInputElement, to: HTMLInputElement}} options.inputs
   * @param {() => {id: string, name: string, bbox: number[]}|null} options.city  the current city
   * @param {() => [number, number]|null} options.centre  the map centre, to rank by nearness
   * @param {(kind: string, latlon: [number, number], place: object) => void} options.onPick
   */
  constructor({ inputs, city, centre, onPick }) {
    this.city = city;
    this.centreOf = centre;
    this.onPick = onPick;
    this.fields = {};
    for (const [kind, input] of Object.entries(inputs)) this.fields[kind] = new PlaceField(this, kind, input);
    const anchor = inputs.from.closest(".endpoints") ?? inputs.from;
    this.bar = document.createElement("div");
    this.bar.className = "place-actions";
    this.locateButton = document.createElement("button");
    this.locateButton.type = "button";
    this.locateButton.className = "btn btn-secondary btn-locate";
    this.locateButton.addEventListener("click", () => this.locate(this.fields.from));
    this.status = document.createElement("p");
    this.status.className = "place-status";
    this.status.setAttribute("role", "status");
    this.status.setAttribute("aria-live", "polite");
    this.bar.append(this.locateButton, this.status);
    anchor.after(this.bar);
    this.live = document.createElement("p");
    this.live.className = "visually-hidden";
    this.live.setAttribute("aria-live", "polite");
    this.bar.append(this.live);
    this.label();
    // the minimal loader may not have loaded the texts yet; a full one keeps them current
    Promise.resolve(i18n.loadLanguage?.(i18n.language?.() ?? "en")).then(() => this.label(), () => {});
  }

  label() {
    for (const field of Object.values(this.fields)) field.label();
    this.locateButton.textContent = t("places.useMyLocation");
  }

  cityId() {
    return this.city?.()?.id;
  }

  centre() {
    try {
      return this.centreOf?.() ?? null;
    } catch {
      return null;
    }
  }

  picked(kind, latlon, place) {
    this.onPick?.(kind, latlon, place);
  }

  announce(text) {
    // the same text twice in a row must still be read: clear, then set on the next frame
    this.live.textContent = "";
    requestAnimationFrame(() => { this.live.textContent = text; });
  }

  say(text, state = "") {
    this.status.textContent = text;
    if (state) this.status.dataset.state = state;
    else delete this.status.dataset.state;
  }

  /** [lat, lon] of a field (a picked place or typed "lat,lon"), or null. */
  pointOf(input) {
    const field = Object.values(this.fields).find((f) => f.input === input);
    return field ? field.point() : parseLatLon(input.value);
  }

  /** Swap the fields' texts and picked places (the swap button). */
  swap() {
    const { from, to } = this.fields;
    const [a, b] = [from.picked, to.picked];
    [from.input.value, to.input.value] = [to.input.value, from.input.value];
    from.picked = b;
    to.picked = a;
  }

  /** Ask the device where it is, only now that the traveller asked; fill the field with it. */
  locate(field) {
    if (!("geolocation" in navigator)) {
      this.say(t("places.locationUnsupported"), "error");
      return;
    }
    this.say(t("places.locating"), "busy");
    this.locateButton.disabled = true;
    navigator.geolocation.getCurrentPosition(
      (position) => {
        this.locateButton.disabled = false;
        const { latitude: lat, longitude: lon } = position.coords;
        const city = this.city?.();
        const [west, south, east, north] = Array.isArray(city?.bbox) ? city.bbox : [-180, -90, 180, 90];
        if (!(lat >= south && lat <= north && lon >= west && lon <= east)) {
          this.say(t("places.locationOutside", { city: city?.name ?? "" }), "error");
          return;
        }
        field.pick({ kind: "location", category: "location", name: t("places.myLocation"), lat, lon },
          { announce: false });
        this.say(t("places.located"), "ok");
      },
      (error) => {
        this.locateButton.disabled = false;
        const message = error?.code === 1 ? t("places.locationDenied")
          : error?.code === 3 ? t("places.locationTimeout") : t("places.locationUnavailable");
        this.say(message, "error");
      },
      GEO_OPTIONS,
    );
  }
}
