// Catalog admin console: the live event feed at /admin/events (server-sent events), the
// projections panel at /admin/projections and the analytics charts at /admin/analytics.

import { $, h, sleep, notice, token, refreshSession, request, problemOf, getJson, send, money, time, UUID } from './admin-core.js';

// ---- live events

const feed = { running: false, controller: null, lastId: null };
const MAX_EVENTS = 200;

function feedState(text, kind) {
  const el = $('#feed-state');
  el.textContent = text;
  el.className = `pill ${kind || ''}`;
}
export function stopFeed() {
  feed.running = false;
  if (feed.controller) feed.controller.abort();
  feed.controller = null;
  feedState('Not connected');
}

/** Reads a text/event-stream body: `id:`, `event:`, `data:` lines; a blank line ends an event. */
async function readSse(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { id: null, type: 'message', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (;;) {
      const nl = buffer.search(/[\r\n]/);
      if (nl < 0) break;
      if (buffer[nl] === '\r' && nl + 1 === buffer.length) break; // a \r\n may be split
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? 2 : 1));
      if (line === '') {
        if (event.data.length || event.id != null) dispatch({ id: event.id, type: event.type, data: event.data.join('\n') });
        event = { id: null, type: 'message', data: [] };
        continue;
      }
      if (line[0] === ':') continue;
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? '' : line.slice(colon + 1);
      if (text[0] === ' ') text = text.slice(1);
      if (name === 'data') event.data.push(text);
      else if (name === 'event') event.type = text;
      else if (name === 'id' && !text.includes('\0')) event.id = text;
    }
  }
}

/** A few words on what an event changed. */
function eventSummary(envelope) {
  const d = envelope.data || {};
  const parts = [];
  if (typeof d.name === 'string') parts.push(d.name);
  if (Number.isInteger(d.price_cents)) parts.push(money(d.price_cents, d.currency || 'USD'));
  if (Number.isInteger(d.delta)) parts.push(`stock ${d.delta > 0 ? '+' : ''}${d.delta}${d.reason ? ` (${d.reason})` : ''}`);
  if (Number.isInteger(d.quantity)) parts.push(`${d.quantity} sold`);
  if (typeof d.slug === 'string' && !d.name) parts.push(d.slug);
  return parts.join(' · ');
}
function showEvent(envelope) {
  const tbody = $('#events-table tbody');
  const id = envelope.aggregate_id;
  const product = id && UUID.test(id) && /^Product|^Price|^Stock|^Sale|^Image/.test(envelope.event_type);
  const tr = h('tr', { class: 'fresh', 'data-position': envelope.position },
    h('td', { class: 'num' }, envelope.position),
    h('td', null, envelope.event_type),
    h('td', null, product ? h('a', { href: `/admin/products/${id}`, class: 'mono', title: id }, `…${id.slice(-12)}`) : h('span', { class: 'mono' }, id || '')),
    h('td', { class: 'num' }, envelope.aggregate_version ?? ''),
    h('td', { class: 'small' }, eventSummary(envelope)),
    h('td', null, h('time', { datetime: envelope.occurred_at }, time(envelope.occurred_at))));
  tbody.prepend(tr);
  while (tbody.rows.length > MAX_EVENTS) tbody.deleteRow(tbody.rows.length - 1);
  setTimeout(() => tr.classList.remove('fresh'), 1500);
}

export async function startFeed() {
  if (feed.running) return;
  feed.running = true;
  let backoff = 1000;
  if (feed.lastId == null) {
    try {
      // The head of the log: the projections panel reports it (GET /api/events pages from the start).
      const status = await getJson('/api/admin/projections');
      feed.lastId = Math.max(0, Number(status.head) - 10);
    } catch {
      // Not an admin: the position the query views had reached (every query answers it).
      const res = await request('/api/categories').catch(() => null);
      feed.lastId = Math.max(0, Number(res && res.headers.get('X-Position')) - 10 || 0);
    }
  }
  while (feed.running && token) {
    const controller = new AbortController();
    feed.controller = controller;
    feedState('Connecting…');
    let ended = 'closed';
    try {
      const headers = { Accept: 'text/event-stream' };
      if (feed.connected) headers['Last-Event-ID'] = String(feed.lastId);
      const res = await request(`/api/events/stream?after=${feed.lastId}`, { headers, signal: controller.signal });
      const streamToken = token;
      if (!res.ok) {
        const problem = await problemOf(res);
        ended = `HTTP ${res.status}: ${problem.message}`;
        if (res.status === 429) backoff = 5000;
      } else {
        feed.connected = true;
        feedState(`Live · after position ${feed.lastId}`, 'ok');
        backoff = 1000;
        await readSse(res.body, (message) => {
          if (message.type === 'expired' || message.type === 'dropped' || message.type === 'error') {
            try { const info = JSON.parse(message.data); if (Number.isFinite(info.resume_after)) feed.lastId = info.resume_after; } catch { /* keep lastId */ }
            ended = message.type;
            // The stream's token expired: a fresh one, unless the timer renewed it already.
            if (message.type === 'expired' && token === streamToken) refreshSession();
            return;
          }
          if (message.id != null && /^\d+$/.test(message.id)) feed.lastId = Number(message.id);
          try { showEvent(JSON.parse(message.data)); } catch { /* not an envelope */ }
          feedState(`Live · position ${feed.lastId}`, 'ok');
        });
      }
    } catch (error) {
      if (controller.signal.aborted || !feed.running) break;
      ended = 'connection lost';
    }
    if (!feed.running) break;
    feedState(`Reconnecting (${ended})…`, 'warn');
    await sleep(ended === 'expired' ? 200 : backoff);
    backoff = Math.min(backoff * 2, 15000);
  }
}

// ---- projections

