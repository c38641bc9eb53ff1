// One live trip's websocket (docs/protocol.md): the key in an `auth` first message (never in the URL),
// resume with `after_seq` = the highest `seq` seen, duplicates dropped, reconnection with exponential
// backoff, a ping on a quiet line and a new connection on a dead one.
import { t } from "./i18n.js";

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;
const PING_AFTER_MS = 20_000; // the server sends a heartbeat after 15 s of silence anyway
const DEAD_AFTER_MS = 45_000; // nothing at all for this long: the connection is gone
// 4401 wrong key, 4404 no such trip; 4400 (the server's answer to a malformed `auth`) would fail again.
const FINAL_CLOSE_CODES = new Set([4400, 4401, 4404]);

export class TripSocket {
  /** `trip`: {trip_id, token, last_seq} (`last_seq` is advanced here). Callbacks:
   *  `onMessage(msg, {replay})` — `replay`: an older message the last `hello` already summed up;
   *  `onSeq()` — `trip.last_seq` moved (persist it); `onConnection(state, text)` — `connecting | open |
   *  retrying`; `onClosedForGood(code, reason)` — the server will not take this trip again. */
  constructor(trip, { onMessage, onSeq, onConnection, onClosedForGood }) {
    Object.assign(this, { trip, onMessage, onSeq, onConnection, onClosedForGood });
    this.ws = null;
    this.retries = 0;
    this.retryTimer = 0;
    this.stopped = false;
    this.hellos = 0; // hellos received on this page
    this.helloSeq = 0; // the last hello's `last_seq`
    this.lastHeard = 0;
    this.timer = setInterval(() => this.watchdog(), 5000);
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/v1/trips/${encodeURIComponent(this.trip.trip_id)}`);
    this.ws = ws;
    this.onConnection("connecting", t("trip.conn.connecting"));
    ws.addEventListener("open", () => {
      this.lastHeard = Date.now();
      ws.send(JSON.stringify({ type: "auth", token: this.trip.token, after_seq: this.trip.last_seq }));
    });
    ws.addEventListener("message", (e) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let msg = null;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return; // not JSON: nothing to act on
      }
      if (msg && typeof msg.type === "string") this.received(msg);
    });
    ws.addEventListener("close", (e) => this.closed(ws, e));
  }

  received(msg) {
    if (msg.trip_id && msg.trip_id !== this.trip.trip_id) return;
    let replay = false;
    if (Number.isInteger(msg.seq)) {
      if (msg.seq <= this.trip.last_seq) return; // seen already
      this.trip.last_seq = msg.seq;
      this.onSeq();
      replay = msg.seq <= this.helloSeq;
    }
    if (msg.type === "hello") {
      this.retries = 0;
      this.hellos += 1;
      this.helloSeq = Number.isInteger(msg.last_seq) ? msg.last_seq : 0;
      this.onConnection("open", t("trip.conn.open"));
    }
    this.onMessage(msg, { replay });
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.stopped) return;
    if (FINAL_CLOSE_CODES.has(event.code)) {
      this.stop();
      this.onClosedForGood(event.code, event.reason);
      return;
    }
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.retries) * (0.8 + 0.4 * Math.random());
    this.retries += 1;
    this.onConnection("retrying", t("trip.conn.retrying", { n: Math.ceil(delay / 1000) }));
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Back on the network: no need to wait for the backoff. */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** Ping a quiet connection; drop a dead one (its close event reconnects). */
  watchdog() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const quiet = Date.now() - this.lastHeard;
    if (quiet > DEAD_AFTER_MS) ws.close(4000, "no message from the server");
    else if (quiet > PING_AFTER_MS) ws.send(JSON.stringify({ type: "ping" }));
  }

  /** Sends once the server said hello on the current connection; false when not connected. */
  send(message) {
    if (this.ws?.readyState !== WebSocket.OPEN || this.hellos === 0) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** No more reconnecting (the trip ended, was deleted or left); closes the connection. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "trip over");
  }
}
