// The audit timeline: a run's events in order with their time and data. Selecting one shows
// the task's state right after it (time travel). A listbox with a roving tabindex: arrow
// keys, Home and End move the selection.

import { get } from "./api.js";
import { badge, clock, h, pretty, progressBar, replace, timeElement } from "./ui.js";

const TYPE_LABELS = {
  "task.created": "Submitted",
  "task.started": "Started",
  "task.progress_updated": "Progress",
  "task.cancel_requested": "Cancel requested",
  "task.completed": "Completed",
  "task.failed": "Failed",
  "task.cancelled": "Cancelled",
};

export const typeLabel = (type) => TYPE_LABELS[type] || type;

export class Timeline {
  constructor(container, taskId) {
    this.taskId = taskId;
    this.events = []; // in version order, one per version
    this.selected = -1;
    this.followLatest = true; // select each new event until the reader picks one
    this.checkTimer = null;
    this.verified = null;
    this.status = h("p", { class: "muted small timeline-status" });
    this.list = h("ol", { class: "timeline", role: "listbox", "aria-label": "Audit timeline events", tabindex: "-1" });
    this.detail = h("section", { class: "state-after card", "aria-live": "polite", "aria-labelledby": "state-after-heading" });
    this.list.addEventListener("keydown", (event) => this.onKey(event));
    replace(
      container,
      h("div", { class: "section-head" }, h("h2", { id: "timeline-heading" }, "Audit timeline")),
      this.status,
      h("div", { class: "timeline-layout" }, h("div", { class: "timeline-scroll" }, this.list), this.detail),
    );
  }

  /** The whole history from GET /api/tasks/{id}/events. */
  set(answer) {
    this.verified = answer.verified;
    this.events = [];
    for (const event of answer.events || []) this.insert(event);
    this.render();
    this.select(this.events.length - 1, { focus: false, user: false });
  }

  /** A live event from the stream (its `task` is the state after it). */
  add(streamEvent) {
    const added = this.insert({
      position: streamEvent.position,
      version: streamEvent.version,
      type: streamEvent.type,
      timestamp: streamEvent.timestamp,
      data: streamEvent.data,
      digest: streamEvent.digest || null,
      state: streamEvent.task,
    });
    if (!added) return;
    this.render();
    if (this.followLatest) this.select(this.events.length - 1, { focus: false, user: false });
    else this.markSelected();
  }

  /** Insert in version order; false for a version already held (a replayed event). */
  insert(event) {
    const version = Number(event.version);
    if (this.events.some((e) => Number(e.version) === version)) return false;
    const index = this.events.findIndex((e) => Number(e.version) > version);
    if (index === -1) this.events.push(event);
    else this.events.splice(index, 0, event);
    return true;
  }

  render() {
    const verified = this.verified === true ? "Digest chain verified." : this.verified === false ? "Digest chain BROKEN: the log was altered." : "";
    this.status.textContent = `${this.events.length} event${this.events.length === 1 ? "" : "s"}. ${verified} Select an event (arrow keys move) to see the state after it.`;
    this.status.classList.toggle("danger", this.verified === false);
    replace(
      this.list,
      this.events.map((event, index) => {
        const item = h(
          "li",
          { role: "option", id: `event-v${event.version}`, "data-version": String(event.version), "data-type": event.type, "aria-selected": "false", tabindex: "-1" },
          h("span", { class: "v" }, `v${event.version}`),
          h("span", { class: `type type-${String(event.type).split(".").pop()}` }, typeLabel(event.type)),
          h("span", { class: "when" }, clock(event.timestamp)),
          h("span", { class: "summary muted small" }, summarize(event)),
        );
        item.addEventListener("click", () => this.select(index, { focus: true, user: true }));
        return item;
      }),
    );
    this.markSelected();
  }

  markSelected() {
    [...this.list.children].forEach((item, index) => {
      const on = index === this.selected;
      item.setAttribute("aria-selected", String(on));
      item.tabIndex = on ? 0 : -1;
    });
    if (this.selected === -1 && this.list.firstElementChild) this.list.firstElementChild.tabIndex = 0;
  }

