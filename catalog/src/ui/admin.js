// Catalog admin console. Routes: /admin (products), /admin/products/{id|new}, /admin/import,
// /admin/events, /admin/projections, /admin/analytics.
// The access token lives in this module only (never in storage); the refresh token is an
// HttpOnly cookie that only /api/auth/session* sees. API texts go in the page as text nodes.

const $ = (sel, root = document) => root.querySelector(sel);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const CSRF = { 'X-Catalog-CSRF': '1' };

function h(tag, attrs, ...children) {
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

class HttpError extends Error {
  constructor(status, problem, headers) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.headers = headers;
  }
}

function notice(text, kind = 'info') {
  const el = $('#notice');
  el.className = `notice ${kind}`;
  el.textContent = text || '';
}

// ---- session

let token = null;
let me = null;
let refreshTimer = 0;
let refreshing = null;
/** The newest position this console wrote: reads of the query side wait for it. */
let lastPosition = 0;

function setSession(pair) {
  token = pair.access_token;
  clearTimeout(refreshTimer);
  const seconds = Number(pair.expires_in) || 300;
  const lead = Math.max(seconds - 30, seconds * 0.75, 5);
  refreshTimer = setTimeout(() => { refreshSession(); }, lead * 1000);
}
function dropSession() {
  token = null;
  me = null;
  clearTimeout(refreshTimer);
  stopFeed();
}

/** Trades the session cookie for a fresh access token; false when there is no session. */
function refreshSession() {
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
async function request(path, { method = 'GET', json, body, headers = {}, signal, retried = false } = {}) {
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
async function problemOf(res) {
  let problem = null;
  try { problem = await res.json(); } catch { /* no body */ }
  return new HttpError(res.status, problem, res.headers);
}
async function getJson(path, options) {
  const res = await request(path, options);
  if (!res.ok) throw await problemOf(res);
  return res.json();
}
/** A write; returns {status, body, headers}; a 4xx/5xx throws HttpError. */
async function send(method, path, json, headers = {}, extra = {}) {
  const res = await request(path, { method, json, headers, ...extra });
  if (!res.ok) throw await problemOf(res);
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  const position = Number((body && body.position) || res.headers.get('X-Position') || 0);
  if (position > lastPosition) lastPosition = position;
  return { status: res.status, body, headers: res.headers, position };
}

function sessionEnded() {
  if (!token && !me) return;
  dropSession();
  showLogin('Your session has ended. Please sign in again.');
}

async function startConsole() {
  try {
    me = await getJson('/api/auth/me');
  } catch (error) {
    if (error.status === 401) return showLogin();
    me = null;
  }
  if (me && me.role && me.role !== 'admin') notice(`Signed in as ${me.email} (${me.role}): most of this console needs an admin.`, 'warn');
  $('#who-name').textContent = me ? `${me.email}` : '';
  $('#who').hidden = false;
  $('#tabs').hidden = false;
  $('#sec-login').hidden = true;
  $('#sec-boot').hidden = true;
  route();
}

function showLogin(message = '') {
  for (const s of document.querySelectorAll('main > section')) s.hidden = true;
  $('#sec-login').hidden = false;
  $('#tabs').hidden = true;
  $('#who').hidden = true;
  $('#login-error').textContent = message;
  document.title = 'Sign in — Catalog admin';
  stopPolling();
  setTimeout(() => $('#login-email').focus(), 0);
}

$('#login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const email = form.email.value.trim();
  const password = form.password.value;
  const error = $('#login-error');
  if (!email || !password) { error.textContent = 'Enter your email and password.'; return; }
  error.textContent = '';
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    const res = await fetch('/api/auth/session', {
      method: 'POST', headers: { ...CSRF, 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ email, password }), credentials: 'same-origin', cache: 'no-store',
    });
    if (res.status === 200) {
      setSession(await res.json());
      form.password.value = '';
      notice('');
      await startConsole();
      return;
    }
    const problem = await res.json().catch(() => ({}));
    if (res.status === 401) error.textContent = 'Wrong email or password.';
    else if (res.status === 429 || res.status === 503) error.textContent = `Too many attempts; try again in ${res.headers.get('Retry-After') || 'a few'} seconds.`;
    else error.textContent = problem.detail || `Sign-in failed (HTTP ${res.status}).`;
  } catch {
    error.textContent = 'The catalog cannot be reached.';
  } finally {
    button.disabled = false;
  }
});

$('#logout').addEventListener('click', async () => {
  try {
    await fetch('/api/auth/session', { method: 'DELETE', headers: { ...CSRF }, credentials: 'same-origin' });
  } catch { /* the cookie expires on its own */ }
  dropSession();
  history.pushState(null, '', '/admin');
  showLogin('You are signed out.');
});

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
const digitsOf = (currency) => (currencyFormat(currency) ? currencyFormat(currency).resolvedOptions().maximumFractionDigits : 2);
function money(cents, currency = 'USD') {
  const f = currencyFormat(currency);
  const value = cents / 10 ** digitsOf(currency);
  return f ? f.format(value) : `${value} ${currency}`;
}
const units = (cents, currency) => (cents / 10 ** digitsOf(currency)).toFixed(digitsOf(currency));
const time = (iso) => { const d = new Date(iso); return Number.isNaN(d.getTime()) ? String(iso || '') : d.toLocaleString(); };
const storefrontLink = (id, position) => `/p/${encodeURIComponent(id)}${position ? `?min_position=${position}` : ''}`;
const statusPill = (status) => h('span', { class: `pill ${status}` }, status);

