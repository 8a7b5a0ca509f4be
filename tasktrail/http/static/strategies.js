// Strategies: the list with conditions in words and a Run button, and the create form.

import { ApiError, describe, get, newKey, post } from "./api.js";
import { h, link, notify, replace } from "./ui.js";

// Clicks on one Run button within this window reuse one Idempotency-Key: a double click
// (or an impatient second click) is one run, a deliberate click later is a new one.
const SAME_RUN_WINDOW_MS = 3000;

/** The strategies section of the home page. */
export class StrategiesView {
  constructor(container, { onRun = () => {} } = {}) {
    this.container = container;
    this.onRun = onRun;
    this.strategies = new Map();
    this.position = 0;
    this.catalog = null;
    this.list = h("ul", { class: "strategy-list", "aria-label": "Strategies" });
    this.formHolder = h("div", { class: "create-holder" });
    const toggle = h("button", { type: "button", class: "secondary", "aria-expanded": "false", "aria-controls": "create-strategy" }, "New strategy");
    toggle.addEventListener("click", () => this.toggleForm(toggle));
    replace(
      container,
      h("div", { class: "section-head" }, h("h2", { id: "strategies-heading" }, "Strategies"), toggle),
      this.formHolder,
      this.list,
    );
  }

  /** Load the list; resolves to the position it reflects. */
  async load() {
    const answer = await get("/api/strategies");
    this.position = answer.position ?? 0;
    this.strategies = new Map(answer.items.map((s) => [s.id, s]));
    this.render();
    return this.position;
  }

  /** A strategy event from the stream: fetch the strategy as the API shows it now. */
  async apply(event) {
    if (!String(event.type).startsWith("strategy.") || event.position <= this.position) return;
    try {
      const strategy = await get(`/api/strategies/${event.task_id}`);
      this.strategies.set(strategy.id, strategy);
      this.render();
    } catch {
      // The projection may lag the stream by a moment; the next load shows it.
    }
  }