  select(index, { focus, user }) {
    if (index < 0 || index >= this.events.length) return;
    this.selected = index;
    if (user) this.followLatest = index === this.events.length - 1;
    this.markSelected();
    const item = this.list.children[index];
    if (focus) item.focus();
    item.scrollIntoView?.({ block: "nearest" });
    this.showState(this.events[index]);
  }

  onKey(event) {
    const moves = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 };
    let index = this.selected;
    if (event.key in moves) index = Math.max(0, Math.min(this.events.length - 1, index + moves[event.key]));
    else if (event.key === "Home") index = 0;
    else if (event.key === "End") index = this.events.length - 1;
    else return;
    event.preventDefault();
    this.select(index, { focus: true, user: true });
  }

  showState(event) {
    const state = event.state || {};
    const check = h("p", { class: "muted small check", "data-check": "pending" }, "Checking against the log…");
    replace(
      this.detail,
      h("h3", { id: "state-after-heading" }, `State after v${event.version}: ${typeLabel(event.type)}`),
      h("p", { class: "muted small" }, timeElement(event.timestamp), event.position != null ? ` · log position ${event.position}` : ""),
      stateFacts(state),
      h("details", {}, h("summary", {}, "Event data"), h("pre", { class: "json" }, pretty(event.data ?? {})), event.digest ? h("p", { class: "muted small digest" }, `digest ${event.digest}`) : null),
      check,
    );
    this.crossCheck(event, check);
  }

  /** Ask the server for the state at this version and say whether it agrees. */
  crossCheck(event, element) {
    clearTimeout(this.checkTimer);
    this.checkTimer = setTimeout(async () => {
      try {
        const server = await get(`/api/tasks/${this.taskId}?at_version=${event.version}`);
        const same = server.status === event.state?.status && Number(server.progress?.current) === Number(event.state?.progress?.current);
        element.dataset.check = same ? "agrees" : "differs";
        element.textContent = same ? `The server's state at version ${event.version} agrees.` : `The server's state at version ${event.version} differs: ${server.status}, ${server.progress?.percent ?? 0} %.`;
      } catch {
        element.dataset.check = "unknown";
        element.textContent = "Could not check against the server.";
      }
    }, 150);
  }
}

function summarize(event) {
  const data = event.data || {};
  switch (event.type) {
    case "task.progress_updated":
      return `${data.phase || ""} ${data.current ?? ""}/${data.total ?? ""}${data.message ? ` · ${data.message}` : ""}`;
    case "task.started":
      return `worker ${data.worker_id ?? "?"}, attempt ${data.attempt ?? 1}`;
    case "task.failed":
      return `${data.error_type || "error"}: ${data.message || ""}`;
    case "task.completed":
      return data.result ? `${data.result.matched ?? "?"} matched of ${data.result.scanned ?? "?"}` : "";
    case "task.cancel_requested":
    case "task.cancelled":
      return data.reason || "";
    default:
      return "";
  }
}

/** The state of a task as a definition list. */
export function stateFacts(state) {
  const progress = state.progress || {};
  const rows = [
    ["Status", badge(state.status, state.cancel_requested)],
    ["Progress", progressBar(progress, state.status)],
    ["Done", `${progress.current ?? 0} of ${progress.total ?? 0}`],
    ["Phase", progress.phase || "–"],
    ["Message", progress.message || "–"],
    ["Worker", state.worker_id ? `${state.worker_id} (attempt ${state.attempt})` : "–"],
    ["Cancel requested", state.cancel_requested ? "yes" : "no"],
  ];
  if (state.error) rows.push(["Error", `${state.error.type}: ${state.error.message}`]);
  if (state.result_summary) rows.push(["Result", `${state.result_summary.matched} matched of ${state.result_summary.scanned}`]);
  return h("dl", { class: "facts" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", { "data-fact": term.toLowerCase() }, value)]));
}