let categoriesCache = null;
async function categories() {
  if (!categoriesCache) categoriesCache = getJson('/api/categories').then((r) => r.items || []).catch((e) => { categoriesCache = null; throw e; });
  return categoriesCache;
}

// ---- router

const SECTIONS = ['products', 'edit', 'import', 'events', 'projections', 'analytics'];
function showSection(name, title) {
  for (const s of SECTIONS) $(`#sec-${s}`).hidden = s !== name;
  const tab = name === 'edit' ? 'products' : name;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.title = `${title} — Catalog admin`;
  if (name !== 'projections') stopPolling();
}

function route(focus = false) {
  if (!token) return;
  const path = location.pathname.replace(/\/+$/, '') || '/admin';
  let m;
  if (path === '/admin' || path === '/admin/products') productsView();
  else if ((m = path.match(/^\/admin\/products\/([^/]+)$/))) editView(decodeURIComponent(m[1]));
  else if (path === '/admin/import') { viewGeneration++; showSection('import', 'Import'); }
  else if (path === '/admin/events') { viewGeneration++; showSection('events', 'Events'); startFeed(); }
  else if (path === '/admin/projections') { viewGeneration++; showSection('projections', 'Projections'); startPolling(); }
  else if (path === '/admin/analytics') { viewGeneration++; showSection('analytics', 'Analytics'); analyticsView(); }
  else productsView();
  if (focus) {
    const visible = [...document.querySelectorAll('main > section')].find((s) => !s.hidden);
    const heading = visible && visible.querySelector('h1');
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  }
}
function go(href, focus = true) {
  history.pushState(null, '', href);
  notice('');
  route(focus);
  window.scrollTo(0, 0);
}
document.addEventListener('click', (event) => {
  const a = event.target.closest && event.target.closest('a[href]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !(url.pathname === '/admin' || url.pathname.startsWith('/admin/'))) return;
  event.preventDefault();
  go(url.pathname + url.search);
});
window.addEventListener('popstate', () => { notice(''); route(); });

// ---- products list

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
let listStack = [];

async function fillCategorySelect(select, selected) {
  try {
    const all = await categories();
    const keep = select.value || selected || '';
    const first = select.querySelector('option[value=""]');
    select.replaceChildren(...(first ? [first] : []), ...all.map((c) => h('option', { value: c.slug }, c.parent ? `${c.name} (in ${c.parent})` : c.name)));
    select.value = keep;
  } catch { /* the list stays as it is */ }
}

/** Bumped by every view change: an answer for an older view is dropped. */
let viewGeneration = 0;

async function productsView() {
  const generation = ++viewGeneration;
  showSection('products', 'Products');
  const params = new URLSearchParams(location.search);
  const form = $('#products-form');
  form.q.value = params.get('q') || '';
  form.sort.value = params.get('sort') || 'newest';
  await fillCategorySelect(form.category, params.get('category') || '');
  if (generation !== viewGeneration) return;
  form.category.value = params.get('category') || '';
  const tbody = $('#products-table tbody');
  const info = $('#products-info');
  const pagerEl = $('#products-pager');
  info.textContent = 'Loading…';
  const q = form.q.value.trim();
  const cursor = params.get('cursor') || '';
  const api = new URLSearchParams();
  if (form.category.value) api.set('category', form.category.value);
  api.set('limit', '25');
  if (cursor) api.set('cursor', cursor);
  let page;
  try {
    if (q) {
      api.set('q', q);
      page = await getJson(`/api/search?${api}`);
    } else {
      api.set('sort', form.sort.value);
      page = await getJson(`/api/products?${api}`);
    }
  } catch (error) {
    if (generation !== viewGeneration) return;
    info.textContent = `The products cannot be listed: ${error.message}`;
    tbody.replaceChildren();
    pagerEl.replaceChildren();
    return;
  }
  if (generation !== viewGeneration) return;
  info.textContent = q ? `${page.total} matching published products` : (page.items.length ? '' : 'No products.');
  tbody.replaceChildren(...page.items.map((p) => h('tr', null,
    h('td', null, h('a', { href: `/admin/products/${p.id}` }, p.name)),
    h('td', { class: 'mono' }, p.sku),
    h('td', null, p.category),
    h('td', { class: 'num' }, money(p.price_cents, p.currency)),
    h('td', { class: 'num' }, p.stock),
    h('td', null, statusPill(p.status)),
    h('td', { class: 'num' }, p.version))));
  const base = new URLSearchParams(params);
  base.delete('cursor');
  const links = [];
  if (cursor) {
    const prev = listStack.length ? listStack[listStack.length - 1] : '';
    const target = new URLSearchParams(base);
    if (prev) target.set('cursor', prev);
    links.push(h('a', { href: `/admin?${target}`, onclick: () => { listStack.pop(); } }, '← Previous'));
  }
  if (page.next_cursor) {
    const target = new URLSearchParams(base);
    target.set('cursor', page.next_cursor);
    links.push(h('a', { href: `/admin?${target}`, class: 'next', onclick: () => { listStack.push(cursor); } }, 'Next →'));
  }
  pagerEl.replaceChildren(...links);
}
$('#products-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const q = form.q.value.trim();
  if (UUID.test(q)) return go(`/admin/products/${q.toLowerCase()}`);
  const params = new URLSearchParams();
  if (q) params.set('q', q);
  if (form.category.value) params.set('category', form.category.value);
  if (form.sort.value !== 'newest') params.set('sort', form.sort.value);
  listStack = [];
  go(params.toString() ? `/admin?${params}` : '/admin', false);
});

