// The HTTP API, as the console calls it: JSON in and out, the token of this tab, and
// the two ways a call fails (the broker answered an error; the broker is away).
// The console does nothing but through these calls: a script can do all of it.

const TOKEN_KEY = "wonderq.token";

/** The broker answered with an error body (`{"ok":false,"error":CODE,"message":TEXT}`). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The broker did not answer, or answered that it is starting or stopping (503). */
export class Away extends Error {}

let askToken = null; // (problem: string) => Promise<string | null>
let asking = null; // the token prompt that is open, shared by every call that needs it

/** Who asks the person for the token when the broker answers 401. */
export function setTokenPrompt(prompt) {
  askToken = prompt;
}

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function newToken(refused) {
  if (asking === null) {
    const problem = refused ? "That token was refused. Try again." : "";
    asking = askToken(problem).finally(() => {
      asking = null;
    });
  }
  const token = await asking;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  return token;
}

async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new Away(`the broker does not answer (${error.message})`);
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  return { response, data, token };
}

/** `method path` with a JSON `body`; the reply's JSON. Asks for the token on a 401. */
export async function call(method, path, body) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const { response, data, token } = await send(method, path, body);
    if (response.status === 401 && askToken !== null) {
      sessionStorage.removeItem(TOKEN_KEY);
      const given = await newToken(Boolean(token));
      if (!given) throw new ApiError(401, "unauthorized", "This broker needs its token.");
      continue;
    }
    if (response.status === 503) {
      throw new Away(data?.message ?? "the broker is unavailable");
    }
    if (response.status === 204) return { ok: true };
    if (!response.ok || data === null || data.ok !== true) {
      throw new ApiError(response.status, data?.error ?? "error", data?.message ?? response.statusText);
    }
    return data;
  }
  throw new ApiError(401, "unauthorized", "This broker needs its token.");
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

/** A path with its query string; parameters that are undefined, null or "" are left out. */
export function path(base, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${base}?${text}` : base;
}

/** The API path of a queue (`/v1/queues/<name>`), and of what hangs below it. */
export function queuePath(name, rest = "") {
  return `/v1/queues/${encodeURIComponent(name)}${rest}`;
}
