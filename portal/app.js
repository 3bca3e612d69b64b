// The Pioneer portal: sign in with a key, then the views its role may use. Hash routes carry ids only.
import { html, render, useState, useEffect, useCallback, useRef } from '/portal/vendor/preact-htm.js';
import { ApiError, call, clearSession, cursorMs, loadSession, readSse, saveSession } from '/portal/api.js';
import { BarChart, ColumnChart } from '/portal/chart.js';

const enc = encodeURIComponent;
const TAIL_MAX = 200;
const DEAD_LETTERS_MAX = 800; // the API answers at most 1000 a page

function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
}

/** Loads `path` (again every `every` ms when given); { data, error, reload }. */
function useApi(key, path, every) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const reload = useCallback(async () => {
    if (!path) return;
    try {
      const data = await call(key, 'GET', path);
      setState({ data, error: null, loading: false });
    } catch (error) {
      setState((s) => ({ data: s.data, error, loading: false }));
    }
  }, [key, path]);
  useEffect(() => {
    setState({ data: null, error: null, loading: true });
    reload();
    if (!every) return undefined;
    const t = setInterval(reload, every);
    return () => clearInterval(t);
  }, [reload, every]);
  return { ...state, reload };
}

const Problem = ({ error }) => (error ? html`<p class="error" role="alert">${error.message}</p>` : null);
const time = (t) => (t ? new Date(t).toLocaleString() : '—');

// ─── sign-in ───────────────────────────────────────────────────────────────────────────────────────────────────
function SignIn({ onSignedIn, notice }) {
  const [error, setError] = useState(notice ? new Error(notice) : null);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  const submit = async (e) => {
    e.preventDefault();
    const key = input.current.value.trim();
    setBusy(true);
    try {
      const me = await call(key, 'GET', '/v1/keys/current');
      const s = { key, id: me.id, role: me.role, tenantId: me.tenant_id };
      saveSession(s);
      input.current.value = '';
      onSignedIn(s);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? new Error('This key is unknown, revoked or malformed.') : err);
    } finally {
      setBusy(false);
    }
  };
  // the input has no name: were the script to fail, a submitted form would carry no key anywhere
  return html`<section class="signin">
    <h1>Pioneer portal</h1>
    <form method="post" onSubmit=${submit}>
      <label for="api-key">API key</label>
      <input id="api-key" ref=${input} type="password" autocomplete="off" spellcheck="false" placeholder="pk_…" required />
      <p class="hint">A tenant, consumer or admin key. It stays in this tab's session storage and is forgotten when you sign out or close the tab.</p>
      <button type="submit" disabled=${busy}>Sign in</button>
      <${Problem} error=${error} />
    </form>
  </section>`;
}

// ─── subscriptions ─────────────────────────────────────────────────────────────────────────────────────────────
const FIELDS = ['name', 'types', 'source', 'filters', 'transform', 'sink'];

/** The form's text of a subscription. */
function formOf(sub) {
  return {
    name: sub?.name ?? '',
    types: (sub?.types ?? []).join(', '),
    source: sub?.source ?? '',
    filters: sub?.filters?.length ? JSON.stringify(sub.filters, null, 2) : '',
    transform: sub?.transform ?? '',
    sink: sub?.sink ?? '',
  };
}

/** The API's value of each field of the form, or throws { field, message }. */
function valuesOf(form) {
  const v = {};
  for (const f of FIELDS) v[f] = form[f].trim() === '' ? null : form[f].trim();
  if (v.types !== null) v.types = v.types.split(',').map((t) => t.trim()).filter(Boolean);
  if (v.filters !== null) {
    try {
      v.filters = JSON.parse(v.filters);
    } catch (err) {
      throw { field: 'filters', message: `not JSON: ${err.message}` };
    }
  }
  return v;
}

