// Talking to the hub3d API from the page: relative URLs (the page may sit under a proxy
// prefix), the API key kept in this browser, the hub's XSRF cookie echoed on POST/DELETE.

export const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
const KEY_SLOT = "hub3d-api-key:" + base;

export const apiKey = {
  get: () => localStorage.getItem(KEY_SLOT) || "",
  set: (value) => localStorage.setItem(KEY_SLOT, value),
  clear: () => localStorage.removeItem(KEY_SLOT),
};

// The notebook's link carries the key in the fragment (#key=…): never sent to a server or
// written to a log. Keep it, then drop it from the address bar.
export function takeKeyFromFragment() {
  const match = location.hash.match(/(?:^#|&)key=([^&]*)/);
  if (!match) return;
  apiKey.set(decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function url(path) {
  return new URL(path, location.origin + base).toString();
}

async function failure(r) {
  const type = r.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      const body = await r.json();
      if (body && body.error) return new ApiError(r.status, body.error.code, body.error.message);
    } catch { /* not the API's error shape: say what came back below */ }
  }
  if (r.status === 403 && type.includes("html")) {
    return new ApiError(403, "forbidden", "the hub refused the request (403): reload this page;" +
      " if it persists, open the notebook once so the hub sets its XSRF cookie");
  }
  return new ApiError(r.status, `http_${r.status}`,
    `the server answered ${r.status} ${r.statusText || ""}`.trim());
}

// fetch() a route of this server. Returns parsed JSON, or the Response when raw.
export async function api(path, { method = "GET", body, headers = {}, raw = false, signal } = {}) {
  const h = new Headers(headers);
  const key = apiKey.get();
  if (key) h.set("X-API-Key", key);
  const xsrf = cookie("_xsrf"); // set by Jupyter; jupyter-server-proxy checks it on POST
  if (xsrf && method !== "GET") h.set("X-XSRFToken", xsrf);
  let r;
  try {
    r = await fetch(url(path), { method, body, headers: h, signal, cache: "no-store",
                                 credentials: "same-origin" });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", `could not reach the hub3d server (${exc.message}):` +
      " is the notebook's server still running?");
  }
  const type = r.headers.get("content-type") || "";
  if (r.redirected && type.includes("html")) {
    throw new ApiError(r.status, "login", "the hub sent its login page: your hub session has" +
      " ended. Reload this page and log in again.");
  }
  if (!r.ok) throw await failure(r);
  if (raw) return r;
  return type.includes("json") ? r.json() : r;
}

// Server-sent events read with fetch (EventSource cannot send the X-API-Key header).
export async function* events(path, signal) {
  const r = await api(path, { raw: true, signal, headers: { Accept: "text/event-stream" } });
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

// One key per submission, reused by its retry, so a resend never queues a second job.
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
