// The gateway's REST API as the dashboard calls it: the browser session's credential on
// every call, JSON errors as ApiError, 401 reported to the app (which asks for a credential).
//
// The credential lives in sessionStorage only: it is gone when the browser session ends,
// and never in localStorage, a cookie or the URL.

const KEY = 'mcp-gateway.credential';

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export const credential = {
  /** `{ kind: 'key' | 'bearer', value }` or null. */
  get() {
    try {
      const c = JSON.parse(sessionStorage.getItem(KEY) || 'null');
      return c && typeof c.value === 'string' && c.value ? c : null;
    } catch {
      return null;
    }
  },
  set(kind, value) {
    sessionStorage.setItem(KEY, JSON.stringify({ kind: kind === 'bearer' ? 'bearer' : 'key', value }));
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

let unauthorized = () => {};

/** `fn(error)` runs whenever a call answers 401. */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

function headersFor(cred) {
  const h = { accept: 'application/json' };
  if (cred?.kind === 'bearer') h.authorization = `Bearer ${cred.value}`;
  else if (cred) h['x-api-key'] = cred.value;
  return h;
}

/** `?a=1&b=2` from an object (empty values left out), or ''. */
export function qs(params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Calls `path` (`/api/v1/...`) and returns its JSON. `cred` overrides the stored credential
 * (the login prompt trying one before keeping it).
 */
export async function api(path, { method = 'GET', body, signal, cred } = {}) {
  const useCred = cred === undefined ? credential.get() : cred;
  const headers = headersFor(useCred);
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The gateway did not answer (network error).');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data && typeof data.error === 'object' ? data.error : null;
    const e = new ApiError(
      res.status,
      err?.code ?? `http_${res.status}`,
      typeof err?.message === 'string' ? err.message : res.statusText || `HTTP ${res.status}`,
      data,
    );
    const retry = Number(res.headers.get('retry-after'));
    if (Number.isFinite(retry)) e.retryAfter = retry;
    if (res.status === 401 && cred === undefined) unauthorized(e);
    throw e;
  }
  return data;
}

/**
 * True when `err` says the gateway has no such endpoint (an older gateway than the
 * dashboard feature needs): the dashboard then hides the feature and says why.
 */
export function endpointMissing(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 405) return true;
  if (err.status === 404 && err.code === 'not_found' && /no such endpoint/.test(err.message)) return true;
  return err.status === 400 && /unknown query parameter/.test(err.message);
}

/**
 * `GET /api/v1/metrics` with the window in buckets of `bucket` for all calls only
 * (`totals=1`: no series per server and tool, however many tools there are).
 */
export function metricsTotals(bucket) {
  return api(`/api/v1/metrics${qs({ bucket, totals: 1 })}`);
}