/** The form's field a problem's `errors[].field` is about (`filters[0].sql` -> filters), or null. */
function fieldOf(path) {
  const head = String(path ?? '').split(/[.[]/)[0];
  return FIELDS.includes(head) ? head : null;
}

function SubscriptionForm({ session, sub, onSaved }) {
  const [form, setForm] = useState(formOf(sub));
  const [errors, setErrors] = useState({});
  const [general, setGeneral] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => setForm(formOf(sub)), [sub?.updated_at]);
  const set = (f) => (e) => setForm({ ...form, [f]: e.currentTarget.value });
  const submit = async (e) => {
    e.preventDefault();
    setErrors({});
    setGeneral(null);
    let values;
    try {
      values = valuesOf(form);
    } catch (err) {
      setErrors({ [err.field]: [err.message] });
      return;
    }
    let body;
    if (sub) {
      // only what changed; an emptied optional field is removed (null), filters become []
      const before = valuesOf(formOf(sub));
      body = {};
      for (const f of FIELDS) if (JSON.stringify(values[f]) !== JSON.stringify(before[f])) body[f] = f === 'filters' ? values[f] ?? [] : values[f];
      if (!Object.keys(body).length) return setGeneral('Nothing changed.');
    } else {
      body = Object.fromEntries(Object.entries(values).filter(([, x]) => x !== null));
    }
    setBusy(true);
    try {
      const saved = await call(session.key, sub ? 'PATCH' : 'POST', sub ? `/v1/subscriptions/${enc(sub.id)}` : '/v1/subscriptions', body);
      if (!sub) setForm(formOf(null));
      onSaved(saved);
    } catch (err) {
      if (!(err instanceof ApiError)) return setGeneral(err.message);
      const byField = {};
      const rest = [];
      for (const fe of err.fieldErrors) {
        const f = fieldOf(fe.field);
        if (f) (byField[f] ??= []).push(`${fe.field}: ${fe.message}`);
        else rest.push(`${fe.field}: ${fe.message}`);
      }
      setErrors(byField);
      if (rest.length || !Object.keys(byField).length) setGeneral([err.message, ...rest].join(' — '));
    } finally {
      setBusy(false);
    }
  };
  const field = (f, label, input, hint) => html`<div class="field">
    <label for=${`sub-${f}`}>${label}</label>
    ${input}
    ${hint ? html`<p class="hint">${hint}</p>` : null}
    ${errors[f] ? html`<div id=${`sub-${f}-error`}>${errors[f].map((m) => html`<p class="field-error" data-field=${f} role="alert">${m}</p>`)}</div>` : null}
  </div>`;
  const attrs = (f) => ({
    id: `sub-${f}`,
    value: form[f],
    onInput: set(f),
    spellcheck: false,
    'aria-invalid': errors[f] ? 'true' : 'false',
    ...(errors[f] ? { 'aria-describedby': `sub-${f}-error` } : {}),
  });
  return html`<form class="subscription-form" onSubmit=${submit} method="post">
    <h2>${sub ? 'Edit subscription' : 'New subscription'}</h2>
    ${field('name', 'Name', html`<input ...${attrs('name')} />`)}
    ${field('types', 'Event types', html`<input ...${attrs('types')} placeholder="payment.sent, payment.refunded" />`, 'Comma-separated; empty means every type.')}
    ${field('source', 'Source', html`<input ...${attrs('source')} />`)}
    ${field('filters', 'Filters (JSON)', html`<textarea ...${attrs('filters')} rows="4" placeholder='[{"sql": "data.amount > 100"}]'></textarea>`, 'A list of filters: exact, prefix, suffix, all, any, not, sql (CESQL).')}
    ${field('transform', 'Transform (JSONata)', html`<textarea ...${attrs('transform')} rows="2" placeholder='{ "amount": amount }'></textarea>`)}
    ${field('sink', 'Webhook URL', html`<input ...${attrs('sink')} type="url" placeholder="https://…" />`, 'Empty for a pull-only subscription.')}
    <button type="submit" disabled=${busy}>${sub ? 'Save' : 'Create subscription'}</button>
    ${general ? html`<p class="error" role="alert">${general}</p>` : null}
  </form>`;
}