// ---- product editor

let ed = null; // { id, product, version, sec }

function field(id, label, control, hint) {
  const errId = `${id}-error`;
  const describedBy = [hint ? `${id}-hint` : null, errId].filter(Boolean).join(' ');
  control.id = id;
  control.setAttribute('aria-describedby', describedBy);
  return h('div', { class: 'field', 'data-for': id },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    control,
    h('p', { class: 'ferr', id: errId }));
}
const input = (name, value, attrs = {}) => h('input', { name, value: value ?? '', ...attrs });

function attributeRow(key = '', value = '') {
  const type = typeof value === 'boolean' ? 'boolean' : typeof value === 'number' ? 'number' : 'text';
  const row = h('div', { class: 'attr-row' });
  const n = document.querySelectorAll('.attr-row').length + Math.floor(Math.random() * 1e6);
  const keyInput = h('input', { class: 'attr-key', value: key, id: `attr-k-${n}`, 'aria-label': 'Attribute name', maxlength: 64, 'aria-describedby': `attr-e-${n}` });
  const typeSelect = h('select', { class: 'attr-type', id: `attr-t-${n}`, 'aria-label': 'Attribute type' },
    h('option', { value: 'text', selected: type === 'text' }, 'Text'),
    h('option', { value: 'number', selected: type === 'number' }, 'Number'),
    h('option', { value: 'boolean', selected: type === 'boolean' }, 'Yes / no'));
  const valueSlot = h('span', { class: 'attr-value-slot' });
  const makeValue = (t, v) => {
    const common = { class: 'attr-value', id: `attr-v-${n}`, 'aria-label': 'Attribute value', 'aria-describedby': `attr-e-${n}` };
    const control = t === 'boolean'
      ? h('select', common, h('option', { value: 'true', selected: v === true || v === 'true' }, 'Yes'), h('option', { value: 'false', selected: !(v === true || v === 'true') }, 'No'))
      : h('input', { ...common, value: v === '' || v == null ? '' : String(v), type: t === 'number' ? 'text' : 'text', inputmode: t === 'number' ? 'decimal' : null });
    valueSlot.replaceChildren(control);
  };
  makeValue(type, value);
  typeSelect.addEventListener('change', () => makeValue(typeSelect.value, valueSlot.firstChild.value));
  row.append(keyInput, typeSelect, valueSlot,
    h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Remove attribute', onclick: () => row.remove() }, 'Remove'),
    h('p', { class: 'ferr', id: `attr-e-${n}` }));
  return row;
}
function readAttributes(container) {
  const out = {};
  const problems = [];
  for (const row of container.querySelectorAll('.attr-row')) {
    const key = row.querySelector('.attr-key').value.trim();
    const type = row.querySelector('.attr-type').value;
    const raw = row.querySelector('.attr-value').value;
    if (!key && !String(raw).trim()) continue;
    if (!key) { problems.push([row, 'give the attribute a name']); continue; }
    if (type === 'number') {
      const n = Number(String(raw).trim());
      if (String(raw).trim() === '' || !Number.isFinite(n)) { problems.push([row, 'must be a number']); continue; }
      out[key] = n;
    } else if (type === 'boolean') out[key] = raw === 'true';
    else out[key] = raw;
  }
  return { attributes: out, problems };
}
const canonical = (value) => JSON.stringify(value, (k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));

function clearErrors(root) {
  for (const el of root.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of root.querySelectorAll('.ferr')) el.textContent = '';
  for (const el of root.querySelectorAll('.form-errors')) el.replaceChildren();
}
function setFieldError(control, errEl, messages) {
  if (control) control.setAttribute('aria-invalid', 'true');
  if (errEl) errEl.textContent = messages.join(' ');
}
/** Puts a 422's `errors` next to the fields of `form` (dotted names: attributes.color). */
function showErrors(form, problem, names = {}) {
  const left = [];
  for (const [name, messages] of Object.entries(problem.errors || {})) {
    const list = Array.isArray(messages) ? messages : [String(messages)];
    let placed = false;
    if (name.startsWith('attributes.')) {
      const key = name.slice('attributes.'.length);
      const row = [...form.querySelectorAll('.attr-row')].find((r) => r.querySelector('.attr-key').value.trim() === key);
      if (row) { setFieldError(row.querySelector('.attr-value'), row.querySelector('.ferr'), list); placed = true; }
    }
    const control = !placed && (form.querySelector(`[name="${names[name] || name}"]`) || (name.startsWith('attributes') && form.querySelector('.attr-key')));
    if (!placed && control) {
      const errEl = document.getElementById(`${control.id}-error`) || control.closest('.attr-row')?.querySelector('.ferr');
      setFieldError(control, errEl, list);
      placed = true;
    }
    if (!placed) left.push(`${name}: ${list.join(' ')}`);
  }
  const box = form.querySelector('.form-errors');
  const summary = problem.errors ? 'Please correct the marked fields.' : (problem.detail || problem.title || 'The change was refused.');
  if (box) box.replaceChildren(...[h('p', null, summary), left.length ? h('ul', null, left.map((t) => h('li', null, t))) : null].filter(Boolean));
  const firstInvalid = form.querySelector('[aria-invalid=true]');
  if (firstInvalid) firstInvalid.focus();
}