  render() {
    const items = [...this.strategies.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    if (items.length === 0) {
      replace(this.list, h("li", { class: "empty" }, "No strategies yet. Create one with “New strategy”."));
      return;
    }
    replace(this.list, items.map((s) => this.card(s)));
  }

  card(strategy) {
    const run = h("button", { type: "button", class: "primary", "aria-label": `Run ${strategy.name}` }, "Run");
    run.addEventListener("click", () => this.run(strategy, run));
    const conditions = strategy.conditions_text || [];
    return h(
      "li",
      { class: "strategy", "data-strategy-id": strategy.id },
      h(
        "div",
        { class: "strategy-main" },
        h("h3", {}, strategy.name),
        strategy.description ? h("p", { class: "muted" }, strategy.description) : null,
        h("ul", { class: "conditions", "aria-label": `Conditions of ${strategy.name}` }, conditions.map((text) => h("li", {}, text))),
        h("p", { class: "meta" }, universeText(strategy.universe), sortText(strategy)),
      ),
      h("div", { class: "strategy-actions" }, run),
    );
  }

  async run(strategy, button) {
    const now = Date.now();
    if (!button.runKey || now - button.runKeyAt > SAME_RUN_WINDOW_MS) button.runKey = newKey();
    button.runKeyAt = now;
    if (button.inFlight) return;
    button.inFlight = true;
    button.setAttribute("aria-busy", "true");
    try {
      const answer = await post(`/api/strategies/${strategy.id}/execute`, undefined, {
        headers: { "Idempotency-Key": button.runKey },
      });
      notify(`Started a run of ${strategy.name}.`, { action: link(`/tasks/${answer.task_id}`, "Follow it") });
      this.onRun(answer);
    } catch (error) {
      notify(`Could not run ${strategy.name}: ${describe(error)}`, { kind: "error" });
    } finally {
      button.inFlight = false;
      button.removeAttribute("aria-busy");
    }
  }

  async toggleForm(toggle) {
    const open = toggle.getAttribute("aria-expanded") === "true";
    if (open) {
      toggle.setAttribute("aria-expanded", "false");
      replace(this.formHolder);
      return;
    }
    toggle.setAttribute("aria-expanded", "true");
    try {
      this.catalog ??= await get("/api/metrics/catalog");
    } catch (error) {
      notify(`Could not load the metrics: ${describe(error)}`, { kind: "error" });
      toggle.setAttribute("aria-expanded", "false");
      return;
    }
    const form = new StrategyForm(this.catalog, {
      onCreated: (strategy) => {
        this.strategies.set(strategy.id, strategy);
        this.render();
        notify(`Created ${strategy.name}.`);
        toggle.setAttribute("aria-expanded", "false");
        replace(this.formHolder);
        toggle.focus();
      },
      onCancel: () => {
        toggle.setAttribute("aria-expanded", "false");
        replace(this.formHolder);
        toggle.focus();
      },
    });
    replace(this.formHolder, form.element);
    form.focus();
  }
}

function universeText(universe) {
  if (!universe || universe.provider === "sample") return "Universe: the sample market. ";
  return `Universe: CSV ${universe.path || ""}. `;
}

function sortText(strategy) {
  const parts = [];
  if (strategy.sort?.metric) parts.push(`Sorted by ${strategy.sort.metric}${strategy.sort.descending ? ", highest first" : ", lowest first"}`);
  if (strategy.limit) parts.push(`top ${strategy.limit}`);
  return parts.length ? `${parts.join(", ")}.` : "";
}

let formCount = 0;

/** The create-a-strategy form; server-side 422 errors appear next to the field they name. */
export class StrategyForm {
  constructor(catalog, { onCreated, onCancel }) {
    this.catalog = catalog;
    this.onCreated = onCreated;
    this.metrics = catalog.metrics || [];
    this.operators = catalog.operators || ["<", "<=", ">", ">=", "==", "!="];
    this.prefix = `sf${++formCount}`;
    this.conditions = h("ol", { class: "condition-rows", "data-field": "conditions" });
    this.formError = h("div", { class: "form-error", role: "alert", hidden: true });
    this.element = this.build(onCancel);
    this.addCondition();
  }

  build(onCancel) {
    const id = (name) => `${this.prefix}-${name}`;
    const provider = h("select", { id: id("provider"), name: "provider" }, h("option", { value: "sample" }, "Sample market"), h("option", { value: "csv" }, "CSV file"));
    const pathField = field(id("path"), "universe.path", "CSV path (under the server's CSV folder)", h("input", { id: id("path"), name: "path", type: "text", autocomplete: "off" }));
    pathField.hidden = true;
    provider.addEventListener("change", () => {
      pathField.hidden = provider.value !== "csv";
    });
    const addButton = h("button", { type: "button", class: "secondary" }, "Add condition");
    addButton.addEventListener("click", () => this.addCondition(true));
    const sortMetric = h("select", { id: id("sort"), name: "sort" }, h("option", { value: "" }, "— no sorting —"), metricOptions(this.metrics));
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    cancel.addEventListener("click", onCancel);
    const form = h(
      "form",
      { id: "create-strategy", class: "card strategy-form", novalidate: true, "aria-labelledby": id("title") },
      h("h3", { id: id("title") }, "New strategy"),
      this.formError,
      field(id("name"), "name", "Name", h("input", { id: id("name"), name: "name", type: "text", autocomplete: "off" })),
      field(id("description"), "description", "Description (optional)", h("textarea", { id: id("description"), name: "description", rows: "2" })),
      field(id("provider"), "universe", "Stock universe", provider),
      pathField,
      h("fieldset", { class: "conditions-set" }, h("legend", {}, "Conditions (all must hold)"), this.conditions, fieldError("conditions"), addButton),
      h(
        "div",
        { class: "row" },
        field(id("sort"), "sort.metric", "Sort by", sortMetric),
        h("div", { class: "field checkbox" }, h("input", { id: id("descending"), name: "descending", type: "checkbox", checked: true }), h("label", { for: id("descending") }, "Highest first")),
        field(id("limit"), "limit", "Keep at most (rows)", h("input", { id: id("limit"), name: "limit", type: "number", min: "1", step: "1", inputmode: "numeric" })),
      ),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create strategy"), cancel),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(form);
    });
    return form;
  }