function StatsCharts({ session, subs }) {
  const stats = useApi(session.key, '/v1/stats', 5000);
  const [lags, setLags] = useState({});
  const withSink = (subs ?? []).filter((s) => s.sink).slice(0, 20);
  useEffect(() => {
    let gone = false;
    (async () => {
      const out = {};
      for (const s of withSink) {
        try {
          out[s.id] = (await call(session.key, 'GET', `/v1/subscriptions/${enc(s.id)}/endpoint`)).cursor;
        } catch {
          out[s.id] = null;
        }
      }
      if (!gone) setLags(out);
    })();
    return () => (gone = true);
  }, [stats.data, subs]);
  if (stats.error) return html`<${Problem} error=${stats.error} />`;
  const rows = stats.data?.data ?? [];
  const label = (r) => r.name || r.id;
  const lagOf = (r) => {
    if (!(r.id in lags)) return null;
    // from the first event not delivered yet (at least the oldest the buffer holds) to the newest
    const newest = cursorMs(r.newest_cursor);
    if (newest === null) return 0;
    const from = Math.max(cursorMs(lags[r.id]) ?? 0, cursorMs(r.oldest_cursor) ?? 0);
    return cursorMs(lags[r.id]) >= newest ? 0 : Math.max(0, (newest - from) / 1000);
  };
  return html`<div class="charts">
    <${BarChart} title="Events in each buffer" items=${rows.map((r) => ({ label: label(r), value: r.buffered }))} />
    <${BarChart}
      title="Webhook consumer lag (newest event against the endpoint's cursor)"
      unit=" s"
      items=${rows.map((r) => ({ label: label(r), value: lagOf(r), note: r.id in lags ? '—' : 'pull only' }))}
    />
  </div>`;
}

