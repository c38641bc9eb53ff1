// The HTTP side of the API: JSON in, JSON out, errors as `{"error": {"code", "message"}}`. An
// error code the catalogue words (`error.<code>`) reads in the page's language, followed by the
// server's message (which names the exact fault); any other code shows that message alone.
import { has, t } from "./i18n.js";

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(message, { status = 0, code = "" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** fetch() a JSON endpoint. `body` is sent as JSON, `token` as a bearer token; resolves to the parsed
 *  answer (null for an empty 2xx answer when `allowEmpty`), or throws an ApiError saying what went wrong. */
export async function requestJSON(path, { method = "GET", body, token, signal, allowEmpty = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    if (e?.name === "AbortError") throw e;
    throw new ApiError(t("error.offline"));
  }
  let parsed = null;
  const text = await res.text();
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const err = parsed?.error;
    const detail = err && typeof err.message === "string" ? err.message : "";
    // the catalogue's words for the code, then the server's own detail (which point, which limit)
    const message = (err?.code && has(`error.${err.code}`) && (detail ? `${t(`error.${err.code}`)} (${detail})` : t(`error.${err.code}`)))
      || detail
      || (typeof parsed?.detail === "string" && parsed.detail)
      || t("error.status", { status: res.status });
    throw new ApiError(message, { status: res.status, code: err?.code ?? "" });
  }
  if (parsed === null && !allowEmpty)     throw new ApiError(t("error.unreadable"), { status: res.status });
  return parsed;
}

export function getJSON(path, { signal } = {}) {
  return requestJSON(path, { signal });
}
