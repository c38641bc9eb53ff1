// Incidents: declare one on the streets selected on the map (reason, end time), list those in
// force with what they do to live trips, edit them and end them early.
import { API } from "../api.js";
import { $, el } from "../dom.js";
import { countText } from "./panels.js";
import { locale, t } from "../i18n.js";

const MIN_TTL_S = 60;
const MAX_TTL_S = 7 * 86_400;

/** "2026-12-02T14:05" for a datetime-local input, in the browser's time zone. */
function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export class Incidents {
  constructor(session, map, { cityId, onChanged, toast }) {
    this.session = session;
    this.map = map;
    this.cityId = cityId;
    this.onChanged = onChanged;
    this.toast = toast;
    this.editing = null; // the incident being edited
    this.streets = [];
    this.form = $("incident-form");
    this.kind = $("incident-kind");
    this.level = $("incident-level");
    this.note = $("incident-note");
    this.end = $("incident-end");
    this.error = $("incident-error");
    this.submit = $("incident-submit");
    this.selectButton = $("select-streets");
    this.kind.addEventListener("change", () => this.syncLevel());
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
    $("incident-cancel").addEventListener("click", () => this.reset());
    this.selectButton.addEventListener("click", () => this.setSelecting(!this.map.selecting));
    this.reset();
  }

  setSelecting(on) {
    this.map.setSelecting(on);
    this.selectButton.setAttribute("aria-pressed", String(on));
    this.selectButton.textContent = on ? t("ops.select_done") : t("ops.select_streets");
  }

  syncLevel() {
    const closure = this.kind.value === "closure";
    this.level.disabled = closure;
    if (closure) this.level.value = "";
  }

  onSelection(streets) {
    this.streets = streets;
    const names = [...new Set(streets.map((s) => s.properties.name || t("ops.unnamed_street")))];
    $("incident-streets").textContent = streets.length
      ? t("ops.segments_selected", { count: streets.length, n: streets.length, names: names.join(", ") })
      : t("ops.incident_streets");
    $("incident-streets").dataset.count = String(streets.length);
  }

  reset() {
    this.editing = null;
    this.form.reset();
    this.end.value = localInputValue(new Date(Date.now() + 2 * 3600 * 1000));
    this.syncLevel();
    this.error.hidden = true;
    $("incident-mode").textContent = t("ops.incident_mode");
    this.submit.textContent = t("ops.incident_submit");
    this.map.clearSelection();
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  async save() {
    this.error.hidden = true;
    const end = new Date(this.end.value);
    const ttl = Math.round((end.getTime() - Date.now()) / 1000);
    if (!this.end.value || Number.isNaN(end.getTime())) {
      this.showError(t("ops.incident.need_end"));
      this.end.focus();
      return;
    }
    if (ttl < MIN_TTL_S || ttl > MAX_TTL_S) {
      this.showError(t("ops.incident.end_range"));
      this.end.focus();
      return;
    }
    const edges = this.streets.map((s) => s.properties.edge);
    if (!this.editing && !edges.length) {
      this.showError(t("ops.incident.need_streets"));
      this.selectButton.focus();
      return;
    }
    const body = { kind: this.kind.value, note: this.note.value.trim() || null, expires_in_s: ttl };
    if (this.kind.value === "incident" && this.level.value) body.level = Number(this.level.value);
    const city = `city=${encodeURIComponent(this.cityId())}`;
    try {
      if (this.editing) {
        if (edges.length) body.edges = edges;
        if (this.kind.value === "incident" && !this.level.value) body.level = null;
        await this.session.call(`${API}/operators/incidents/${this.editing.incident_id}?${city}`, { method: "PATCH", body });
        this.toast(t("ops.incident.updated"));
      } else {
        body.edges = edges;
        await this.session.call(`${API}/operators/incidents?${city}`, { method: "POST", body });
        this.toast(t("ops.incident.declared"));
      }
    } catch (e) {
      this.showError(e.message);
      return;
    }
    this.setSelecting(false);
    this.reset();
    this.onChanged();
  }

  async edit(incident) {
    this.editing = incident;
    $("incident-mode").textContent = t("ops.incident.editing", { id: incident.incident_id });
    this.submit.textContent = t("ops.incident.save");
    this.kind.value = incident.kind;
    this.syncLevel();
    this.level.value = incident.level ? String(incident.level) : "";
    this.note.value = incident.note ?? "";
    this.end.value = localInputValue(new Date(incident.expires_at));
    this.map.clearSelection();
    $("incident-streets").textContent = t("ops.incident.streets", { names: incident.streets.join(", ") || t("ops.unnamed_street") });
    this.note.focus();
  }

  async endNow(incident) {
    try {
      await this.session.call(`${API}/operators/incidents/${incident.incident_id}?city=${encodeURIComponent(this.cityId())}`, { method: "DELETE" });
      this.toast(t("ops.incident.ended"));
    } catch (e) {
      this.toast(t("ops.incident.end_failed", { reason: e.message }));
    }
    if (this.editing?.incident_id === incident.incident_id) this.reset();
    this.onChanged();
  }

  render(body) {
    const list = $("incident-list");
    const k = body?.k ?? 2;
    const incidents = body?.incidents ?? [];
    list.dataset.state = incidents.length ? "ok" : "empty";
    if (!incidents.length) {
      list.replaceChildren(el("li", "ops-empty", t("ops.incident.none")));
      return;
    }
    list.replaceChildren(...incidents.map((i) => {
      const li = el("li", "ops-item incident");
      li.dataset.incidentId = i.incident_id;
      li.dataset.kind = i.kind;
      const head = el("div", "ops-item-head");
      head.append(el("strong", "", i.kind === "closure" ? t("ops.closure")
        : i.level ? t("ops.incident.slowdown_level", { level: i.level }) : t("ops.incident.slowdown")),
      el("span", "ops-facts", (i.streets ?? []).join(", ") || t("ops.unnamed_street")));
      const facts = [
        i.note ? t("ops.incident.reason", { note: i.note }) : t("ops.incident.no_reason"),
        t("ops.incident.ends", { when: new Date(i.expires_at).toLocaleString(locale()), who: i.updated_by ?? i.declared_by }),
        t("ops.incident.touched", {
          trips: countText(i.trips_touched, k), made: countText(i.suggestions_made, k), accepted: countText(i.suggestions_accepted, k),
        }),
      ];
      const actions = el("div", "ops-actions");
      const edit = el("button", "ops-btn ops-btn-small", t("ops.edit"));
      edit.type = "button";
      edit.dataset.action = "edit";
      edit.addEventListener("click", () => this.edit(i));
      const end = el("button", "ops-btn ops-btn-small ops-btn-danger", t("ops.end_now"));
      end.type = "button";
      end.dataset.action = "end";
      end.addEventListener("click", () => this.endNow(i));
      actions.append(edit, end);
      li.append(head, ...facts.map((f) => el("p", "ops-facts", f)), actions);
      return li;
    }));
  }
}
