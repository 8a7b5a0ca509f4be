// The tab's one EventSource on /api/stream, with resume, de-duplication and back-off.
//
// Native EventSource reconnects by itself after a network error but gives up for good on a
// non-200 answer (a proxy's 502 while the server restarts), and its own retry keeps no
// back-off. So on every `error` we close it and open a new one ourselves with
// `?after=<last applied position>`, waiting an exponentially growing, jittered delay.
// Every event whose position is at or below the last applied one is dropped, so a replayed
// backlog never reaches a view twice.

/** Event types the server sends (`event:` lines); EventSource only dispatches named ones. */
export const EVENT_TYPES = [
  "task.created",
  "task.started",
  "task.progress_updated",
  "task.cancel_requested",
  "task.completed",
  "task.failed",
  "task.cancelled",
  "task.retried",
  "task.retry_scheduled",
  "strategy.created",
  "strategy.updated",
  "message",
];

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

/** The back-off delay before reconnect attempt `attempt` (0-based): "equal jitter". */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  return ceiling / 2 + random() * (ceiling / 2);
}

export class LiveStream {
  /**
   * @param {object} options
   * @param {string} [options.url] the stream endpoint
   * @param {number} [options.ringSize] how many recent events to keep for views that load later
   * @param {(state: string, detail: object) => void} [options.onState] connection changes
   */
  constructor({ url = "/api/stream", ringSize = 2000, onState = () => {} } = {}) {
    this.url = url;
    this.ringSize = ringSize;
    this.onState = onState;
    this.source = null;
    this.position = null; // the last applied position
    this.coveredFrom = null; // the ring holds every event after this position
    this.ring = [];
    this.subscriber = null;
    this.attempt = 0;
    this.timer = null;
    this.state = "idle";
    this.dropped = 0;
    this.retryAt = null;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.setState("offline"));
  }

  /**
   * Deliver every event after `position` (the position a view's data was loaded at) to
   * `handler`, replacing the previous subscriber. Returns a function that stops delivery.
   */
  follow(position, handler) {
    const subscriber = { floor: position, handler };
    this.subscriber = subscriber;
    if (this.position === null) {
      this.restartAt(position);
    } else if (position < this.position) {
      if (this.coveredFrom !== null && position >= this.coveredFrom) {
        for (const event of this.ring) if (event.position > position) handler(event);
      } else {
        // Older than what the ring remembers: read the gap from the server again.
        this.restartAt(position);
      }
    }
    return () => {
      if (this.subscriber === subscriber) this.subscriber = null;
    };
  }

  restartAt(position) {
    this.position = position;
    this.coveredFrom = position;
    this.ring = [];
    this.attempt = 0;
    this.connect();
  }

  connect() {
    this.close();
    this.setState(this.state === "live" || this.state === "idle" ? "connecting" : this.state);
    const source = new EventSource(`${this.url}?after=${this.position}`);
    this.source = source;
    source.addEventListener("open", () => {
      if (this.source !== source) return;
      this.attempt = 0;
      this.setState("live");
    });
    source.addEventListener("error", () => {
      if (this.source === source) this.scheduleReconnect();
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => {
        if (this.source === source) this.receive(message);
      });
    }
  }

  receive(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    const position = Number(message.lastEventId || event.position);
    if (!Number.isFinite(position) || position <= this.position) {
      this.dropped += 1;
      return;
    }
    event.position = position;
    this.position = position;
    this.ring.push(event);
    if (this.ring.length > this.ringSize) this.coveredFrom = this.ring.shift().position;
    this.onState(this.state, this.detail());
    const subscriber = this.subscriber;
    if (subscriber && position > subscriber.floor) subscriber.handler(event);
  }

  scheduleReconnect() {
    this.close();
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    this.timer = setTimeout(() => {
      this.timer = null;
      this.retryAt = null;
      this.connect();
    }, delay);
  }

  /** Try at once (the browser came back online, or the user asked). */
  reconnectNow() {
    if (this.position === null || this.state === "live") return;
    this.attempt = 0;
    this.connect();
  }

  close() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
  }

  setState(state) {
    this.state = state;
    this.onState(state, this.detail());
  }

  detail() {
    return {
      position: this.position,
      attempt: this.attempt,
      retryAt: this.retryAt,
      dropped: this.dropped,
    };
  }
}
