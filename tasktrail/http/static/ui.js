// Small DOM and formatting helpers shared by the views.

/**
 * Build an element: `h("a", {href: "/", class: "x", onclick: fn}, "text", child)`.
 * Attributes starting with "on" become listeners; `false`/`null` attributes are skipped.
 * Children are strings (set as text, never parsed as HTML), nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name in element && typeof value !== "string") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replace all of `element`'s children. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export const STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const STATUS_LABELS = {
  PENDING: "Pending",
  RUNNING: "Running",
  COMPLETED: "Completed",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
};

export const statusLabel = (status) => STATUS_LABELS[status] || status;
export const isFinished = (status) => ["COMPLETED", "FAILED", "CANCELLED"].includes(status);

/** A status badge: colour plus text, so it never relies on colour alone. */
export function badge(status, cancelRequested = false) {
  const label = statusLabel(status) + (cancelRequested && !isFinished(status) ? " · cancelling" : "");
  return h("span", { class: `badge badge-${String(status).toLowerCase()}`, "data-status": status }, label);
}

/** A progress bar with its percent and phase written beside it. */
export function progressBar(progress, status) {
  const percent = clampPercent(progress?.percent);
  const phase = progress?.phase || (status === "PENDING" ? "waiting" : "");
  const label = `${percent} %${phase ? ` · ${phase}` : ""}`;
  return h(
    "div",
    { class: "progress", "data-status": status },
    h(
      "div",
      {
        class: "bar",
        role: "progressbar",
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-valuenow": String(percent),
        "aria-valuetext": label,
        "aria-label": "Progress",
      },
      h("div", { class: "fill", style: `width: ${percent}%` }),
    ),
    h("span", { class: "progress-label" }, label),
  );
}

export function clampPercent(value) {
  const number = Math.floor(Number(value) || 0);
  return Math.max(0, Math.min(100, number));
}

/** "1 h 02 min", "3 min 05 s", "12 s". */
export function duration(milliseconds) {
  if (!Number.isFinite(milliseconds) || milliseconds < 0) return "–";
  const seconds = Math.round(milliseconds / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(seconds % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** How long a task has run (or ran): from start (or submission) to finish (or now). */
export function elapsed(task, now = Date.now()) {
  const from = Date.parse(task.started_at || task.submitted_at);
  const to = task.finished_at ? Date.parse(task.finished_at) : now;
  return to - from;
}

/** A time as the reader's local clock shows it, the date too when it is not today. */
export function clock(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString()} ${time}`;
}

/** A <time> element with the full timestamp as its tooltip. */
export function timeElement(iso) {
  return h("time", { datetime: iso || "", title: iso || "" }, clock(iso));
}

/** A link that the router handles without reloading the page. */
export function link(href, ...children) {
  return h("a", { href, "data-route": "" }, ...children);
}

/** Show a short message in the page's notice area (announced to screen readers). */
export function notify(message, { kind = "info", action = null } = {}) {
  const area = document.getElementById("notices");
  if (!area) return;
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss" }, "×");
  const notice = h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", {}, message), action, close);
  close.addEventListener("click", () => notice.remove());
  area.append(notice);
  setTimeout(() => notice.remove(), kind === "error" ? 15000 : 8000);
}

/** Format a JSON value for reading: compact for scalars, indented for objects. */
export function pretty(value) {
  return typeof value === "object" && value !== null ? JSON.stringify(value, null, 2) : String(value);
}

/** A value from a result row, formatted for a table cell. */
export function cell(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : value.toLocaleString(undefined, { maximumFractionDigits: 4 });
  }
  return String(value);
}