  focus() {
    this.element.querySelector("input[name=name]")?.focus();
  }

  addCondition(focus = false) {
    const row = new ConditionRow(this, this.conditions.children.length);
    this.conditions.append(row.element);
    this.renumber();
    if (focus) row.element.querySelector("select")?.focus();
  }

  renumber() {
    [...this.conditions.children].forEach((element, index) => element.conditionRow.setIndex(index));
  }

  value() {
    const form = this.element;
    const get = (name) => form.elements[name]?.value ?? "";
    const body = { name: get("name").trim(), conditions: [...this.conditions.children].map((li) => li.conditionRow.value()) };
    const description = get("description").trim();
    if (description) body.description = description;
    body.universe = get("provider") === "csv" ? { provider: "csv", path: get("path").trim() } : { provider: "sample" };
    if (get("sort")) body.sort = { metric: get("sort"), descending: form.elements.descending.checked };
    const limit = get("limit").trim();
    if (limit) body.limit = Number.isFinite(Number(limit)) ? Number(limit) : limit;
    return body;
  }

  async submit(form) {
    this.clearErrors();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const strategy = await post("/api/strategies", this.value());
      this.onCreated(strategy);
    } catch (error) {
      this.showErrors(error);
    } finally {
      button.disabled = false;
    }
  }

  clearErrors() {
    this.formError.hidden = true;
    replace(this.formError);
    for (const element of this.element.querySelectorAll(".field-error")) replace(element);
    for (const element of this.element.querySelectorAll("[aria-invalid]")) element.removeAttribute("aria-invalid");
  }

  showErrors(error) {
    const unplaced = [];
    const fieldErrors = error instanceof ApiError ? error.errors : [];
    for (const { field: name, message } of fieldErrors) {
      if (!this.placeError(String(name || ""), message)) unplaced.push(name ? `${name}: ${message}` : message);
    }
    if (fieldErrors.length === 0 || unplaced.length) {
      this.formError.hidden = false;
      replace(this.formError, h("p", {}, fieldErrors.length ? "Please correct:" : describe(error)), unplaced.length ? h("ul", {}, unplaced.map((m) => h("li", {}, m))) : null);
    }
    const first = this.element.querySelector("[aria-invalid=true]");
    (first || this.formError).focus?.();
  }

  /** Show `message` by the field named `name` (or its nearest named parent); false if none. */
  placeError(name, message) {
    let key = name.replace(/^body\./, "").replace(/\[(\d+)\]/g, ".$1");
    while (key) {
      const holder = this.element.querySelector(`[data-field="${CSS.escape(key)}"]`);
      const slot = holder?.querySelector(`:scope > .field-error, :scope > * > .field-error`) || holder?.parentElement?.querySelector(`.field-error[data-for="${CSS.escape(key)}"]`);
      if (holder && slot) {
        slot.append(h("span", {}, message));
        const control = holder.matches("input, select, textarea") ? holder : holder.querySelector("input, select, textarea");
        control?.setAttribute("aria-invalid", "true");
        return true;
      }
      key = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "";
    }
    return false;
  }
}

