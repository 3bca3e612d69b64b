// The API of this same origin, called with the key kept in sessionStorage: never in a URL, a cookie or a log.
const STORE = 'pioneer.portal';

/** The signed-in key: { key, id, role, tenantId }, or null. */
export function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORE) ?? 'null');
    return s && typeof s.key === 'string' ? s : null;
  } catch {
    return null;
  }
}
export function saveSession(s) {
  sessionStorage.setItem(STORE, JSON.stringify(s));
}
export function clearSession() {
  sessionStorage.removeItem(STORE);
}

/** An answer other than 2xx: `problem` is the API's problem+json (title, code, errors[{field, message}]). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.title || problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
  }
  /** The messages of `errors`, by field. */
  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

const base = (key, extra = {}) => ({
  cache: 'no-store',
  credentials: 'omit',
  referrerPolicy: 'no-referrer',
  headers: { authorization: `Bearer ${key}`, ...extra },
});

/** JSON in, JSON out; throws ApiError. */
export async function call(key, method, path, body) {
  const init = base(key, { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) });
  const res = await fetch(path, { ...init, method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    // a key revoked while signed in: the shell signs out
    if (res.status === 401) dispatchEvent(new CustomEvent('pioneer:unauthorized'));
    throw new ApiError(res.status, json ?? { title: text.slice(0, 300) || res.statusText });
  }
  return json;
}

/**
 * Reads a Server-Sent Events stream with fetch() (EventSource cannot send the Authorization header) until
 * `signal` aborts or the stream ends; calls `onEvent({ id, event, data })` per event. Resolves when it ends.
 */
export async function readSse(key, path, { signal, lastEventId, onEvent, onOpen }) {
  const res = await fetch(path, { ...base(key, { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }), signal });
  if (!res.ok) {
    let problem = null;
    try {
      problem = await res.json();
    } catch {
      problem = null;
    }
    throw new ApiError(res.status, problem);
  }
  onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, '\n');
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      const ev = { id: undefined, event: 'message', data: '' };
      let hasData = false;
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const v = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') ev.id = v;
        else if (field === 'event') ev.event = v;
        else if (field === 'data') {
          ev.data += (hasData ? '\n' : '') + v;
          hasData = true;
        }
      }
      if (hasData) onEvent(ev);
    }
  }
}

/** The milliseconds of a cursor `<ms>-<seq>`, or null. */
export function cursorMs(cursor) {
  const m = /^(\d+)-\d+$/.exec(cursor ?? '');
  return m ? Number(m[1]) : null;
}
