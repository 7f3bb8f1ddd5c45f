// Catalog admin console. Routes: /admin (products), /admin/products/{id|new}, /admin/import,
// /admin/events, /admin/projections, /admin/analytics.
// This is the entry point: sign-in and sign-out, and the router with its tabs. The views are
// in admin-products.js (the list), admin-editor.js (one product, with its images),
// admin-import.js (CSV/NDJSON bulk import) and admin-live.js (event feed, projections,
// analytics); admin-core.js holds the session's token, the fetch helper and what they share.
// API texts go in the page as text nodes.

import { $, CSRF, notice, token, setSession, clearSession, refreshSession, getJson, nextView } from './admin-core.js';
import { productsView } from './admin-products.js';
import { editView } from './admin-editor.js';
import './admin-import.js';
import { startFeed, stopFeed, startPolling, stopPolling, analyticsView } from './admin-live.js';

// ---- session

let me = null;

function dropSession() {
  clearSession();
  me = null;
  stopFeed();
}

export function sessionEnded() {
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

// ---- router

const SECTIONS = ['products', 'edit', 'import', 'events', 'projections', 'analytics'];
export function showSection(name, title) {
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
  else if (path === '/admin/import') { nextView(); showSection('import', 'Import'); }
  else if (path === '/admin/events') { nextView(); showSection('events', 'Events'); startFeed(); }
  else if (path === '/admin/projections') { nextView(); showSection('projections', 'Projections'); startPolling(); }
  else if (path === '/admin/analytics') { nextView(); showSection('analytics', 'Analytics'); analyticsView(); }
  else productsView();
  if (focus) {
    const visible = [...document.querySelectorAll('main > section')].find((s) => !s.hidden);
    const heading = visible && visible.querySelector('h1');
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  }
}
export function go(href, focus = true) {
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

// ---- start

(async () => {
  if (await refreshSession()) await startConsole();
  else { $('#sec-boot').hidden = true; showLogin(); }
})();
