// The API client. The page is authenticated by the HttpOnly session cookie that
// POST /v1/session sets; the API key itself is never kept anywhere in the page. Every request
// but GET/HEAD carries the session's CSRF token, held in this module's memory only.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `request failed with status ${status}`);
    this.status = status;
    this.code = error.code || "error";
    this.details = error.details || [];
  }
}

let csrfToken = null;
let session = null;

async function call(method, path, {body, query} = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") params.set(k, v);
    }
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  const headers = {"Accept": "application/json"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = null; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (response.status === 401 && path !== "/v1/session") {
      session = null;
      window.dispatchEvent(new CustomEvent("flowd:signed-out"));
    }
    throw error;
  }
  return parsed;
}

export const api = {
  get: (path, query) => call("GET", path, {query}),
  post: (path, body, query) => call("POST", path, {body: body === undefined ? {} : body, query}),
  put: (path, body) => call("PUT", path, {body}),
  patch: (path, body) => call("PATCH", path, {body}),
  del: (path, query) => call("DELETE", path, {query}),

  /** Every page of a list endpoint, up to `max` items. */
  async all(path, query = {}, max = 1000) {
    const items = [];
    let cursor = null;
    while (items.length < max) {
      const page = await call("GET", path, {query: {...query, limit: 100, cursor}});
      items.push(...page.data);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    return items.slice(0, max);
  },
};

/** The current session ({project, role, expires_at}) or null. */
export function currentSession() {
  return session;
}

export function canEdit() {
  return !!session && (session.role === "admin" || session.role === "editor");
}

/** Ask the server whether the cookie still holds a session. */
export async function restoreSession() {
  try {
    remember(await call("GET", "/v1/session"));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    forget();
  }
  return session;
}

export async function signIn(key) {
  remember(await call("POST", "/v1/session", {body: {key}}));
  return session;
}

export async function signOut() {
  try {
    await call("DELETE", "/v1/session");
  } finally {
    forget();
  }
}

function remember(body) {
  csrfToken = body.csrf_token;
  session = {project: body.project, role: body.role, expires_at: body.expires_at};
}

function forget() {
  csrfToken = null;
  session = null;
}