class ConditionRow {
  constructor(form, index) {
    this.form = form;
    this.uid = `${form.prefix}-c${Math.random().toString(36).slice(2, 8)}`;
    const metrics = form.metrics;
    this.metric = h("select", { id: `${this.uid}-metric` }, metricOptions(metrics));
    this.operator = h("select", { id: `${this.uid}-op` }, form.operators.map((op) => h("option", { value: op }, operatorText(op))));
    this.operator.value = form.operators.includes(">") ? ">" : form.operators[0];
    this.mode = h("select", { id: `${this.uid}-mode` }, h("option", { value: "value" }, "a value"), h("option", { value: "other" }, "another metric"));
    this.input = h("input", { id: `${this.uid}-value`, type: "text", inputmode: "decimal", autocomplete: "off" });
    this.other = h("select", { id: `${this.uid}-other` }, metricOptions(metrics));
    this.remove = h("button", { type: "button", class: "link danger" }, "Remove");
    this.remove.addEventListener("click", () => {
      this.element.remove();
      form.renumber();
    });
    this.valueField = field(this.input.id, "", "Value", this.input);
    this.otherField = field(this.other.id, "", "Metric", this.other);
    this.otherField.hidden = true;
    this.mode.addEventListener("change", () => {
      this.valueField.hidden = this.mode.value !== "value";
      this.otherField.hidden = this.mode.value !== "other";
    });
    this.metricField = field(this.metric.id, "", "Metric", this.metric);
    this.operatorField = field(this.operator.id, "", "Operator", this.operator);
    this.modeField = field(this.mode.id, "", "Compared with", this.mode);
    this.element = h(
      "li",
      { class: "condition-row" },
      this.metricField,
      this.operatorField,
      this.modeField,
      this.valueField,
      this.otherField,
      h("div", { class: "field remove-field" }, this.remove),
      fieldError(""),
    );
    this.element.conditionRow = this;
    this.setIndex(index);
  }

  setIndex(index) {
    const base = `conditions.${index}`;
    this.element.dataset.field = base;
    this.element.querySelector(":scope > .field-error").dataset.for = base;
    this.metricField.dataset.field = `${base}.metric`;
    this.operatorField.dataset.field = `${base}.operator`;
    this.valueField.dataset.field = `${base}.value`;
    this.otherField.dataset.field = `${base}.other`;
    this.remove.setAttribute("aria-label", `Remove condition ${index + 1}`);
    this.metric.setAttribute("aria-label", `Condition ${index + 1} metric`);
  }

  value() {
    const condition = { metric: this.metric.value, operator: this.operator.value };
    if (this.mode.value === "other") {
      condition.other = this.other.value;
      return condition;
    }
    const raw = this.input.value.trim();
    const kind = this.form.metrics.find((m) => m.name === this.metric.value)?.kind;
    const number = Number(raw);
    condition.value = raw === "" ? null : kind !== "text" && Number.isFinite(number) ? number : raw;
    return condition;
  }
}

const OPERATOR_TEXT = { "<": "< less than", "<=": "≤ at most", ">": "> more than", ">=": "≥ at least", "==": "= equal to", "!=": "≠ not equal to" };
const operatorText = (op) => OPERATOR_TEXT[op] || op;

function metricOptions(metrics) {
  const kinds = [...new Set(metrics.map((m) => m.kind || "other"))];
  return kinds.map((kind) =>
    h("optgroup", { label: kindLabel(kind) }, metrics.filter((m) => (m.kind || "other") === kind).map((m) => h("option", { value: m.name }, m.label && m.label !== m.name ? `${m.label} (${m.name})` : m.name))),
  );
}

const kindLabel = (kind) => ({ fundamental: "Fundamentals", indicator: "Indicators", text: "Text" })[kind] || kind;

/** A labelled control with a slot for its error, marked with the API field name. */
function field(id, name, label, control) {
  const error = fieldError(name);
  control.setAttribute("aria-describedby", error.id);
  return h("div", { class: "field", "data-field": name || null }, h("label", { for: id }, label), control, error);
}

let errorCount = 0;
function fieldError(name) {
  return h("p", { class: "field-error", id: `field-error-${++errorCount}`, "data-for": name || null, "aria-live": "polite" });
}
