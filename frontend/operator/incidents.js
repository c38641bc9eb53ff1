// Incidents: declare one on the streets selected on the map (reason, end time), list those in
// force with what they do to live trips, edit them and end them early.
import { API } from "../api.js";
import { countText } from "./panels.js";

const $ = (id) => document.getElementById(id);
const MIN_TTL_S = 60;
const MAX_TTL_S = 7 * 86_400;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

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
    this.selectButton.textContent = on ? "Done selecting streets" : "Select streets for an incident";
  }

  syncLevel() {
    const closure = this.kind.value === "closure";
    this.level.disabled = closure;
    if (closure) this.level.value = "";
  }

  onSelection(streets) {
    this.streets = streets;
    const names = [...new Set(streets.map((s) => s.properties.name || "unnamed street"))];
    $("incident-streets").textContent = streets.length
      ? `${streets.length} street segment${streets.length === 1 ? "" : "s"} selected: ${names.join(", ")}. Click a selected street again to drop it.`
      : "Select streets on the map (button above the map), then describe the incident.";
    $("incident-streets").dataset.count = String(streets.length);
  }

  reset() {
    this.editing = null;
    this.form.reset();
    this.end.value = localInputValue(new Date(Date.now() + 2 * 3600 * 1000));
    this.syncLevel();
    this.error.hidden = true;
    $("incident-mode").textContent = "New incident";
    this.submit.textContent = "Declare incident";
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
      this.showError("Choose when the incident ends.");
      this.end.focus();
      return;
    }
    if (ttl < MIN_TTL_S || ttl > MAX_TTL_S) {
      this.showError("The end must be between one minute and seven days from now.");
      this.end.focus();
      return;
    }
    const edges = this.streets.map((s) => s.properties.edge);
    if (!this.editing && !edges.length) {
      this.showError("Select at least one street on the map first.");
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
        this.toast("Incident updated.");
      } else {
        body.edges = edges;
        await this.session.call(`${API}/operators/incidents?${city}`, { method: "POST", body });
        this.toast("Incident declared: it applies at once.");
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
    $("incident-mode").textContent = `Editing incident ${incident.incident_id}`;
    this.submit.textContent = "Save changes";
    this.kind.value = incident.kind;
    this.syncLevel();
    this.level.value = incident.level ? String(incident.level) : "";
    this.note.value = incident.note ?? "";
    this.end.value = localInputValue(new Date(incident.expires_at));
    this.map.clearSelection();
    $("incident-streets").textContent = `Streets: ${incident.streets.join(", ") || "unnamed"}. Select streets on the map to replace them.`;
    this.note.focus();
  }

  async endNow(incident) {
    try {
      await this.session.call(`${API}/operators/incidents/${incident.incident_id}?city=${encodeURIComponent(this.cityId())}`, { method: "DELETE" });
      this.toast("Incident ended.");
    } catch (e) {
      this.toast(`Could not end it: ${e.message}`);
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
      list.replaceChildren(el("li", "ops-empty", "No incident in force."));
      return;
    }
    list.replaceChildren(...incidents.map((i) => {
      const li = el("li", "ops-item incident");
      li.dataset.incidentId = i.incident_id;
      li.dataset.kind = i.kind;
      const head = el("div", "ops-item-head");
      head.append(el("strong", "", i.kind === "closure" ? "Closure" : `Slowdown${i.level ? ` · level ${i.level}` : ""}`),
        el("span", "ops-facts", (i.streets ?? []).join(", ") || "unnamed street"));
      const facts = [
        i.note ? `Reason: ${i.note}` : "No reason given",
        `Ends ${new Date(i.expires_at).toLocaleString()} · by ${i.updated_by ?? i.declared_by}`,
        `Active trips touched: ${countText(i.trips_touched, k)} · suggestions since declared (city-wide): ${countText(i.suggestions_made, k)} made, ${countText(i.suggestions_accepted, k)} accepted`,
      ];
      const actions = el("div", "ops-actions");
      const edit = el("button", "ops-btn ops-btn-small", "Edit");
      edit.type = "button";
      edit.dataset.action = "edit";
      edit.addEventListener("click", () => this.edit(i));
      const end = el("button", "ops-btn ops-btn-small ops-btn-danger", "End now");
      end.type = "button";
      end.dataset.action = "end";
      end.addEventListener("click", () => this.endNow(i));
      actions.append(edit, end);
      li.append(head, ...facts.map((f) => el("p", "ops-facts", f)), actions);
      return li;
    }));
  }
}
