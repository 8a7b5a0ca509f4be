// Runs: the live table of tasks, newest first, filterable by status, paged with a keyset
// cursor ("Older"), kept current by the tab's stream.

import { describe, get, query } from "./api.js";
import { STATUSES, badge, duration, elapsed, h, isFinished, link, notify, progressBar, replace, statusLabel, timeElement } from "./ui.js";

const PAGE_SIZE = 25;

/** The runs section of the home page. */
export class RunsView {
  constructor(container, { status = "", onReloaded = () => {} } = {}) {
    this.container = container;
    this.status = status;
    this.onReloaded = onReloaded;
    this.tasks = new Map(); // id -> task, for the rows shown
    this.order = []; // ids, newest first
    this.counts = {};
    this.nextCursor = null;
    this.position = 0;
    this.filters = h("div", { class: "filters", role: "group", "aria-label": "Filter runs by status" });
    this.body = h("tbody", {});
    this.older = h("button", { type: "button", class: "secondary", hidden: true }, "Older");
    this.older.addEventListener("click", () => this.loadOlder());
    this.table = h(
      "table",
      { class: "runs", "aria-labelledby": "runs-heading" },
      h("thead", {}, h("tr", {}, ["Status", "Strategy", "Progress", "Submitted", "Elapsed"].map((t) => h("th", { scope: "col" }, t)))),
      this.body,
    );
    this.empty = h("p", { class: "empty", hidden: true }, "No runs yet. Press Run on a strategy.");
    replace(
      container,
      h("div", { class: "section-head" }, h("h2", { id: "runs-heading" }, "Runs")),
      this.filters,
      this.table,
      this.empty,
      h("div", { class: "pager" }, this.older),
    );
  }

  /** Load the first page; resolves to the position it reflects. */
  async load() {
    const loading = (this.loading = (this.loading || 0) + 1);
    const answer = await get(`/api/tasks${query({ status: this.status, limit: PAGE_SIZE })}`);
    // A filter clicked meanwhile started a newer load: this answer is stale.
    if (loading !== this.loading) return null;
    this.position = answer.position ?? 0;
    this.counts = { ...(answer.counts || {}) };
    this.tasks = new Map();
    this.order = [];
    this.addPage(answer);
    this.renderFilters();
    this.render();
    return this.position;
  }

  addPage(answer) {
    for (const task of answer.items) {
      if (!this.tasks.has(task.id)) this.order.push(task.id);
      this.tasks.set(task.id, task);
    }
    this.nextCursor = answer.next_cursor || null;
  }

  async loadOlder() {
    if (!this.nextCursor) return;
    this.older.disabled = true;
    const loading = this.loading;
    try {
      const answer = await get(`/api/tasks${query({ status: this.status, limit: PAGE_SIZE, cursor: this.nextCursor })}`);
      if (loading !== this.loading) return; // the filter changed meanwhile
      this.addPage(answer);
      this.render();
    } catch (error) {
      notify(`Could not load older runs: ${describe(error)}`, { kind: "error" });
    } finally {
      this.older.disabled = false;
    }
  }

  async setStatus(status) {
    this.status = status;
    const url = new URL(window.location.href);
    if (status) url.searchParams.set("status", status);
    else url.searchParams.delete("status");
    history.replaceState(history.state, "", url);
    const position = await this.load();
    if (position !== null) this.onReloaded(position);
    return position;
  }

  /** A task event from the stream. */
  apply(event) {
    const next = event.task;
    if (!next || !String(event.type).startsWith("task.")) return;
    const held = this.tasks.get(next.id);
    if (held && Number(held.version) >= Number(next.version)) return; // already shown
    this.count(event, held);
    const task = { ...(held || {}), ...next };
    const matches = !this.status || task.status === this.status;
    if (held && !matches) {
      this.tasks.delete(task.id);
      this.order = this.order.filter((id) => id !== task.id);
    } else if (held) {
      this.tasks.set(task.id, task);
    } else if (matches && this.withinLoadedRange(task)) {
      this.tasks.set(task.id, task);
      this.insert(task);
    }
    this.renderFilters();
    this.render();
  }

