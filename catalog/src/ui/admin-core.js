// Catalog admin console: what every part of it shares. The DOM helpers, the session's access
// token with the fetch helper that sends it, money and time formats, the category list and
// the view generation. The access token lives in this module only (never in storage); the
// refresh token is an HttpOnly cookie that only /api/auth/session* sees.
// (sessionEnded comes from the entry point, admin.js, and is only called at run time.)

import { sessionEnded } from './admin.js';

export const $ = (sel, root = document) => root.querySelector(sel);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const CSRF = { 'X-Catalog-CSRF': '1' };

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child != null && child !== false) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export class HttpError extends Error {
  constructor(status, problem, headers) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.headers = headers;
  }
}

export function notice(text, kind = 'info') {
  const el = $('#notice');
  el.className = `notice ${kind}`;
  el.textContent = text || '';
}

// ---- session

export let token = null;
let refreshTimer = 0;
let refreshing = null;
/** The newest position this console wrote: reads of the query side wait for it. */
export let lastPosition = 0;

export function setSession(pair) {
  token = pair.access_token;
  clearTimeout(refreshTimer);
  const seconds = Number(pair.expires_in) || 300;
  const lead = Math.max(seconds - 30, seconds * 0.75, 5);
  refreshTimer = setTimeout(() => { refreshSession(); }, lead * 1000);
}
/** Forgets the access token (the console's dropSession also stops the event feed). */
export function clearSession() {
  token = null;
  clearTimeout(refreshTimer);
}
/** For a write answered outside send() (the bulk import). */
export function setLastPosition(position) {
  lastPosition = position;
}

/** Trades the session cookie for a fresh access token; false when there is no session. */
export function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const res = await fetch('/api/auth/session/refresh', {
          method: 'POST', headers: { ...CSRF, 'Content-Type': 'application/json', Accept: 'application/json' },
          body: '{}', credentials: 'same-origin', cache: 'no-store',
        });
        if (res.status === 200) { setSession(await res.json()); return true; }
        if (res.status === 429 || res.status === 503) {
          const wait = Number(res.headers.get('Retry-After')) || 1;
          if (token) { clearTimeout(refreshTimer); refreshTimer = setTimeout(() => { refreshSession(); }, wait * 1000); return true; }
        }
        return false;
      } catch {
        return !!token;
      } finally {
        setTimeout(() => { refreshing = null; }, 0);
      }
    })();
  }
  return refreshing;
}

const isQuery = (path) => /^\/api\/(products|search|categories)(\/|\?|$)/.test(path);

/** fetch() with the bearer token: a 401 refreshes the session and retries once. */
export async function request(path, { method = 'GET', json, body, headers = {}, signal, retried = false } = {}) {
  const all = { Accept: 'application/json', ...headers };
  if (token) all.Authorization = `Bearer ${token}`;
  if (json !== undefined) { all['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (method === 'GET' && lastPosition && isQuery(path) && !all['X-Min-Position']) all['X-Min-Position'] = String(lastPosition);
  const res = await fetch(path, { method, headers: all, body, signal, cache: 'no-store', credentials: 'same-origin' });
  if (res.status === 401 && !retried) {
    if (await refreshSession()) return request(path, { method, json, body, headers, signal, retried: true });
    sessionEnded();
  }
  // Rate limited (or a GET on a busy view): the request was not applied, so one retry after
  // the wait the server names is safe.
  const wait = Number(res.headers.get('Retry-After')) || 1;
  if (res.status === 429 && !retried && wait <= 5 && !(body instanceof ReadableStream)) {
    await sleep(wait * 1000);
    return request(path, { method, json, body, headers, signal, retried: true });
  }
  if (res.status === 503 && method === 'GET' && !retried) {
    await sleep(Math.min(Number(res.headers.get('Retry-After')) || 1, 3) * 1000);
    return request(path, { method, json, body, headers, signal, retried: true });
  }
  return res;
}
export async function problemOf(res) {
  let problem = null;
  try { problem = await res.json(); } catch { /* no body */ }
  return new HttpError(res.status, problem, res.headers);
}
export async function getJson(path, options) {
  const res = await request(path, options);
  if (!res.ok) throw await problemOf(res);
  return res.json();
}
/** A write; returns {status, body, headers}; a 4xx/5xx throws HttpError. */
export async function send(method, path, json, headers = {}, extra = {}) {
  const res = await request(path, { method, json, headers, ...extra });
  if (!res.ok) throw await problemOf(res);
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  const position = Number((body && body.position) || res.headers.get('X-Position') || 0);
  if (position > lastPosition) lastPosition = position;
  return { status: res.status, body, headers: res.headers, position };
}

// ---- formatting

const formats = new Map();
function currencyFormat(currency) {
  if (!formats.has(currency)) {
    let f = null;
    try { f = new Intl.NumberFormat(undefined, { style: 'currency', currency }); } catch { /* unknown */ }
    formats.set(currency, f);
  }
  return formats.get(currency);
}
export const digitsOf = (currency) => (currencyFormat(currency) ? currencyFormat(currency).resolvedOptions().maximumFractionDigits : 2);
export function money(cents, currency = 'USD') {
  const f = currencyFormat(currency);
  const value = cents / 10 ** digitsOf(currency);
  return f ? f.format(value) : `${value} ${currency}`;
}
export const units = (cents, currency) => (cents / 10 ** digitsOf(currency)).toFixed(digitsOf(currency));
export const time = (iso) => { const d = new Date(iso); return Number.isNaN(d.getTime()) ? String(iso || '') : d.toLocaleString(); };
export const storefrontLink = (id, position) => `/p/${encodeURIComponent(id)}${position ? `?min_position=${position}` : ''}`;
export const statusPill = (status) => h('span', { class: `pill ${status}` }, status);

let categoriesCache = null;
async function categories() {
  if (!categoriesCache) categoriesCache = getJson('/api/categories').then((r) => r.items || []).catch((e) => { categoriesCache = null; throw e; });
  return categoriesCache;
}

// ---- shared by the views

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function fillCategorySelect(select, selected) {
  try {
    const all = await categories();
    const keep = select.value || selected || '';
    const first = select.querySelector('option[value=""]');
    select.replaceChildren(...(first ? [first] : []), ...all.map((c) => h('option', { value: c.slug }, c.parent ? `${c.name} (in ${c.parent})` : c.name)));
    select.value = keep;
  } catch { /* the list stays as it is */ }
}

/** Bumped by every view change: an answer for an older view is dropped. */
export let viewGeneration = 0;
/** Starts a new view: returns its generation. */
export function nextView() {
  return ++viewGeneration;
}
