// The operator's session: a short-lived bearer token kept in memory and in this tab's
// sessionStorage (never in a URL, never in localStorage), and the one authenticated API call.
import { API, ApiError, requestJSON } from "../api.js";
import { t } from "../i18n.js";

const KEY = "correspondance.operator";

export class Session {
  constructor() {
    this.token = null;
    this.username = null;
    this.expiresAt = 0;
    this.onExpired = () => {};
    try {
      const saved = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
      if (saved && typeof saved.token === "string" && saved.expiresAt > Date.now()) {
        Object.assign(this, { token: saved.token, username: saved.username, expiresAt: saved.expiresAt });
      }
    } catch {
      sessionStorage.removeItem(KEY);
    }
  }

  get active() {
    return Boolean(this.token) && this.expiresAt > Date.now();
  }

  async login(username, password) {
    const body = await requestJSON(`${API}/operators/token`, { method: "POST", body: { username, password } });
    this.token = body.access_token;
    this.username = username;
    this.expiresAt = Date.now() + Number(body.expires_in) * 1000;
    sessionStorage.setItem(KEY, JSON.stringify({ token: this.token, username, expiresAt: this.expiresAt }));
  }

  async logout() {
    const token = this.token;
    this.forget();
    if (token) {
      try {
        await requestJSON(`${API}/operators/logout`, { method: "POST", token, allowEmpty: true });
      } catch {
        // already expired or the server is away: the token is forgotten here either way
      }
    }
  }

  forget() {
    this.token = null;
    this.username = null;
    this.expiresAt = 0;
    sessionStorage.removeItem(KEY);
  }

  /** An operator API call; a 401 ends the session (the page shows the sign-in again). */
  async call(path, options = {}) {
    if (!this.active) {
      this.forget();
      this.onExpired(t("ops.session_ended"));
      throw new ApiError(t("ops.not_signed_in"), { status: 401, code: "unauthorized" });
    }
    try {
      return await requestJSON(path, { ...options, token: this.token });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        this.forget();
        this.onExpired(t("ops.session_ended"));
      }
      throw e;
    }
  }
}