function resultBanner(text, position) {
  const box = $('#edit-result');
  box.className = 'banner ok';
  box.replaceChildren(h('p', null, text, ` Version ${ed.version}.`, ' ',
    h('a', { href: storefrontLink(ed.id, position), id: 'view-in-storefront' }, 'View in storefront')));
}
function errorBanner(text) {
  const box = $('#edit-result');
  box.className = 'banner bad';
  box.replaceChildren(h('p', null, text));
}

/** The values the admin typed, by field (to show them again after a conflict). */
function typedValues() {
  const sec = $('#sec-edit');
  const details = sec.querySelector('#details-form');
  const price = sec.querySelector('#price-form');
  const out = {};
  if (details) {
    out.name = details.name.value;
    out.description = details.description.value;
    out.category = details.category.value;
    out.brand = details.brand.value;
    out.attributes = readAttributes(details).attributes;
  }
  if (price) { out.price = price.price.value; out.currency = price.currency.value; }
  return out;
}
function currentValues(p) {
  return { name: p.name, description: p.description || '', category: p.category, brand: p.brand || '', attributes: p.attributes || {}, price: units(p.price_cents, p.currency), currency: p.currency };
}

/** A write to the loaded product with If-Match; handles 412 and 422 for the form. */
async function productWrite(form, method, path, json, successText, extra = {}) {
  clearErrors(form);
  const button = form.querySelector('button[type=submit]') || null;
  if (button) button.disabled = true;
  try {
    const result = await send(method, path, json, { 'If-Match': `"${ed.version}"`, ...(extra.headers || {}) }, extra.options || {});
    ed.version = result.body && result.body.version ? result.body.version : ed.version + 1;
    renderMeta();
    resultBanner(successText, result.position);
    await reloadProduct(result.position, { keepForms: true });
    return result;
  } catch (error) {
    if (!(error instanceof HttpError)) { errorBanner('The catalog cannot be reached; nothing was saved.'); return null; }
    if (error.status === 412) { await conflict(); return null; }
    if (error.status === 422 || error.status === 409 || error.status === 400) {
      showErrors(form, error.problem, extra.names);
      errorBanner(error.status === 422 ? 'Not saved: some fields are invalid.' : `Not saved: ${error.message}`);
      return null;
    }
    errorBanner(`Not saved: ${error.message}`);
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

async function conflict() {
  const mine = typedValues();
  const before = ed.version;
  let product = null;
  for (let i = 0; i < 10; i++) {
    product = await getJson(`/api/products/${ed.id}`).catch(() => null);
    if (product && product.version > before) break;
    await sleep(200);
  }
  if (!product) { errorBanner('Someone changed this product, and it cannot be read right now.'); return; }
  renderEditor(product);
  const theirs = currentValues(product);
  const rows = Object.keys(mine).filter((k) => canonical(mine[k]) !== canonical(theirs[k]));
  const show = (v) => (typeof v === 'object' ? Object.entries(v).map(([k, x]) => `${k}: ${x}`).join(', ') || '(none)' : (v === '' ? '(empty)' : String(v)));
  const box = $('#edit-conflict');
  box.hidden = false;
  box.replaceChildren(...[
    h('h2', null, 'Someone changed this product since you opened it; here is the current version'),
    h('p', null, `The form now shows version ${product.version}. Nothing of yours was saved. Your unsent values are below for comparison.`),
    rows.length ? h('table', { class: 'data compare' }, h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Your unsent value'), h('th', { scope: 'col' }, 'Current value'))),
      h('tbody', null, rows.map((k) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, show(mine[k])), h('td', null, show(theirs[k])))))) : h('p', null, 'Your values equal the current ones.'),
    rows.length ? h('button', { type: 'button', class: 'secondary', onclick: () => { applyValues(mine); box.hidden = true; } }, 'Put my values back in the form') : null].filter(Boolean));
  $('#edit-result').className = 'banner';
  $('#edit-result').replaceChildren();
  box.querySelector('h2').tabIndex = -1;
  box.querySelector('h2').focus();
}
function applyValues(values) {
  const details = $('#details-form');
  const price = $('#price-form');
  for (const k of ['name', 'description', 'category', 'brand']) if (k in values && details[k]) details[k].value = values[k];
  if (values.attributes) {
    const rows = details.querySelector('.attrs');
    rows.replaceChildren(...Object.entries(values.attributes).map(([k, v]) => attributeRow(k, v)));
  }
  if (price && 'price' in values) { price.price.value = values.price; price.currency.value = values.currency; }
}

async function reloadProduct(position, { keepForms = false } = {}) {
  const headers = position ? { 'X-Min-Position': String(position) } : {};
  const product = await getJson(`/api/products/${ed.id}`, { headers }).catch(() => null);
  if (!product) return;
  ed.product = product;
  ed.version = Math.max(ed.version, product.version);
  if (!keepForms) return renderEditor(product);
  $('#edit-title').textContent = product.name;
  renderMeta();
  $('#stock-current').textContent = String(product.stock);
  renderImages();
}

function renderMeta() {
  const p = ed.product;
  $('#edit-meta').replaceChildren(
    h('span', null, 'Status ', statusPill(p.status)),
    h('span', null, 'Version ', h('strong', { id: 'edit-version' }, ed.version)),
    h('span', { class: 'mono' }, p.id),
    h('a', { href: storefrontLink(p.id, lastPosition) }, 'Storefront page'));
  const publish = $('#btn-publish');
  const unpublish = $('#btn-unpublish');
  const archive = $('#btn-archive');
  publish.disabled = p.status === 'published';
  unpublish.disabled = p.status !== 'published';
  archive.disabled = p.status === 'archived';
}