let pollTimer = 0;
export function stopPolling() { clearTimeout(pollTimer); pollTimer = 0; }
export function startPolling() { stopPolling(); pollProjections(); }
document.addEventListener('visibilitychange', () => {
  if (!$('#sec-projections').hidden && token) { if (document.hidden) stopPolling(); else startPolling(); }
});

async function projectionAction(view, action) {
  if (action === 'rebuild' && !confirm(`Rebuild the ${view} view from the event store? It keeps serving while the next generation is built.`)) return;
  try {
    await send('POST', `/api/admin/projections/${encodeURIComponent(view)}/${action}`);
    notice(`${action[0].toUpperCase()}${action.slice(1)} of ${view} requested.`, 'ok');
  } catch (error) {
    notice(`Cannot ${action} ${view}: ${error.message}`, 'bad');
  }
  startPolling();
}

async function pollProjections() {
  if ($('#sec-projections').hidden || !token) return;
  const tbody = $('#projections-table tbody');
  try {
    const status = await getJson('/api/admin/projections');
    $('#projections-head').textContent = `Event store head: ${status.head} · updated ${new Date().toLocaleTimeString()}`;
    tbody.replaceChildren(...status.items.map((p) => {
      const rebuild = p.rebuild
        ? `rebuilding generation ${p.rebuild.generation}: ${p.rebuild.position} / ${p.rebuild.head}${p.rebuild.eta_seconds ? ` (about ${Math.ceil(p.rebuild.eta_seconds)} s left)` : ''}`
        : '';
      return h('tr', null,
        h('th', { scope: 'row' }, p.name),
        h('td', null, h('span', { class: `pill ${p.state}` }, p.state)),
        h('td', { class: 'num' }, p.generation),
        h('td', { class: 'num' }, p.position),
        h('td', { class: 'num' }, p.lag_events),
        h('td', { class: 'num' }, Number(p.lag_seconds || 0).toFixed(1)),
        h('td', { class: `num ${p.parked ? 'bad' : ''}` }, p.parked),
        h('td', { class: 'small' }, [rebuild, p.last_error ? h('span', { class: 'bad' }, p.last_error) : null].filter(Boolean)),
        h('td', null, h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary small', onclick: () => projectionAction(p.name, 'rebuild'), disabled: !!p.rebuild, 'aria-label': `Rebuild ${p.name}` }, 'Rebuild'),
          p.state === 'paused'
            ? h('button', { type: 'button', class: 'secondary small', onclick: () => projectionAction(p.name, 'resume'), 'aria-label': `Resume ${p.name}` }, 'Resume')
            : h('button', { type: 'button', class: 'secondary small', onclick: () => projectionAction(p.name, 'pause'), 'aria-label': `Pause ${p.name}` }, 'Pause'))));
    }));
  } catch (error) {
    $('#projections-head').textContent = `Cannot read the projections: ${error.message}`;
  }
  stopPolling();
  if (!$('#sec-projections').hidden && !document.hidden) pollTimer = setTimeout(pollProjections, 2000);
}

// ---- analytics

const names = new Map();
async function productName(id) {
  if (!names.has(id)) names.set(id, getJson(`/api/products/${id}`).then((p) => p.name).catch(() => id.slice(0, 8)));
  return names.get(id);
}
function bars(container, entries, unit) {
  const max = Math.max(1, ...entries.map((e) => e.value));
  if (!entries.length) return container.replaceChildren(h('p', { class: 'muted' }, 'Nothing in this window yet.'));
  container.replaceChildren(h('ol', { class: 'barlist' }, entries.map((e) => {
    const bar = h('span', { class: 'bar' });
    bar.style.width = `${Math.max(2, (e.value / max) * 100)}%`;
    return h('li', null,
      h('span', { class: 'bar-label', title: e.label }, e.href ? h('a', { href: e.href }, e.label) : e.label),
      h('span', { class: 'bar-track', 'aria-hidden': 'true' }, bar),
      h('span', { class: 'bar-value' }, `${e.value}${unit ? ` ${e.value === 1 ? unit.replace(/s$/, '') : unit}` : ''}`));
  })));
}
export async function analyticsView() {
  const form = $('#analytics-form');
  const loading = (sel) => $(`${sel} .bars`).replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  ['#chart-views', '#chart-sales', '#chart-searches', '#chart-zero'].forEach(loading);
  const fail = (sel, error) => $(`${sel} .bars`).replaceChildren(h('p', { class: 'error' }, `Unavailable: ${error.message}`));
  const trending = getJson(`/api/analytics/trending?window=${encodeURIComponent(form.trending.value)}&limit=10`).then(async (t) => {
    const rows = async (list, key) => Promise.all(list.map(async (p) => ({ label: await productName(p.product_id), value: p[key], href: `/admin/products/${p.product_id}` })));
    bars($('#chart-views .bars'), await rows(t.by_views || [], 'views'), 'views');
    bars($('#chart-sales .bars'), await rows(t.by_sales || [], 'units_sold'), 'sold');
  }).catch((e) => { fail('#chart-views', e); fail('#chart-sales', e); });
  const searches = getJson(`/api/analytics/searches?window=${encodeURIComponent(form.searches.value)}&limit=10`).then((s) => {
    bars($('#chart-searches .bars'), (s.top || []).map((x) => ({ label: x.query, value: x.count, href: `/search?${new URLSearchParams({ q: x.query })}` })), '');
    bars($('#chart-zero .bars'), (s.zero_results || []).map((x) => ({ label: x.query, value: x.count })), '');
  }).catch((e) => { fail('#chart-searches', e); fail('#chart-zero', e); });
  await Promise.all([trending, searches]);
}
$('#analytics-form').addEventListener('change', analyticsView);
