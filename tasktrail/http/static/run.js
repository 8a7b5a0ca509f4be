// A run's page (/tasks/{id}): progress with an estimate of the time left, Cancel, the error
// or the result, Run again, and the audit timeline.

import { describe, get, post } from "./api.js";
import { renderResult } from "./results.js";
import { Timeline } from "./timeline.js";
import { badge, duration, elapsed, h, isFinished, link, notify, progressBar, replace, timeElement } from "./ui.js";

export class RunView {
  constructor(container, taskId, { navigate }) {
    this.container = container;
    this.taskId = taskId;
    this.navigate = navigate;
    this.task = null;
    this.position = 0;
    this.resultShown = false;
    this.heading = h("h2", { id: "run-heading", tabindex: "-1" }, "Run");
    this.facts = h("div", { class: "run-facts" });
    this.actions = h("div", { class: "actions" });
    this.problem = h("div", { class: "run-error" });
    this.result = h("section", { class: "run-result", "aria-labelledby": "result-heading", hidden: true });
    this.timelineHolder = h("section", { class: "run-timeline", "aria-labelledby": "timeline-heading" });
    replace(
      container,
      h("p", { class: "crumbs" }, link("/", "← Strategies and runs")),
      h("section", { class: "card run-card", "aria-labelledby": "run-heading" }, this.heading, this.facts, this.problem, this.actions),
      this.result,
      this.timelineHolder,
    );
    this.timeline = new Timeline(this.timelineHolder, taskId);
  }

  /** Load the task and its history; resolves to the position the page reflects. */
  async load() {
    const [task, history] = await Promise.all([get(`/api/tasks/${this.taskId}`), get(`/api/tasks/${this.taskId}/events`)]);
    this.task = task;
    this.timeline.set(history);
    // The log can be ahead of the projection that answered GET /api/tasks/{id}, or behind it
    // (the two requests are answered at different moments): follow from the older of the two,
    // so no event falls between them; the timeline skips the ones it already holds.
    const newest = history.events?.[history.events.length - 1];
    const historyAt = newest?.position == null ? Infinity : Number(newest.position);
    this.position = Math.min(task.position ?? 0, historyAt);
    if (newest?.state && Number(newest.version) > Number(task.version)) this.task = { ...task, ...newest.state };
    this.render();
    this.heading.focus({ preventScroll: true });
    return this.position;
  }

  /** An event from the stream; only this task's count. */
  apply(event) {
    if (event.task_id !== this.taskId || !event.task) return;
    this.timeline.add(event);
    if (this.task && Number(event.task.version) <= Number(this.task.version)) return;
    this.task = { ...this.task, ...event.task };
    this.render();
  }

  render() {
    const task = this.task;
    document.title = `${task.strategy_name || task.kind} · ${task.status} · tasktrail`;
    replace(this.heading, task.strategy_name || task.kind, " ", badge(task.status, task.cancel_requested));
    this.renderFacts(task);
    this.renderError(task);
    this.renderActions(task);
    if (task.status === "COMPLETED" && !this.resultShown) this.loadResult();
  }

