// The dashboard's client of the REST door. The session lives in an httpOnly cookie the page
// cannot read; each call proves it comes from this page with the CSRF token (X-Roost-CSRF),
// which the server set in a readable cookie of this origin.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

const CSRF_COOKIE = "roost_dashboard_csrf";

export function csrf() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return rest.join("=");
  }
  return "";
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiError(
      response.status,
      error.code || "http_" + response.status,
      error.message || `the server answered ${response.status}`,
      error.details,
    );
  }
  return body;
}

async function send(method, path, body, token = csrf()) {
  const headers = { "Content-Type": "application/json" };
  // without the token the cookie is ignored and the call is anonymous (a 401 to sign in)
  if (token) headers["X-Roost-CSRF"] = token;
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "network", "the server cannot be reached: check that roost serve runs");
  }
  return answer(response);
}

// call("database.query", {...}) -> the operation's answer (POST /api/v1/<module>/<op>).
export function call(operation, params = {}) {
  const [module, ...rest] = operation.split(".");
  return send("POST", `/api/v1/${module}/${rest.join(".")}`, params);
}

export function signIn(fields) {
  return send("POST", "/_/session", fields, "signin");
}

export function signOut() {
  return send("DELETE", "/_/session", undefined, csrf() || "signout");
}

// Upload a file with progress: fetch() cannot report upload progress, XMLHttpRequest can.
export function upload(bucket, name, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const path = `/api/v1/storage/buckets/${encodeURIComponent(bucket)}/objects/` +
      name.split("/").map(encodeURIComponent).join("/");
    xhr.open("PUT", path);
    xhr.setRequestHeader("X-Roost-CSRF", csrf());
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload was cut off: try again"));
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      const error = (body && body.error) || {};
      reject(new ApiError(xhr.status, error.code || "http_" + xhr.status,
        error.message || `the upload failed (${xhr.status})`, error.details));
    };
    xhr.send(file);
  });
}

// Whether scopes (the principal's) allow `needed`: `*` and `module:*` are wildcards, as on
// the server; the server checks again, this only hides what would be refused.
export function allows(scopes, needed) {
  const module = needed.split(":")[0];
  return scopes.some((s) => s === "*" || s === needed || s === module + ":*");
}

// A subscription on the realtime WebSocket (/api/v1/ws). A page cannot set headers on a
// WebSocket, so the CSRF token rides in the URL; the session comes with the cookie.
// onReady() once the server has subscribed, onEvent(event) for each pushed event,
// onError(ApiError) once if it fails or the connection drops. Returns the way to stop.
export function subscribe(method, params, { onReady, onEvent, onError }) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${window.location.host}/api/v1/ws?csrf_token=${encodeURIComponent(csrf())}`;
  const ws = new WebSocket(url);
  let stopped = false;
  const fail = (error) => { if (!stopped) { stopped = true; onError(error); ws.close(); } };
  ws.onopen = () => ws.send(JSON.stringify({ id: 1, method, params }));
  ws.onmessage = (message) => {
    let frames;
    try { frames = JSON.parse(message.data); } catch { return; }
    for (const frame of Array.isArray(frames) ? frames : [frames]) {
      if (frame.error) {
        const e = frame.error;
        fail(new ApiError(0, e.code, e.message, e.details));
      } else if (frame.id === 1 && frame.result) {
        onReady();
      } else if (frame.sub !== undefined && frame.event !== undefined) {
        onEvent(frame.event);
      }
    }
  };
  ws.onclose = (event) => fail(new ApiError(0, "disconnected",
    `the live connection closed (${event.code}${event.reason ? ": " + event.reason : ""}); turn the tail off and on to reconnect`));
  return () => { stopped = true; ws.close(); };
}

// A streamed operation (POST /api/v1/<module>/<op>, answered as NDJSON lines): yields each
// item as it arrives; a line with an error (after some items) throws it.
export async function* stream(operation, params = {}) {
  const [module, ...rest] = operation.split(".");
  let response;
  try {
    response = await fetch(`/api/v1/${module}/${rest.join(".")}`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Roost-CSRF": csrf() },
      body: JSON.stringify(params),
    });
  } catch {
    throw new ApiError(0, "network", "the server cannot be reached: check that roost serve runs");
  }
  if (!response.ok) await answer(response); // throws the server's error
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { done, value } = await reader.read();
    buffered += decoder.decode(value || new Uint8Array(), { stream: !done });
    const lines = buffered.split("\n");
    buffered = done ? "" : lines.pop();
    for (const line of lines) {
      if (!line.trim()) continue;
      const frame = JSON.parse(line);
      if (frame.error) {
        const e = frame.error;
        throw new ApiError(0, e.code, e.message, e.details);
      }
      if (frame.end) return;
      yield frame.chunk;
    }
    if (done) throw new ApiError(0, "disconnected", "the answer was cut off before its end: try again");
  }
}

// Trade this session for one of the person's member account in another tenant (the cookies
// change; the page reloads to show that tenant).
export function switchTenant(tenant) {
  return send("POST", "/_/session/switch", { tenant });
}
