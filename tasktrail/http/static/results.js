// A completed run's result: a table sortable by any column (header buttons, so the keyboard
// works), with aria-sort telling screen readers the order.

import { cell, h, replace } from "./ui.js";

/** Render `result` ({columns, rows, matched, scanned}) into `container`. */
export function renderResult(container, result) {
  const columns = result.columns || [];
  const rows = result.rows || [];
  const sort = { column: -1, descending: false };
  const summary = h(
    "p",
    { class: "result-summary" },
    `${result.matched ?? rows.length} matched of ${result.scanned ?? "?"} scanned`,
    rows.length < (result.matched ?? rows.length) ? ` (showing the first ${rows.length})` : "",
    ".",
  );
  if (rows.length === 0) {
    replace(container, summary, h("p", { class: "empty" }, "No stock met every condition."));
    return;
  }
  const head = h("tr", {});
  const body = h("tbody", {});
  const table = h("table", { class: "result", "aria-label": "Result" }, h("thead", {}, head), body);

  const draw = () => {
    replace(
      head,
      columns.map((name, index) => {
        const active = sort.column === index;
        const order = active ? (sort.descending ? "descending" : "ascending") : null;
        const button = h("button", { type: "button", class: "sort", "data-column": name }, name, h("span", { class: "sort-mark", "aria-hidden": "true" }, active ? (sort.descending ? " ▼" : " ▲") : ""));
        button.addEventListener("click", () => {
          sort.descending = active ? !sort.descending : false;
          sort.column = index;
          draw();
          head.querySelector(`button[data-column="${CSS.escape(name)}"]`)?.focus();
        });
        return h("th", { scope: "col", "aria-sort": order, class: isNumericColumn(rows, index) ? "num" : null }, button);
      }),
    );
    const ordered = sort.column < 0 ? rows : sortedRows(rows, sort.column, sort.descending);
    replace(body, ordered.map((row) => h("tr", {}, row.map((value, i) => h("td", { class: typeof value === "number" ? "num" : null }, cell(value))))));
  };
  draw();
  replace(container, summary, h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Result table" }, table));
}

function isNumericColumn(rows, index) {
  return rows.some((row) => typeof row[index] === "number");
}

/** `rows` ordered by column `index`: numbers numerically, text by locale, blanks last. */
export function sortedRows(rows, index, descending) {
  const compare = (a, b) => {
    const x = a[index];
    const y = b[index];
    const xBlank = x === null || x === undefined;
    const yBlank = y === null || y === undefined;
    if (xBlank || yBlank) return xBlank === yBlank ? 0 : xBlank ? 1 : -1;
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return descending ? -order : order;
  };
  return [...rows].sort(compare);
}