function imageIdOf(url) {
  const m = String(url).match(/([^/?#]+)\.page\.jpg(?:$|[?#])/);
  return m ? m[1] : null;
}
function thumbOf(url) {
  try {
    const parsed = new URL(url, location.href);
    if (parsed.pathname.endsWith('.page.jpg')) return url.replace(/\.page\.jpg(?=$|[?#])/, '.thumb.jpg');
    return parsed.origin === location.origin ? url : null;
  } catch { return null; }
}
function renderImages() {
  const list = $('#images-list');
  const images = ed.product.images || [];
  list.replaceChildren(...images.map((url, i) => {
    const id = imageIdOf(url);
    const src = thumbOf(url);
    return h('li', { class: 'image' },
      src ? h('img', { src, alt: `Image ${i + 1} of ${ed.product.name}`, width: 120, height: 120, loading: 'lazy' }) : h('div', { class: 'noimg' }, 'External image'),
      h('span', { class: 'mono small' }, id || url),
      id ? h('button', { type: 'button', class: 'ghost small', 'aria-label': `Remove image ${i + 1}`, onclick: () => removeImage(id) }, 'Remove') : null);
  }));
  if (!images.length) list.replaceChildren(h('li', { class: 'muted' }, 'No images yet.'));
}
async function removeImage(imageId) {
  if (!confirm('Remove this image from the product?')) return;
  await productWrite($('#images-form'), 'DELETE', `/api/products/${ed.id}/images/${encodeURIComponent(imageId)}`, undefined, 'Image removed.');
}

async function editView(id) {
  const generation = ++viewGeneration;
  showSection('edit', id === 'new' ? 'New product' : 'Edit product');
  const sec = $('#sec-edit');
  if (id === 'new') { ed = null; return renderNew(); }
  if (!ed || ed.id !== id) sec.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  const position = Number(new URLSearchParams(location.search).get('after') || 0);
  try {
    const product = await getJson(`/api/products/${encodeURIComponent(id)}`, { headers: position ? { 'X-Min-Position': String(position) } : {} });
    if (generation !== viewGeneration) return;
    ed = { id: product.id, product, version: product.version };
    renderEditor(product);
  } catch (error) {
    if (generation !== viewGeneration) return;
    sec.replaceChildren(h('h1', { id: 'edit-title' }, error.status === 404 || error.status === 400 ? 'Product not found' : 'The product cannot be loaded'),
      h('p', null, error.message), h('p', null, h('a', { href: '/admin' }, 'Back to products')));
  }
}

function detailsFields(p, isNew) {
  const categorySelect = h('select', { name: 'category', required: true }, h('option', { value: '' }, 'Choose a category'));
  fillCategorySelect(categorySelect, p.category).then(() => { categorySelect.value = p.category || ''; });
  const attrs = h('div', { class: 'attrs' }, Object.entries(p.attributes || {}).map(([k, v]) => attributeRow(k, v)));
  return [
    field(isNew ? 'new-name' : 'ed-name', 'Name', input('name', p.name, { required: true, maxlength: 200 })),
    isNew ? field('new-sku', 'SKU', input('sku', '', { required: true, maxlength: 64, pattern: '[A-Za-z0-9._-]+' }), 'Letters, digits, dot, dash, underscore.') : null,
    field(isNew ? 'new-description' : 'ed-description', 'Description', h('textarea', { name: 'description', rows: 5, maxlength: 10000 }, p.description || '')),
    h('div', { class: 'row' },
      field(isNew ? 'new-category' : 'ed-category', 'Category', categorySelect),
      field(isNew ? 'new-brand' : 'ed-brand', 'Brand', input('brand', p.brand || '', { maxlength: 200 }))),
    h('fieldset', { class: 'attributes' }, h('legend', null, 'Attributes'),
      h('div', { class: 'attr-head', 'aria-hidden': 'true' }, h('span', null, 'Name'), h('span', null, 'Type'), h('span', null, 'Value')),
      attrs,
      h('p', { class: 'ferr', id: `${isNew ? 'new' : 'ed'}-attributes-error` }),
      h('button', { type: 'button', class: 'secondary small', onclick: () => attrs.append(attributeRow()) }, 'Add attribute')),
  ];
}

function renderNew() {
  const sec = $('#sec-edit');
  const form = h('form', { id: 'details-form', class: 'panel', novalidate: true },
    detailsFields({ attributes: {} }, true),
    h('div', { class: 'row' },
      field('new-price', 'Price', input('price', '', { inputmode: 'decimal', required: true })),
      field('new-currency', 'Currency', input('currency', 'USD', { maxlength: 3, pattern: '[A-Z]{3}', required: true, class: 'short' })),
      field('new-stock', 'Stock', input('stock', '0', { inputmode: 'numeric', class: 'short' })),
      field('new-status', 'Status', h('select', { name: 'status' }, h('option', { value: 'draft' }, 'Draft'), h('option', { value: 'published' }, 'Published')))),
    h('div', { class: 'form-errors', role: 'alert' }),
    h('button', { type: 'submit' }, 'Create product'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const { attributes, problems } = readAttributes(form);
    const body = {
      sku: form.sku.value.trim(), name: form.name.value.trim(), description: form.description.value,
      category: form.category.value, price_cents: priceCents(form.price.value, form.currency.value), currency: form.currency.value.trim().toUpperCase(),
      stock: /^\s*\d+\s*$/.test(form.stock.value) ? Number(form.stock.value) : form.stock.value, status: form.status.value, attributes,
    };
    if (form.brand.value.trim()) body.brand = form.brand.value.trim();
    if (problems.length) return problems.forEach(([row, msg]) => setFieldError(row.querySelector('.attr-value'), row.querySelector('.ferr'), [msg]));
    if (body.price_cents == null) return setFieldError(form.price, $('#new-price-error'), ['Enter a price such as 12.99.']);
    try {
      const result = await send('POST', '/api/products', body);
      go(`/admin/products/${result.body.id}?after=${result.position}`);
      notice(`Created ${body.name} (version ${result.body.version}).`, 'ok');
    } catch (error) {
      if (error instanceof HttpError) showErrors(form, error.problem, { price_cents: 'price' });
      else form.querySelector('.form-errors').replaceChildren(h('p', null, 'The catalog cannot be reached.'));
    }
  });
  sec.replaceChildren(h('p', null, h('a', { href: '/admin' }, '← Products')), h('h1', { id: 'edit-title' }, 'New product'), form);
}

function priceCents(text, currency) {
  const clean = String(text).trim().replace(',', '.');
  if (!/^\d+(\.\d+)?$/.test(clean)) return null;
  return Math.round(Number(clean) * 10 ** digitsOf((currency || 'USD').toUpperCase()));
}

function renderEditor(p) {
  const sec = $('#sec-edit');
  ed.product = p;
  ed.version = p.version;
  const details = h('form', { id: 'details-form', class: 'panel', novalidate: true, 'aria-labelledby': 'details-title' },
    h('h2', { id: 'details-title' }, 'Details'),
    detailsFields(p, false),
    h('div', { class: 'form-errors', role: 'alert' }),
    h('button', { type: 'submit' }, 'Save details'));
  details.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(details);
    const { attributes, problems } = readAttributes(details);
    if (problems.length) return problems.forEach(([row, msg]) => setFieldError(row.querySelector('.attr-value'), row.querySelector('.ferr'), [msg]));
    const now = { name: details.name.value.trim(), description: details.description.value, category: details.category.value, brand: details.brand.value.trim() || null, attributes };
    const was = { name: ed.product.name, description: ed.product.description || '', category: ed.product.category, brand: ed.product.brand || null, attributes: ed.product.attributes || {} };
    const patch = Object.fromEntries(Object.entries(now).filter(([k, v]) => canonical(v) !== canonical(was[k])));
    if (!Object.keys(patch).length) { errorBanner('Nothing to save: the details are unchanged.'); return; }
    await productWrite(details, 'PATCH', `/api/products/${ed.id}`, patch, 'Details saved.');
  });

  const price = h('form', { id: 'price-form', class: 'panel', novalidate: true, 'aria-labelledby': 'price-title' },
    h('h2', { id: 'price-title' }, 'Price'),
    h('div', { class: 'row' },
      field('ed-price', 'Price', input('price', units(p.price_cents, p.currency), { inputmode: 'decimal', required: true }), `Now ${money(p.price_cents, p.currency)}`),
      field('ed-currency', 'Currency', input('currency', p.currency, { maxlength: 3, class: 'short', required: true }))),
    h('div', { class: 'form-errors', role: 'alert' }),
    h('button', { type: 'submit' }, 'Update price'));
  price.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(price);
    const currency = price.currency.value.trim().toUpperCase();
    const cents = priceCents(price.price.value, currency);
    if (cents == null) return setFieldError(price.price, $('#ed-price-error'), ['Enter a price such as 12.99.']);
    const done = await productWrite(price, 'PUT', `/api/products/${ed.id}/price`, { price_cents: cents, currency }, `Price set to ${money(cents, currency)}.`, { names: { price_cents: 'price' } });
    if (done) $('#ed-price-hint').textContent = `Now ${money(cents, currency)}`;
  });

  const stock = h('form', { id: 'stock-form', class: 'panel', novalidate: true, 'aria-labelledby': 'stock-title' },
    h('h2', { id: 'stock-title' }, 'Stock'),
    h('p', null, 'In stock: ', h('strong', { id: 'stock-current' }, p.stock)),
    h('div', { class: 'row' },
      field('ed-delta', 'Change by', input('delta', '', { inputmode: 'numeric', class: 'short', required: true }), 'Positive to add, negative to remove.'),
      field('ed-reason', 'Reason', input('reason', '', { maxlength: 200, placeholder: 'delivery, recount…' }))),
    h('div', { class: 'form-errors', role: 'alert' }),
    h('button', { type: 'submit' }, 'Adjust stock'));
  stock.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(stock);
    const delta = stock.delta.value.trim();
    if (!/^[+-]?\d+$/.test(delta) || Number(delta) === 0) return setFieldError(stock.delta, $('#ed-delta-error'), ['Enter a whole number other than 0, such as 5 or -2.']);
    const body = { delta: Number(delta) };
    if (stock.reason.value.trim()) body.reason = stock.reason.value.trim();
    const done = await productWrite(stock, 'POST', `/api/products/${ed.id}/stock`, body, `Stock changed by ${delta}.`);
    if (done) stock.delta.value = '';
  });

  const status = h('form', { id: 'status-form', class: 'panel', 'aria-labelledby': 'status-title' },
    h('h2', { id: 'status-title' }, 'Visibility'),
    h('div', { class: 'row' },
      h('button', { type: 'button', id: 'btn-publish', onclick: () => productWrite(status, 'POST', `/api/products/${ed.id}/publish`, undefined, 'Published.') }, 'Publish'),
      h('button', { type: 'button', id: 'btn-unpublish', class: 'secondary', onclick: () => productWrite(status, 'POST', `/api/products/${ed.id}/unpublish`, undefined, 'Unpublished (now a draft).') }, 'Unpublish'),
      h('button', { type: 'button', id: 'btn-archive', class: 'danger', onclick: () => { if (confirm(`Archive ${ed.product.name}? Shoppers will no longer see it.`)) productWrite(status, 'DELETE', `/api/products/${ed.id}`, undefined, 'Archived.'); } }, 'Archive')),
    h('div', { class: 'form-errors', role: 'alert' }));

  const fileInput = h('input', { type: 'file', name: 'image', accept: 'image/jpeg,image/png,image/webp' });
  const imagesForm = h('form', { id: 'images-form', class: 'panel', 'aria-labelledby': 'images-title' },
    h('h2', { id: 'images-title' }, 'Images'),
    h('ul', { id: 'images-list', class: 'images' }),
    field('ed-image', 'Add an image (JPEG, PNG or WebP, up to 10 MiB)', fileInput),
    h('div', { class: 'form-errors', role: 'alert' }),
    h('button', { type: 'submit' }, 'Upload image'));
  imagesForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(imagesForm);
    const file = fileInput.files[0];
    if (!file) return setFieldError(fileInput, $('#ed-image-error'), ['Choose a file first.']);
    if (!['image/jpeg', 'image/png', 'image/webp'].includes(file.type)) return setFieldError(fileInput, $('#ed-image-error'), ['Only JPEG, PNG and WebP images can be uploaded.']);
    if (file.size > 10 * 1024 * 1024) return setFieldError(fileInput, $('#ed-image-error'), ['This file is over 10 MiB.']);
    const label = { 413: 'This image is over 10 MiB.', 415: 'This file is not a JPEG, PNG or WebP image.', 422: 'This image cannot be decoded.' };
    const button = imagesForm.querySelector('button[type=submit]');
    button.disabled = true;
    button.textContent = 'Uploading…';
    try {
      const result = await send('POST', `/api/products/${ed.id}/images`, undefined, { 'Content-Type': file.type, 'If-Match': `"${ed.version}"` }, { body: file });
      ed.version = result.body.version || ed.version + 1;
      renderMeta();
      fileInput.value = '';
      resultBanner('Image uploaded.', result.position);
      await reloadProduct(result.position, { keepForms: true });
    } catch (error) {
      if (error instanceof HttpError && error.status === 412) await conflict();
      else setFieldError(fileInput, $('#ed-image-error'), [(error instanceof HttpError && label[error.status]) || `Upload failed: ${error.message}`]);
    } finally {
      button.disabled = false;
      button.textContent = 'Upload image';
    }
  });

  sec.replaceChildren(
    h('p', null, h('a', { href: '/admin' }, '← Products')),
    h('h1', { id: 'edit-title' }, p.name),
    h('p', { id: 'edit-meta', class: 'meta' }),
    h('div', { id: 'edit-result', class: 'banner', role: 'status', 'aria-live': 'polite' }),
    h('section', { id: 'edit-conflict', class: 'banner warn', role: 'alert', hidden: true }),
    h('div', { class: 'editor' }, details, h('div', { class: 'side' }, price, stock, status, imagesForm)));
  renderMeta();
  renderImages();
}

