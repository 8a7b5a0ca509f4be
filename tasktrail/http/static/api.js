// The HTTP API client: JSON in and out, problem+json errors as ApiError.
// Same-origin only: the session cookie (token mode) rides along with every request.

/** An error answer from the API, with the problem document's fields. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.detail = problem.detail || "";
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

/** The server could not be reached at all (no answer). */
export class NetworkError extends Error {
  constructor(cause) {
    super("The server cannot be reached.");
    this.name = "NetworkError";
    this.cause = cause;
  }
}

const unauthorizedListeners = new Set();

/** Call `listener()` whenever the API answers 401 (token mode, not signed in). */
export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text.slice(0, 300) };
  }
}

/**
 * Send one request. `body` is sent as JSON; `headers` are added.
 * Resolves to the parsed JSON (null for an empty body); rejects with ApiError on 4xx/5xx
 * and with NetworkError when the server cannot be reached.
 */
export async function request(method, path, { body, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  init.credentials = "same-origin";
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error?.name === "AbortError") throw error;
    throw new NetworkError(error);
  }
  const data = await readBody(response);
  if (!response.ok) {
    if (response.status === 401) unauthorizedListeners.forEach((fn) => fn());
    throw new ApiError(response.status, data || {});
  }
  return data;
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });

/** A random key for Idempotency-Key headers (works outside secure contexts too). */
export function newKey() {
  if (globalThis.crypto?.randomUUID) {
    try {
      return crypto.randomUUID();
    } catch {
      // randomUUID exists but needs a secure context: fall through.
    }
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The query string of `params`, skipping empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** A short message for any error: the problem's detail, or why the server was unreachable. */
export function describe(error) {
  if (error instanceof ApiError) return error.detail || error.title;
  if (error instanceof NetworkError) return error.message;
  return String(error?.message || error);
}