  /** Keep the per-status counts in step with the stream. */
  count(event, held) {
    const next = event.task;
    const before = held?.status ?? previousStatus(event);
    if (before === next.status) return;
    if (before) this.counts[before] = Math.max(0, (this.counts[before] || 0) - 1);
    this.counts[next.status] = (this.counts[next.status] || 0) + 1;
  }

  withinLoadedRange(task) {
    if (!this.nextCursor || this.order.length === 0) return true;
    const oldest = this.tasks.get(this.order[this.order.length - 1]);
    return String(task.submitted_at) >= String(oldest.submitted_at);
  }

  insert(task) {
    const newer = (a, b) => (a.submitted_at === b.submitted_at ? a.id > b.id : a.submitted_at > b.submitted_at);
    const index = this.order.findIndex((id) => newer(task, this.tasks.get(id)));
    if (index === -1) this.order.push(task.id);
    else this.order.splice(index, 0, task.id);
  }

  renderFilters() {
    const total = STATUSES.reduce((sum, s) => sum + (this.counts[s] || 0), 0);
    const button = (status, label, n) => {
      const b = h("button", { type: "button", class: "filter", "aria-pressed": String(this.status === status), "data-filter": status || "all" }, label, h("span", { class: "count" }, String(n)));
      b.addEventListener("click", () => this.setStatus(status).catch((e) => notify(describe(e), { kind: "error" })));
      return b;
    };
    replace(this.filters, button("", "All", total), STATUSES.map((s) => button(s, statusLabel(s), this.counts[s] || 0)));
  }

  render() {
    const rows = this.order.map((id) => this.row(this.tasks.get(id)));
    replace(this.body, rows);
    this.empty.hidden = rows.length > 0;
    this.table.hidden = rows.length === 0;
    this.empty.textContent = this.status ? `No ${statusLabel(this.status).toLowerCase()} runs.` : "No runs yet. Press Run on a strategy.";
    this.older.hidden = !this.nextCursor;
  }

  row(task) {
    const name = task.strategy_name || task.kind;
    return h(
      "tr",
      { "data-task-id": task.id, "data-status": task.status },
      h("td", { "data-label": "Status" }, badge(task.status, task.cancel_requested)),
      h("td", { "data-label": "Strategy" }, link(`/tasks/${task.id}`, name), task.rerun_of ? h("span", { class: "muted small" }, " (re-run)") : null),
      h("td", { "data-label": "Progress", class: "progress-cell" }, progressBar(task.progress, task.status), task.progress?.message ? h("div", { class: "muted small message" }, task.progress.message) : null),
      h("td", { "data-label": "Submitted" }, timeElement(task.submitted_at)),
      h("td", { "data-label": "Elapsed", class: "elapsed", "data-started": task.started_at || task.submitted_at, "data-finished": task.finished_at || "" }, duration(elapsed(task))),
    );
  }

  /** Move the elapsed time of unfinished runs on (called every second). */
  tick() {
    for (const id of this.order) {
      const task = this.tasks.get(id);
      if (isFinished(task.status)) continue;
      const cell = this.body.querySelector(`tr[data-task-id="${CSS.escape(id)}"] .elapsed`);
      if (cell) cell.textContent = duration(elapsed(task));
    }
  }
}

/** The status a task had before `event`, for a task this page does not hold. */
function previousStatus(event) {
  const task = event.task;
  switch (event.type) {
    case "task.created":
      return null;
    case "task.started":
      return "PENDING";
    case "task.completed":
    case "task.failed":
    case "task.cancelled":
      return task.started_at ? "RUNNING" : "PENDING";
    default:
      return task.status;
  }
}
