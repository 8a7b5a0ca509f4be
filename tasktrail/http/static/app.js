// The page's entry point: sign-in (token mode), routing between the home page and a run's
// page, the connection indicator, and the tab's one live stream shared by the views.

import { describe, get, onUnauthorized, post } from "./api.js";
import { LiveStream } from "./live.js";
import { RunView } from "./run.js";
import { RunsView } from "./runs.js";
import { StrategiesView } from "./strategies.js";
import { h, notify, replace } from "./ui.js";

const main = document.getElementById("main");
const indicator = document.getElementById("connection");
const reconnectButton = document.getElementById("reconnect");
let view = null;
let unfollow = () => {};
let renderId = 0;

const CONNECTION_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

const live = new LiveStream({
  onState(state, detail) {
    indicator.dataset.state = state;
    indicator.dataset.position = String(detail.position ?? "");
    indicator.dataset.dropped = String(detail.dropped);
    let text = CONNECTION_TEXT[state] || state;
    if (state === "reconnecting" && detail.retryAt) {
      text += ` (attempt ${detail.attempt})`;
    }
    const label = indicator.querySelector(".label");
    if (label.textContent !== text) label.textContent = text;
    reconnectButton.hidden = !(state === "reconnecting" || state === "offline");
    indicator.title = state === "live" ? `Receiving live events (log position ${detail.position})` : "The live stream is down: the page retries with back-off and catches up when it returns.";
  },
});

reconnectButton.addEventListener("click", () => live.reconnectNow());

/** Go to `path` inside the page (no reload). */
export function navigate(path, { replaceState = false } = {}) {
  if (replaceState) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  render();
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest?.("a[data-route]");
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", () => render());

async function render() {
  const id = ++renderId;
  unfollow();
  view = null;
  const match = location.pathname.match(/^\/tasks\/([^/]+)\/?$/);
  try {
    if (match) await showRun(id, decodeURIComponent(match[1]));
    else await showHome(id);
  } catch (error) {
    if (id !== renderId) return;
    if (error?.status === 401) return; // the sign-in form is showing
    replace(main, h("div", { class: "card error-box", role: "alert" }, h("h2", {}, error?.status === 404 ? "Not found" : "Could not load the page"), h("p", {}, describe(error)), h("p", {}, h("a", { href: "/", "data-route": "" }, "Back to strategies and runs"))));
  }
}

async function showHome(id) {
  document.title = "tasktrail";
  const strategiesBox = h("section", { class: "strategies", "aria-labelledby": "strategies-heading" });
  const runsBox = h("section", { class: "runs-section", "aria-labelledby": "runs-heading" });
  const status = new URLSearchParams(location.search).get("status") || "";
  const strategies = new StrategiesView(strategiesBox);
  let follow = () => {};
  const runs = new RunsView(runsBox, { status, onReloaded: (at) => follow(at) });
  const [strategiesAt, runsAt] = await Promise.all([strategies.load(), runs.load()]);
  if (id !== renderId) return;
  replace(main, h("div", { class: "home" }, strategiesBox, runsBox));
  view = runs;
  const handler = (event) => (String(event.type).startsWith("strategy.") ? strategies.apply(event) : runs.apply(event));
  follow = (at) => {
    if (id !== renderId) return;
    unfollow();
    unfollow = live.follow(at, handler);
  };
  // Follow from the older of the two positions; each view skips what it already reflects.
  follow(Math.min(strategiesAt, runsAt));
}

async function showRun(id, taskId) {
  const box = h("div", { class: "run" });
  const run = new RunView(box, taskId, { navigate });
  replace(main, h("p", { class: "muted" }, "Loading the run…"));
  const at = await run.load();
  if (id !== renderId) return;
  replace(main, box);
  run.heading.focus({ preventScroll: true });
  view = run;
  unfollow = live.follow(at, (event) => run.apply(event));
}

setInterval(() => view?.tick?.(), 1000);

// -- token mode ---------------------------------------------------------------------------

function showSignIn(message = "") {
  const dialog = document.getElementById("sign-in");
  if (!dialog.hidden) return;
  const error = dialog.querySelector(".field-error");
  error.textContent = message;
  dialog.hidden = false;
  main.inert = true;
  dialog.querySelector("input").focus();
}

document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const input = form.elements.token;
  const error = form.querySelector(".field-error");
  error.textContent = "";
  try {
    await post("/api/session", { token: input.value });
    input.value = "";
    document.getElementById("sign-in").hidden = true;
    main.inert = false;
    live.reconnectNow();
    render();
  } catch (problem) {
    error.textContent = problem?.status === 401 || problem?.status === 403 ? "That token is not right." : describe(problem);
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
});

onUnauthorized(() => showSignIn("Sign in to continue."));

async function start() {
  try {
    const session = await get("/api/session");
    if (session.auth_required && !session.signed_in) {
      showSignIn();
      return;
    }
  } catch (error) {
    notify(`Could not reach the server: ${describe(error)}`, { kind: "error" });
  }
  render();
}

start();