// ---- bulk import

/** RFC 4180: quoted fields may hold commas, doubled quotes and line breaks. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let fieldText = '';
  let quoted = false;
  let started = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const endField = () => { row.push(fieldText); fieldText = ''; started = false; };
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { fieldText += '"'; i++; } else quoted = false;
      } else fieldText += c;
    } else if (c === '"' && !started) { quoted = true; started = true; }
    else if (c === ',') endField();
    else if (c === '\n' || c === '\r') {
      endField();
      rows.push(row);
      row = [];
      if (c === '\r' && text[i + 1] === '\n') i++;
    } else { fieldText += c; started = true; }
  }
  if (started || fieldText || row.length) { endField(); rows.push(row); }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

const CSV_COLUMNS = ['sku', 'name', 'description', 'category', 'brand', 'price_cents', 'currency', 'stock', 'status'];
function csvProducts(text) {
  const rows = parseCsv(text);
  if (!rows.length) throw new Error('The file is empty.');
  const header = rows[0].map((c) => c.trim().toLowerCase());
  const missing = ['sku', 'name', 'category', 'price_cents', 'currency'].filter((c) => !header.includes(c));
  if (missing.length) throw new Error(`The header row lacks ${missing.join(', ')} (expected ${CSV_COLUMNS.join(',')}).`);
  return rows.slice(1).map((cells) => {
    const product = {};
    header.forEach((name, i) => {
      if (!CSV_COLUMNS.includes(name)) return;
      const value = cells[i] ?? '';
      if (name === 'price_cents' || name === 'stock') product[name] = /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
      else if (['brand', 'description', 'status'].includes(name) && value === '') return;
      else product[name] = value;
    });
    return { product };
  });
}
function ndjsonProducts(text) {
  return text.split(/\r?\n/).filter((line) => line.trim()).map((line) => {
    try {
      const product = JSON.parse(line);
      return product && typeof product === 'object' && !Array.isArray(product) ? { product } : { error: 'not a JSON object' };
    } catch (e) {
      return { error: `not JSON: ${e.message}` };
    }
  });
}

function problemText(problem) {
  if (!problem) return '';
  const errors = Object.entries(problem.errors || {}).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`);
  return [problem.detail || problem.title, ...errors].filter(Boolean).join('; ');
}

let importing = false;
$('#import-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (importing) return;
  const file = $('#import-file').files[0];
  const tbody = $('#import-table tbody');
  if (!file) { notice('Choose a CSV or NDJSON file first.', 'warn'); return; }
  let entries;
  try {
    const text = await file.text();
    const ndjson = /\.(nd)?jsonl?$/i.test(file.name) || file.type.includes('ndjson') || /^\s*\{/.test(text);
    entries = ndjson ? ndjsonProducts(text) : csvProducts(text);
  } catch (error) {
    notice(`Cannot read ${file.name}: ${error.message}`, 'bad');
    return;
  }
  if (!entries.length) { notice(`${file.name} has no rows.`, 'warn'); return; }
  importing = true;
  $('#import-start').disabled = true;
  notice(`Importing ${entries.length} rows from ${file.name}…`);
  const total = entries.length;
  let answered = 0;
  let created = 0;
  let failed = 0;
  const progress = $('#import-progress');
  const percent = $('#import-percent');
  const counts = $('#import-counts');
  $('#import-status').hidden = false;
  $('#import-table').hidden = false;
  progress.max = total;
  const rows = entries.map((entry, i) => {
    const tr = h('tr', { 'data-row': i + 1 }, h('td', { class: 'num' }, i + 1), h('td', { class: 'mono' }, (entry.product && entry.product.sku) || ''),
      h('td', { class: 'st' }, 'pending'), h('td', { class: 'res' }));
    return tr;
  });
  tbody.replaceChildren(...rows);
  const mark = (i, status, text) => {
    const tr = rows[i];
    tr.querySelector('.st').textContent = String(status);
    tr.querySelector('.st').className = `st ${status === 201 ? 'ok' : 'bad'}`;
    tr.querySelector('.res').textContent = text;
    answered++;
    if (status === 201) created++; else failed++;
  };
  const update = () => {
    progress.value = answered;
    const pct = Math.floor((answered / total) * 100);
    percent.textContent = `${pct} %`;
    counts.textContent = `${answered} of ${total} rows answered · ${created} created · ${failed} failed`;
  };
  entries.forEach((e, i) => { if (e.error) mark(i, 'invalid', e.error); });
  update();
  const run = Math.random().toString(36).slice(2);
  const pending = entries.map((e, i) => ({ ...e, i })).filter((e) => !e.error);
  try {
    for (let start = 0; start < pending.length; start += 100) {
      const chunk = pending.slice(start, start + 100);
      for (let attempt = 0; ; attempt++) {
        let res;
        try {
          res = await request('/api/products/bulk', { method: 'POST', json: chunk.map((e) => e.product), headers: { 'Idempotency-Key': `import-${run}-${start}` } });
        } catch {
          if (attempt >= 5) { chunk.forEach((e) => mark(e.i, 'error', 'the catalog cannot be reached')); break; }
          await sleep(1000 * (attempt + 1));
          continue;
        }
        if ((res.status === 429 || res.status === 503) && attempt < 30) {
          const wait = Math.max(Number(res.headers.get('Retry-After')) || 1, 0.2);
          counts.textContent = `rate limited: retrying in ${wait} s…`;
          await sleep(wait * 1000);
          continue;
        }
        if (res.status === 207 || res.ok) {
          const body = await res.json();
          const seen = new Set();
          for (const r of body.results || []) {
            const entry = chunk[r.index];
            if (!entry || seen.has(r.index)) continue;
            seen.add(r.index);
            mark(entry.i, r.status, r.id || problemText(r.problem));
          }
          chunk.forEach((e, k) => { if (!seen.has(k)) mark(e.i, 'error', 'no answer for this row'); });
          const positions = (body.results || []).map((r) => r.position || 0);
          if (positions.length) lastPosition = Math.max(lastPosition, ...positions);
        } else {
          const problem = await res.json().catch(() => null);
          chunk.forEach((e) => mark(e.i, res.status, problemText(problem) || `HTTP ${res.status}`));
        }
        break;
      }
      update();
    }
    notice(`Import of ${file.name} finished: ${created} created, ${failed} failed.`, failed ? 'warn' : 'ok');
  } finally {
    update();
    importing = false;
    $('#import-start').disabled = false;
  }
});

// ---- live events

const feed = { running: false, controller: null, lastId: null };
const MAX_EVENTS = 200;

function feedState(text, kind) {
  const el = $('#feed-state');
  el.textContent = text;
  el.className = `pill ${kind || ''}`;
}
function stopFeed() {
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

async function startFeed() {
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
function stopPolling() { clearTimeout(pollTimer); pollTimer = 0; }
function startPolling() { stopPolling(); pollProjections(); }
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
async function analyticsView() {
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

// ---- start

(async () => {
  if (await refreshSession()) await startConsole();
  else { $('#sec-boot').hidden = true; showLogin(); }
})();