function SubscriptionsPage({ session }) {
  const list = useApi(session.key, '/v1/subscriptions');
  const subs = list.data?.data;
  return html`<section>
    <h1>Subscriptions</h1>
    <${Problem} error=${list.error} />
    ${subs && !subs.length ? html`<p class="muted" id="no-subscriptions">No subscriptions yet.</p>` : null}
    ${subs?.length
      ? html`<div class="scroll"><table class="subscriptions">
          <thead><tr><th>Name</th><th>Types</th><th>Delivery</th><th>Id</th></tr></thead>
          <tbody>${subs.map(
            (s) => html`<tr key=${s.id} data-id=${s.id}>
              <td><a href=${`#/subscriptions/${enc(s.id)}`}>${s.name || '(unnamed)'}</a></td>
              <td>${(s.types ?? ['every type']).join(', ')}</td>
              <td>${s.sink ? 'webhook' : 'pull'}</td>
              <td><code>${s.id}</code></td>
            </tr>`,
          )}</tbody>
        </table></div>`
      : null}
    <${StatsCharts} session=${session} subs=${subs} />
    ${session.role === 'tenant'
      ? html`<${SubscriptionForm} session=${session} onSaved=${(s) => (location.hash = `#/subscriptions/${enc(s.id)}`)} />`
      : html`<p class="muted">A consumer key reads; a tenant key creates and changes subscriptions.</p>`}
  </section>`;
}

function LiveTail({ session, id }) {
  const [events, setEvents] = useState([]);
  const [status, setStatus] = useState('stopped');
  const [error, setError] = useState(null);
  const ctl = useRef(null);
  const stop = () => {
    ctl.current?.abort();
    ctl.current = null;
    setStatus('stopped');
  };
  const start = async (fromOldest) => {
    stop();
    setError(null);
    setEvents([]);
    const ac = new AbortController();
    ctl.current = ac;
    setStatus('connecting');
    let last;
    try {
      if (!fromOldest) {
        // from now: after the newest cursor the buffer holds (none: the stream is empty, start at its beginning)
        const stats = await call(session.key, 'GET', '/v1/stats');
        last = stats.data.find((s) => s.id === id)?.newest_cursor ?? undefined;
      }
      for (let retry = 0; !ac.signal.aborted; retry++) {
        try {
          await readSse(session.key, `/v1/subscriptions/${enc(id)}/events`, {
            signal: ac.signal,
            lastEventId: last,
            onOpen: () => setStatus('live'),
            onEvent: (ev) => {
              if (ev.id) last = ev.id;
              if (ev.event === 'pioneer.subscription.deleted' || ev.event === 'pioneer.cursor.expired') {
                setError(new Error(ev.event === 'pioneer.subscription.deleted' ? 'The subscription was deleted.' : 'The cursor expired.'));
                ac.abort();
                return;
              }
              let parsed = null;
              try {
                parsed = JSON.parse(ev.data);
              } catch {
                parsed = null;
              }
              setEvents((es) => [{ cursor: ev.id, type: ev.event, event: parsed, raw: ev.data }, ...es].slice(0, TAIL_MAX));
            },
          });
        } catch (err) {
          if (ac.signal.aborted) break;
          if (err instanceof ApiError && err.status < 500 && err.status !== 429) throw err;
        }
        if (ac.signal.aborted) break;
        setStatus('reconnecting');
        await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** Math.min(retry, 4))));
      }
    } catch (err) {
      if (!ac.signal.aborted) setError(err);
    }
    // a tail that another start replaced leaves the status to that one
    if (ctl.current === ac) {
      ctl.current = null;
      setStatus('stopped');
    }
  };
  useEffect(() => () => ctl.current?.abort(), [id]);
  const running = status !== 'stopped';
  return html`<section class="tail">
    <h2>Live tail</h2>
    <div class="row">
      ${running
        ? html`<button type="button" id="tail-stop" onClick=${stop}>Stop</button>`
        : html`<button type="button" id="tail-start" onClick=${() => start(false)}>Tail from now</button>
            <button type="button" class="secondary" id="tail-oldest" onClick=${() => start(true)}>From the oldest buffered event</button>`}
      <span class="status" id="tail-status" data-status=${status}>${status}</span>
    </div>
    <${Problem} error=${error} />
    <ol class="events" id="tail-events">
      ${events.map(
        (e) => html`<li key=${e.cursor} data-cursor=${e.cursor}>
          <div class="event-head"><code>${e.cursor}</code> <strong>${e.type}</strong> <span class="muted">${e.event?.time ?? ''}</span></div>
          <pre>${e.event ? JSON.stringify(e.event.data ?? e.event.data_base64 ?? null, null, 2) : e.raw}</pre>
        </li>`,
      )}
    </ol>
  </section>`;
}

function Endpoint({ session, sub }) {
  const base = `/v1/subscriptions/${enc(sub.id)}`;
  const ep = useApi(session.key, `${base}/endpoint`, 3000);
  const attempts = useApi(session.key, `${base}/deliveries?limit=20`, 3000);
  const [deadLimit, setDeadLimit] = useState(50);
  const dead = useApi(session.key, `${base}/dead-letters?limit=${deadLimit}`, 3000);
  const [secret, setSecret] = useState(null);
  const [note, setNote] = useState(null);
  const [error, setError] = useState(null);
  const tenant = session.role === 'tenant';
  const act = (fn) => async () => {
    setError(null);
    setNote(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    }
    ep.reload();
    attempts.reload();
    dead.reload();
  };
  const e = ep.data;
  return html`<section class="endpoint">
    <h2>Webhook endpoint</h2>
    <${Problem} error=${ep.error} />
    ${e
      ? html`<dl class="facts">
          <dt>URL</dt><dd><code>${e.url}</code></dd>
          <dt>State</dt><dd id="endpoint-state" class=${`state-${e.state}`}>${e.state}${e.disabled_reason ? ` — ${e.disabled_reason}` : ''}</dd>
          <dt>Delivered up to</dt><dd><code>${e.cursor}</code></dd>
          <dt>Pending</dt><dd>${e.pending ? `${e.pending.head}, ${e.pending.attempts} attempts, next ${time(e.pending.next_attempt_at)}` : 'nothing'}</dd>
          ${e.previous_secret_expires_at ? html`<dt>Previous secret signs until</dt><dd>${time(e.previous_secret_expires_at)}</dd>` : null}
        </dl>`
      : null}
    ${tenant && e
      ? html`<div class="row">
          ${e.state === 'enabled'
            ? html`<button type="button" class="secondary" id="endpoint-disable" onClick=${act(() => call(session.key, 'POST', `${base}/endpoint/disable`))}>Disable</button>`
            : html`<button type="button" id="endpoint-enable" onClick=${act(() => call(session.key, 'POST', `${base}/endpoint/enable`))}>Enable</button>`}
          <button type="button" class="secondary" onClick=${act(async () => setSecret((await call(session.key, 'GET', `${base}/endpoint/secret`)).secret))}>Show secret</button>
          <button type="button" class="secondary" id="rotate-secret" onClick=${act(async () => {
            const r = await call(session.key, 'POST', `${base}/endpoint/rotate-secret`);
            setSecret(r.secret);
            setNote('Rotated: the previous secret keeps signing for the overlap.');
          })}>Rotate secret</button>
        </div>`
      : null}
    ${secret ? html`<p>Signing secret: <code id="endpoint-secret">${secret}</code></p>` : null}
    ${note ? html`<p class="note" role="status">${note}</p>` : null}
    <${Problem} error=${error} />

    <h3>Recent deliveries</h3>
    <${Problem} error=${attempts.error} />
    ${attempts.data?.data?.length
      ? html`<div class="scroll"><table class="deliveries">
          <thead><tr><th>Time</th><th>Cursor</th><th>Attempt</th><th>Response</th><th>Outcome</th><th>Latency</th></tr></thead>
          <tbody>${attempts.data.data.map(
            (a) => html`<tr key=${a.id}>
              <td>${time(a.time)}</td><td><code>${a.cursor}</code></td><td>${a.attempt} (${a.source})</td>
              <td>${a.status ?? 'no response'}${a.error ? html`<br /><span class="muted">${a.error}</span>` : null}</td>
              <td class=${`outcome-${a.outcome}`}>${a.outcome}</td><td>${Math.round(a.latency_ms)} ms</td>
            </tr>`,
          )}</tbody>
        </table></div>`
      : html`<p class="muted">No attempts yet.</p>`}

    <h3>Dead letters</h3>
    <${Problem} error=${dead.error} />
    ${dead.data?.data?.length
      ? html`<ol class="dead-letters" id="dead-letters">${dead.data.data.map(
          (d) => html`<li key=${d.id}>
            <div class="event-head"><code>${d.cursor}</code> <strong>${d.type}</strong> <span class="muted">${d.attempts} attempts, ${time(d.dead_at)}</span></div>
            <p class="reason">${d.reason}</p>
            <pre>${JSON.stringify(d.event?.data ?? null, null, 2)}</pre>
          </li>`,
        )}</ol>`
      : html`<p class="muted" id="no-dead-letters">No dead letters.</p>`}
    ${dead.data?.has_more
      ? deadLimit < DEAD_LETTERS_MAX
        ? html`<button type="button" class="secondary" id="more-dead-letters" onClick=${() => setDeadLimit(Math.min(DEAD_LETTERS_MAX, deadLimit * 4))}>Show more</button>`
        : html`<p class="muted">The first ${DEAD_LETTERS_MAX} are shown; the API pages through the rest (<code>after</code>).</p>`
      : null}
    ${tenant && dead.data?.data?.length
      ? html`<button type="button" id="replay-dead-letters" onClick=${act(async () => {
          const r = await call(session.key, 'POST', `${base}/dead-letters/replay`);
          setNote(`Queued ${r.queued} dead letters for delivery again; the endpoint is ${r.endpoint_state}.`);
        })}>Replay dead letters</button>`
      : null}
  </section>`;
}

function SubscriptionPage({ session, id }) {
  const sub = useApi(session.key, `/v1/subscriptions/${enc(id)}`);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  if (sub.error?.status === 404) return html`<section><h1>Not found</h1><p id="not-found">No subscription ${id} for this key.</p><a href="#/subscriptions">All subscriptions</a></section>`;
  const s = sub.data;
  const remove = async () => {
    try {
      await call(session.key, 'DELETE', `/v1/subscriptions/${enc(id)}`);
      location.hash = '#/subscriptions';
    } catch (err) {
      setError(err);
    }
  };
  return html`<section>
    <p><a href="#/subscriptions">← All subscriptions</a></p>
    <h1>${s ? s.name || s.id : id}</h1>
    <${Problem} error=${sub.error ?? error} />
    ${s
      ? html`<dl class="facts">
          <dt>Id</dt><dd><code>${s.id}</code></dd>
          <dt>Types</dt><dd>${(s.types ?? ['every type']).join(', ')}</dd>
          ${s.source ? html`<dt>Source</dt><dd>${s.source}</dd>` : null}
          <dt>Filters</dt><dd><pre>${JSON.stringify(s.filters)}</pre></dd>
          ${s.transform ? html`<dt>Transform</dt><dd><pre>${s.transform}</pre></dd>` : null}
          <dt>Updated</dt><dd>${time(s.updated_at)}</dd>
        </dl>`
      : null}
    ${s ? html`<${LiveTail} session=${session} id=${s.id} />` : null}
    ${s?.sink ? html`<${Endpoint} session=${session} sub=${s} />` : null}
    ${s && session.role === 'tenant'
      ? html`<${SubscriptionForm} session=${session} sub=${s} onSaved=${() => sub.reload()} />
          <section class="danger">
            ${confirming
              ? html`<p>Delete this subscription, its buffered events and its endpoint's dead letters?</p>
                  <button type="button" class="danger" id="confirm-delete" onClick=${remove}>Delete for good</button>
                  <button type="button" class="secondary" onClick=${() => setConfirming(false)}>Keep it</button>`
              : html`<button type="button" class="danger" id="delete-subscription" onClick=${() => setConfirming(true)}>Delete subscription</button>`}
          </section>`
      : null}
  </section>`;
}

// ─── insights ──────────────────────────────────────────────────────────────────────────────────────────────────
function InsightsPage({ session }) {
  const [q, setQ] = useState({ campaign: '', metric: 'clicks', range: 'day' });
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    // whole hours (older figures are kept per hour): up to the end of this hour, back 24 hours or 7 days
    const to = new Date();
    to.setUTCMinutes(0, 0, 0);
    to.setTime(to.getTime() + 3_600_000);
    const from = new Date(to.getTime() - (q.range === 'day' ? 24 : 7 * 24) * 3_600_000);
    const params = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), granularity: 'hour' });
    try {
      setResult(await call(session.key, 'GET', `/v1/insights/ads/${enc(q.campaign.trim())}/${enc(q.metric)}?${params}`));
    } catch (err) {
      setError(err);
    }
  };
  const set = (f) => (e) => setQ({ ...q, [f]: e.currentTarget.value });
  return html`<section>
    <h1>Campaign insights</h1>
    <form class="row" onSubmit=${submit} method="post">
      <input id="campaign" aria-label="Campaign id" placeholder="campaign id" value=${q.campaign} onInput=${set('campaign')} required />
      <select id="metric" aria-label="Metric" value=${q.metric} onChange=${set('metric')}>
        <option value="impressions">impressions</option><option value="clicks">clicks</option><option value="clickToBasket">click to basket</option>
      </select>
      <select id="range" aria-label="Range" value=${q.range} onChange=${set('range')}>
        <option value="day">last 24 hours</option><option value="week">last 7 days</option>
      </select>
      <button type="submit">Show</button>
    </form>
    <${Problem} error=${error} />
    ${result
      ? html`<p id="insights-figures"><strong>${result.value}</strong> distinct customers${result.estimate ? ' (estimate)' : ''}, <strong>${result.events}</strong> events</p>
          <${ColumnChart} title=${`${result.metric} per hour, distinct customers`} points=${result.series.map((p) => ({ label: new Date(p.start).toISOString().slice(5, 16).replace('T', ' '), value: p.value }))} />`
      : null}
  </section>`;
}

// ─── admin ─────────────────────────────────────────────────────────────────────────────────────────────────────
function AdminPage({ session }) {
  const tenants = useApi(session.key, '/v1/tenants');
  const [name, setName] = useState('');
  const [issued, setIssued] = useState(null);
  const [roles, setRoles] = useState({});
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const t = await call(session.key, 'POST', '/v1/tenants', { name });
      setIssued({ tenant: t.name, role: t.key.role, key: t.key.key });
      setName('');
      tenants.reload();
    } catch (err) {
      setError(err);
    }
  };
  const issue = (t) => async () => {
    setError(null);
    try {
      const k = await call(session.key, 'POST', `/v1/tenants/${enc(t.id)}/keys`, { role: roles[t.id] ?? 'tenant' });
      setIssued({ tenant: t.name, role: k.role, key: k.key });
    } catch (err) {
      setError(err);
    }
  };
  return html`<section>
    <h1>Tenants</h1>
    <${Problem} error=${tenants.error ?? error} />
    ${issued
      ? html`<div class="issued" role="status">
          <p>New ${issued.role} key for ${issued.tenant}, shown only now:</p>
          <code id="issued-key">${issued.key}</code>
        </div>`
      : null}
    <div class="scroll"><table class="tenants">
      <thead><tr><th>Name</th><th>Id</th><th>Created</th><th>Issue a key</th></tr></thead>
      <tbody>${(tenants.data?.data ?? []).map(
        (t) => html`<tr key=${t.id} data-id=${t.id}>
          <td>${t.name}</td><td><code>${t.id}</code></td><td>${time(t.created_at)}</td>
          <td class="row">
            <select aria-label=${`Role of the new key for ${t.name}`} value=${roles[t.id] ?? 'tenant'} onChange=${(e) => setRoles({ ...roles, [t.id]: e.currentTarget.value })}>
              <option value="tenant">tenant</option><option value="consumer">consumer</option>
            </select>
            <button type="button" class="issue-key" onClick=${issue(t)}>Issue</button>
          </td>
        </tr>`,
      )}</tbody>
    </table></div>
    <form class="row" onSubmit=${create} method="post">
      <input id="tenant-name" aria-label="New tenant's name" placeholder="new tenant's name" value=${name} onInput=${(e) => setName(e.currentTarget.value)} required />
      <button type="submit">Create tenant</button>
    </form>
  </section>`;
}

// ─── shell ─────────────────────────────────────────────────────────────────────────────────────────────────────
function App() {
  const [session, setSession] = useState(loadSession());
  const [notice, setNotice] = useState(null);
  const route = useRoute();
  const signOut = (why = null) => {
    clearSession();
    setSession(null);
    setNotice(why);
    location.hash = '';
  };
  useEffect(() => {
    const on = () => loadSession() && signOut('This key is no longer valid (revoked?): sign in again.');
    addEventListener('pioneer:unauthorized', on);
    return () => removeEventListener('pioneer:unauthorized', on);
  }, []);
  if (!session) return html`<${SignIn} onSignedIn=${(s) => (setNotice(null), setSession(s))} notice=${notice} />`;
  const admin = session.role === 'admin';
  let page;
  if (admin) page = html`<${AdminPage} session=${session} />`;
  else if (route[0] === 'subscriptions' && route[1]) page = html`<${SubscriptionPage} key=${route[1]} session=${session} id=${route[1]} />`;
  else if (route[0] === 'insights') page = html`<${InsightsPage} session=${session} />`;
  else page = html`<${SubscriptionsPage} session=${session} />`;
  return html`<div class="shell">
    <header>
      <strong class="brand">Pioneer</strong>
      <nav>
        ${admin
          ? html`<a href="#/tenants">Tenants</a>`
          : html`<a href="#/subscriptions">Subscriptions</a><a href="#/insights">Insights</a>`}
      </nav>
      <span class="who" id="who">${session.role}${session.tenantId ? ` · ${session.tenantId}` : ''}</span>
      <button type="button" class="secondary" id="sign-out" onClick=${() => signOut()}>Sign out</button>
    </header>
    ${page}
  </div>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the page's "Loading" line
render(html`<${App} />`, root);