  renderFacts(task) {
    const progress = task.progress || {};
    const rows = [
      ["Progress", progressBar(progress, task.status)],
      ["Phase", progress.phase || (task.status === "PENDING" ? "waiting for a worker" : "–")],
      ["Done", `${progress.current ?? 0} of ${progress.total ?? 0}`],
      ["Message", progress.message || "–"],
      ["Submitted", timeElement(task.submitted_at)],
      ["Elapsed", h("span", { class: "elapsed" }, duration(elapsed(task)))],
      ["Time left", h("span", { class: "eta" }, this.estimate())],
    ];
    if (task.worker_id) rows.push(["Worker", `${task.worker_id}, attempt ${task.attempt}`]);
    if (task.rerun_of) rows.push(["Re-run of", link(`/tasks/${task.rerun_of}`, "the earlier run")]);
    replace(this.facts, h("dl", { class: "facts" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", { "data-fact": term.toLowerCase() }, value)])));
  }

  /**
   * Time left in the current phase, from the rate of its progress events so far:
   * (total - current) / (items done in this phase / time spent on them).
   */
  estimate() {
    const task = this.task;
    if (isFinished(task.status)) return "–";
    const progress = task.progress || {};
    if (task.status !== "RUNNING" || !progress.total) return "not started";
    const samples = this.timeline.events.filter((e) => e.type === "task.progress_updated" && e.data?.phase === progress.phase);
    if (samples.length < 2) return "estimating…";
    const first = samples[0];
    const last = samples[samples.length - 1];
    const done = Number(last.data.current) - Number(first.data.current);
    const spent = Date.parse(last.timestamp) - Date.parse(first.timestamp);
    if (done <= 0 || spent <= 0) return "estimating…";
    const left = ((Number(progress.total) - Number(progress.current)) * spent) / done;
    return `about ${duration(left)} (${progress.phase})`;
  }

  renderError(task) {
    if (task.status !== "FAILED" || !task.error) {
      replace(this.problem);
      return;
    }
    const error = task.error;
    replace(
      this.problem,
      h(
        "div",
        { class: "error-box", role: "alert" },
        h("h3", {}, "The run failed"),
        h("p", { class: "error-message" }, h("strong", {}, error.type || "Error"), ": ", error.message || ""),
        error.reason ? h("p", { class: "muted small" }, `Reason: ${error.reason}`) : null,
        error.retryable ? h("p", { class: "muted small" }, "This error is retryable: Run again may succeed.") : null,
      ),
    );
  }

  renderActions(task) {
    const buttons = [];
    if (!isFinished(task.status)) {
      const cancel = h("button", { type: "button", class: "danger", disabled: Boolean(task.cancel_requested) }, task.cancel_requested ? "Cancel requested…" : "Cancel run");
      cancel.addEventListener("click", () => this.cancel(cancel));
      buttons.push(cancel);
    }
    const again = h("button", { type: "button", class: "secondary" }, "Run again");
    again.addEventListener("click", () => this.rerun(again));
    buttons.push(again);
    const focused = this.actions.contains(document.activeElement) ? document.activeElement.textContent : null;
    replace(this.actions, buttons);
    if (focused) [...this.actions.querySelectorAll("button")].find((b) => b.textContent === focused && !b.disabled)?.focus();
  }

  async cancel(button) {
    button.disabled = true;
    try {
      const answer = await post(`/api/tasks/${this.taskId}/cancel`);
      notify(answer.outcome === "requested" ? "Cancel requested: the run stops at its next progress step." : "The run is cancelled.");
    } catch (error) {
      button.disabled = false;
      notify(`Could not cancel: ${describe(error)}`, { kind: "error" });
    }
  }

  async rerun(button) {
    button.disabled = true;
    try {
      const answer = await post(`/api/tasks/${this.taskId}/rerun`);
      this.navigate(`/tasks/${answer.task_id}`);
    } catch (error) {
      button.disabled = false;
      notify(`Could not run again: ${describe(error)}`, { kind: "error" });
    }
  }

  async loadResult() {
    this.resultShown = true;
    this.result.hidden = false;
    replace(this.result, h("h2", { id: "result-heading" }, "Result"), h("p", { class: "muted" }, "Loading the result…"));
    try {
      const result = await get(`/api/tasks/${this.taskId}/result`);
      const body = h("div", {});
      renderResult(body, result);
      replace(this.result, h("h2", { id: "result-heading" }, "Result"), body);
    } catch (error) {
      this.resultShown = false;
      replace(this.result, h("h2", { id: "result-heading" }, "Result"), h("p", { class: "error-message" }, `Could not load the result: ${describe(error)}`));
    }
  }

  /** Move elapsed time and the estimate on (called every second). */
  tick() {
    if (!this.task || isFinished(this.task.status)) return;
    const elapsedCell = this.facts.querySelector(".elapsed");
    if (elapsedCell) elapsedCell.textContent = duration(elapsed(this.task));
    const eta = this.facts.querySelector(".eta");
    if (eta) eta.textContent = this.estimate();
  }
}
