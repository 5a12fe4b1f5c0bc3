// The one way the console talks to Keystead: the admin API, same origin, with the session
// cookie and, on unsafe methods, the session's CSRF token.

const BASE = "/api/admin/v1";
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
let csrfToken = "";
const unauthenticatedListeners = new Set();

export function setCsrfToken(token) {
  csrfToken = token || "";
}

/** Call `listener(error)` when a request finds the session gone (401). */
export function onUnauthenticated(listener) {
  unauthenticatedListeners.add(listener);
  return () => unauthenticatedListeners.delete(listener);
}

export class ApiError extends Error {
  constructor(status, message, fields = {}, retryAfter = null) {
    super(message);
    this.status = status;
    this.fields = fields; // field name -> the fix, when the API names the field
    this.retryAfter = retryAfter;
  }
}

export function url(path, params) {
  const target = new URL(BASE + path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") {
      target.searchParams.set(name, String(value));
    }
  }
  return target.pathname + target.search;
}

export async function request(method, path, { params, body, signal, expectSession = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE.has(method)) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(url(path, params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "Keystead cannot be reached. Check the connection and try again.");
  }
  if (response.status === 204) return null;
  let data = null;
  if ((response.headers.get("content-type") || "").includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const fields = {};
    for (const problem of (data && data.errors) || []) fields[problem.field] = sentence(problem.problem);
    const message = (data && data.message) || `Keystead answered ${response.status} ${response.statusText}.`;
    const error = new ApiError(response.status, message, fields, response.headers.get("Retry-After"));
    if (response.status === 401 && expectSession) {
      for (const listener of unauthenticatedListeners) listener(error);
    }
    throw error;
  }
  return data;
}

export const api = {
  get: (path, params, options) => request("GET", path, { ...options, params }),
  post: (path, body, options) => request("POST", path, { ...options, body }),
  patch: (path, body, options) => request("PATCH", path, { ...options, body }),
  put: (path, body, options) => request("PUT", path, { ...options, body }),
  delete: (path, options) => request("DELETE", path, options),
};

/** A message for people: the API's own words, first letter capitalised. */
export function describe(error) {
  return sentence((error && error.message) || String(error));
}

/** The API's words as a sentence: capital first letter. */
export function sentence(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}
