// End-to-end browser test of the Catalog storefront and admin console: playwright-core's
// library API driving the system Chromium (no test runner, no downloaded browser).
//
//   cd tests/browser && npm ci
//   CATALOG_URL=http://127.0.0.1:8080 CATALOG_ADMIN_EMAIL=admin@example.com \
//     CATALOG_ADMIN_PASSWORD=admin-password-123 node run.mjs
//
// Environment: CATALOG_URL (default http://127.0.0.1:8080), CATALOG_ADMIN_EMAIL,
// CATALOG_ADMIN_PASSWORD, CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (default
// <repo>/target/browser), BROWSER_TEST_TIMEOUT_SECONDS (default 180).
//
// The catalog must hold the demo data (`catalog serve --demo`). Every step prints
// `ok - <step>` or `not ok - <step>: <reason>` and leaves a screenshot NN-<step>.png. The run
// fails on any console error, uncaught page error, failed request, request to a host other
// than 127.0.0.1, or HTTP answer >= 400 that the step did not expect.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.CATALOG_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const EMAIL = process.env.CATALOG_ADMIN_EMAIL || 'admin@example.com';
const PASSWORD = process.env.CATALOG_ADMIN_PASSWORD || 'admin-password-123';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(process.env.SCREENSHOTS || path.join(here, '../../target/browser'));
const TIMEOUT_MS = (Number(process.env.BROWSER_TEST_TIMEOUT_SECONDS) || 180) * 1000;
const RUN = Date.now().toString(36).toUpperCase();

mkdirSync(SHOTS, { recursive: true });

// ---- what counts as a failure -------------------------------------------------------------

/** Problems seen by the listeners; each step reports the ones that arrived while it ran. */
let problems = [];
/** Answers >= 400 a step expects: {status, method, path: RegExp, why}. */
const expected = [];
function expect(status, method, pathPattern, why) {
  const rule = { status, method, path: pathPattern, why, seen: 0 };
  expected.push(rule);
  return () => { const i = expected.indexOf(rule); if (i >= 0) expected.splice(i, 1); return rule.seen; };
}
function expectedAnswer(status, method, url) {
  const u = new URL(url);
  const rule = expected.find((r) => r.status === status && (r.method === '*' || r.method === method) && r.path.test(u.pathname));
  if (rule) rule.seen++;
  return !!rule;
}
/** Requests a page cancels on purpose: a superseded autocomplete fetch (AbortController), the
 * event stream when its page closes or logs out. Nothing else may fail. */
function expectedFailure(request) {
  const failure = request.failure();
  if (!failure || failure.errorText !== 'net::ERR_ABORTED') return false;
  const u = new URL(request.url());
  return u.pathname === '/api/search/suggest' || u.pathname === '/api/events/stream';
}

/** Only 127.0.0.1 may be asked: anything else is aborted and recorded. */
const onlyLoopback = (label) => (route) => {
  const url = new URL(route.request().url());
  if (url.hostname !== '127.0.0.1') {
    problems.push(`${label}: blocked a request to another host: ${url.href}`);
    return route.abort('blockedbyclient');
  }
  return route.continue();
};
/** A context whose pages are all watched; `context.newPage()` is replaced by `open(context)`. */
async function watch(context, label) {
  // Pages the test opens get their own route (below); this one covers any other page.
  await context.route('**/*', onlyLoopback(label));
  context.on('page', (page) => watchPage(page, label));
}
async function open(context, label) {
  const page = await context.newPage();
  await page.route('**/*', onlyLoopback(label));
  return page;
}
function watchPage(page, label) {
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const where = message.location() && message.location().url;
    // Chromium reports a failed load as a console error naming the URL; an expected answer
    // is not a failure.
    const status = Number((message.text().match(/status of (\d{3})/) || [])[1]);
    if (status && where && expected.some((r) => r.status === status && r.path.test(new URL(where).pathname))) return;
    problems.push(`${label}: console error: ${message.text()}${where ? ` (${where})` : ''}`);
  });
  page.on('pageerror', (error) => problems.push(`${label}: uncaught error: ${error.message}`));
  page.on('requestfailed', (request) => {
    if (expectedFailure(request)) return;
    problems.push(`${label}: request failed: ${request.method()} ${request.url()}: ${request.failure() && request.failure().errorText}`);
  });
  page.on('response', (response) => {
    const status = response.status();
    if (status < 400) return;
    if (expectedAnswer(status, response.request().method(), response.url())) return;
    problems.push(`${label}: HTTP ${status} for ${response.request().method()} ${response.url()}`);
  });
}

// ---- steps ------------------------------------------------------------------------------

let stepNumber = 0;
/** How many problems the steps have reported so far. */
let reported = 0;
let failed = 0;
const state = {};

async function step(name, page, fn) {
  stepNumber++;
  const before = reported;
  let reason = null;
  let current = page;
  try {
    const result = await fn((p) => { current = p; });
    if (result && result.page) current = result.page;
  } catch (error) {
    reason = (error && error.message ? error.message : String(error)).split('\n')[0];
  }
  if (current) {
    await current.waitForTimeout(150).catch(() => {});
    const file = path.join(SHOTS, `${String(stepNumber).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
    await current.screenshot({ path: file, fullPage: true }).catch(() => {});
  }
  const seen = problems.slice(before);
  reported = problems.length;
  if (!reason && seen.length) reason = seen.join('; ');
  if (reason) { failed++; console.log(`not ok - ${name}: ${reason}`); } else console.log(`ok - ${name}`);
  return !reason;
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}
const idle = (page) => page.waitForFunction(() => !document.querySelector('#main').hasAttribute('aria-busy'), null, { timeout: 15000 });

/** The cards of a storefront grid: id, name, brand, price in cents. */
function cards(page) {
  return page.$$eval('.grid .card', (list) => list.map((card) => ({
    id: card.querySelector('a.card-link').getAttribute('href').split('/').pop(),
    name: card.querySelector('.card-name').textContent,
    brand: (card.querySelector('.card-brand') || {}).textContent || '',
    cents: Number(card.querySelector('.price').dataset.priceCents),
  })));
}

async function shopper(browser) {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  await watch(context, 'shopper');
  const page = await open(context, 'shopper');
  state.shopperContext = context;

  await step('storefront shows categories with counts', page, async () => {
    await page.goto(`${BASE}/`);
    await page.waitForSelector('#cat-list a[data-slug]');
    const cats = await page.$$eval('#cat-list a[data-slug]', (links) => links.map((a) => ({ slug: a.dataset.slug, count: Number(a.querySelector('.count').textContent) })));
    assert(cats.length >= 3, `only ${cats.length} categories`);
    assert(cats.every((c) => Number.isInteger(c.count) && c.count >= 0), 'a category count is not a number');
    assert(cats.some((c) => c.count > 0), 'every category is empty');
    await page.waitForSelector('.tiles .tile');
    state.categories = cats;
  });

  await step('category listing with brand, price and sort filters, next page', page, async () => {
    const pick = state.categories.find((c) => c.slug === 'electronics') || [...state.categories].sort((a, b) => b.count - a.count)[0];
    await page.click(`#cat-list a[data-slug="${pick.slug}"]`);
    await page.waitForURL(`**/c/${pick.slug}`);
    await idle(page);
    await page.waitForSelector('.grid .card');
    const brands = await page.$$eval('fieldset.facet', (sets) => {
      const set = sets.find((s) => s.querySelector('legend').textContent === 'Brand');
      return set ? [...set.querySelectorAll('input')].map((i) => ({ id: i.id, value: i.value, count: Number(i.parentElement.querySelector('.count').textContent) })) : [];
    });
    assert(brands.length >= 2, `only ${brands.length} brand choices`);
    const brand = brands.sort((a, b) => b.count - a.count)[0];
    await page.check(`#${brand.id}`);
    await page.waitForFunction((b) => new URLSearchParams(location.search).getAll('brand').includes(b), brand.value);
    await idle(page);
    assert(await page.isChecked(`input[name=brand][value="${brand.value}"]`), 'the brand box is not ticked after the reload');
    await page.fill('#f-max', '150');
    await page.press('#f-max', 'Enter');
    await page.waitForFunction(() => new URLSearchParams(location.search).get('max') === '150');
    await idle(page);
    await page.selectOption('#f-sort', 'price_asc');
    await page.waitForFunction(() => new URLSearchParams(location.search).get('sort') === 'price_asc');
    await idle(page);
    const first = await cards(page);
    const matches = (items) => items.every((c) => c.brand.toLowerCase() === brand.value.toLowerCase() && c.cents <= 15000);
    const sorted = (items) => items.every((c, i) => i === 0 || items[i - 1].cents <= c.cents);
    assert(first.length > 0, 'no products on the first page');
    assert(matches(first), 'a product of page 1 does not match the brand and price filters');
    assert(sorted(first), 'page 1 is not sorted by price');
    assert(await page.$('a[rel=next]'), `no next page (${first.length} products on page 1)`);
    await page.click('a[rel=next]');
    await page.waitForFunction(() => new URLSearchParams(location.search).has('cursor'));
    await idle(page);
    const second = await cards(page);
    assert(second.length > 0, 'no products on the next page');
    assert(second.every((c) => !first.some((f) => f.id === c.id)), 'the next page repeats products of page 1');
    assert(matches(second), 'a product of page 2 does not match the filters');
    assert(sorted(second) && second[0].cents >= first[first.length - 1].cents, 'page 2 does not continue the price order');
    await page.reload();
    await idle(page);
    assert(await page.isChecked(`input[name=brand][value="${brand.value}"]`) && (await page.inputValue('#f-max')) === '150'
      && (await page.inputValue('#f-sort')) === 'price_asc', 'a reload lost the filters');
    await page.click('a[rel=prev]');
    await page.waitForFunction(() => !new URLSearchParams(location.search).has('cursor'));
    await idle(page);
    state.brand = brand.value;
  });

  await step('search suggestions while typing, keyboard, typo search with highlights', page, async () => {
    await page.click('#q');
    await page.fill('#q', '');
    await page.keyboard.type('head', { delay: 40 });
    await page.waitForSelector('#suggestions:not([hidden]) [role=option]', { timeout: 5000 });
    await page.keyboard.press('ArrowDown');
    const active = await page.getAttribute('#q', 'aria-activedescendant');
    assert(active && (await page.getAttribute(`#${active}`, 'aria-selected')) === 'true', 'ArrowDown does not select a suggestion');
    await page.keyboard.press('Escape');
    assert(await page.isHidden('#suggestions'), 'Escape does not close the suggestions');
    await page.keyboard.type('phnes', { delay: 40 });
    await page.keyboard.press('Enter');
    await page.waitForURL('**/search?q=headphnes');
    await idle(page);
    const total = await page.textContent('h1 .count');
    assert(/^[1-9]\d* results?$/.test(total), `the typo search found ${total}`);
    const marks = await page.$$eval('.grid mark', (list) => list.map((m) => m.textContent.toLowerCase()));
    assert(marks.length > 0, 'no highlighted words in the results');
    assert(marks.some((m) => m.startsWith('headphone')), `highlights are ${marks.slice(0, 5).join(', ')}`);
    const markup = await page.$$eval('.grid .card-name', (list) => list.some((n) => /<\/?em>|&lt;|&amp;/.test(n.textContent)));
    assert(!markup, 'highlight markup is shown as text');
  });

  await step('product page shows the price', page, async () => {
    const first = (await cards(page))[0];
    await page.click('.grid .card a.card-link');
    await page.waitForURL(`**/p/${first.id}`);
    await idle(page);
    const price = await page.textContent('.product .price.big');
    const cents = Number(await page.getAttribute('.product .price.big', 'data-price-cents'));
    const want = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(cents / 100);
    assert(price === want, `price ${price}, expected ${want}`);
    assert(cents === first.cents, 'the product page and the listing disagree on the price');
    assert(await page.$('.attrs tbody tr'), 'no attributes table');
    await page.goto(`${BASE}/p/00000000-0000-4000-8000-000000000000`);
    await idle(page);
    assert((await page.textContent('h1')) === 'Product not found', 'an unknown product does not show "not found"');
  });
  return context;
}

async function mobile(browser) {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await watch(context, 'mobile');
  const page = await open(context, 'mobile');
  await step('storefront on a phone-sized screen', page, async () => {
    await page.goto(`${BASE}/c/kitchen`);
    await idle(page);
    await page.waitForSelector('.grid .card');
    const width = await page.evaluate(() => [window.innerWidth, document.scrollingElement.scrollWidth]);
    assert(width[0] === 390 && width[1] <= 390, `the page lays out ${width[1]}px wide (viewport ${width[0]}px) on a 390px screen`);
    assert(!(await page.isVisible('#f-sort')), 'the filters are not folded on a phone');
    await page.click('.filter-box summary');
    assert(await page.isVisible('#f-sort'), 'the filters do not unfold');
    const columns = await page.$eval('.grid', (g) => getComputedStyle(g).gridTemplateColumns.split(' ').length);
    assert(columns >= 2 && columns <= 3, `${columns} grid columns on a phone`);
  });
  await context.close();
}

// ---- admin ------------------------------------------------------------------------------

async function apiLogin() {
  const res = await fetch(`${BASE}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: EMAIL, password: PASSWORD }) });
  if (res.status !== 200) throw new Error(`POST /api/auth/login: HTTP ${res.status}`);
  return (await res.json()).access_token;
}

async function admin(browser) {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  await watch(context, 'admin');
  const page = await open(context, 'admin');

  await step('admin logs in, changes a price, storefront shows it (read-your-writes)', page, async (shot) => {
    // The console asks to restore a session at load; without one the answer is 204, no error.
    const restore = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/auth/session/refresh');
    await page.goto(`${BASE}/admin`);
    const restored = await restore;
    assert(restored.status() === 204, `restoring without a session answered ${restored.status()}, not 204`);
    await page.waitForSelector('#sec-login:not([hidden])');
    await page.fill('#login-email', EMAIL);
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#tabs:not([hidden])');
    assert((await page.textContent('#who-name')) === EMAIL, 'the console does not show who is logged in');
    await page.waitForSelector('#products-table tbody tr');
    await page.fill('#products-q', 'kettle');
    await page.click('#products-form button[type=submit]');
    await page.waitForURL('**/admin?q=kettle');
    await page.waitForFunction(() => /matching/.test(document.querySelector('#products-info').textContent));
    const names = await page.$$eval('#products-table tbody tr td:first-child', (l) => l.map((td) => td.textContent));
    assert(names.length && names.every((n) => /kettle/i.test(n)), `the search for kettle lists ${names.slice(0, 3).join(', ')}`);
    await page.locator('#products-table tbody tr td:first-child a').first().click();
    await page.waitForSelector('#price-form');
    state.productId = page.url().split('/').pop();
    const before = Number(await page.textContent('#edit-version'));
    const old = Number(await page.inputValue('#ed-price'));
    const next = (Math.round(old * 100) + 137) / 100;
    await page.fill('#ed-price', next.toFixed(2));
    await page.click('#price-form button[type=submit]');
    await page.waitForSelector('#view-in-storefront');
    const after = Number(await page.textContent('#edit-version'));
    assert(after === before + 1, `version ${before} → ${after}`);
    const href = await page.getAttribute('#view-in-storefront', 'href');
    assert(/^\/p\/[0-9a-f-]+\?min_position=\d+$/.test(href), `storefront link ${href}`);
    const sent = [];
    page.on('request', (r) => { if (r.url().includes(`/api/products/${state.productId}`)) sent.push(r.headers()['x-min-position']); });
    await page.click('#view-in-storefront');
    await page.waitForURL(`**/p/${state.productId}?min_position=*`);
    shot(page);
    await page.waitForSelector('.product .price.big');
    const shown = await page.textContent('.product .price.big');
    const want = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(next);
    assert(shown === want, `the storefront shows ${shown}, expected ${want}`);
    assert(sent.length && sent.every((v) => v === href.split('=')[1]), `X-Min-Position sent: ${sent.join(', ') || 'none'}`);
    state.price = next;
  });

  await step('admin uploads an image, storefront shows it', page, async () => {
    assert(state.productId, 'no product from the previous step');
    await page.goto(`${BASE}/admin/products/${state.productId}`);
    await page.waitForSelector('#images-form');
    const count = await page.$$eval('#images-list img', (l) => l.length);
    await page.setInputFiles('#images-form input[type=file]', { name: `browser-test-${RUN}.png`, mimeType: 'image/png', buffer: png(600, 400) });
    await page.click('#images-form button[type=submit]');
    await page.waitForSelector('#view-in-storefront');
    await page.waitForFunction((n) => document.querySelectorAll('#images-list img').length > n, count);
    await page.waitForFunction(() => [...document.querySelectorAll('#images-list img')].every((i) => i.complete && i.naturalWidth > 0));
    await page.click('#view-in-storefront');
    await page.waitForURL(`**/p/${state.productId}?min_position=*`);
    await page.waitForSelector('.gallery-main img');
    await page.waitForFunction(() => { const i = document.querySelector('.gallery-main img'); return i.complete && i.naturalWidth > 0; }, null, { timeout: 10000 });
    const src = await page.getAttribute('.gallery-main img', 'src');
    assert(/\.page\.jpg$/.test(src) || src.includes('/images/'), `product image ${src}`);
  });

  await step('admin imports 1000 CSV rows', page, async () => {
    await page.goto(`${BASE}/admin/import`);
    await page.waitForSelector('#import-form');
    const rateLimited = expect(429, 'POST', /^\/api\/products\/bulk$/, 'writes are rate limited; the console retries after Retry-After');
    const csv = importCsv(1000);
    await page.setInputFiles('#import-file', { name: `import-${RUN}.csv`, mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.click('#import-start');
    await page.waitForSelector('#import-status:not([hidden])');
    await page.waitForFunction(() => document.querySelector('#import-percent').textContent === '100 %', null, { timeout: 120000 });
    const rows = await page.$$eval('#import-table tbody tr', (list) => list.map((tr) => [tr.cells[1].textContent, tr.cells[2].textContent]));
    assert(rows.length === 1000, `${rows.length} result rows`);
    const bad = rows.filter(([, status]) => status !== '201');
    assert(!bad.length, `${bad.length} rows not created, the first: ${bad[0] && bad[0].join(' ')}`);
    const value = await page.$eval('#import-progress', (p) => [p.value, p.max]);
    assert(value[0] === value[1], `progress ${value[0]} of ${value[1]}`);
    const limited = rateLimited();
    if (limited) console.log(`# the import was rate limited ${limited} times and retried`);
  });

  await step('admin event feed shows a new write', page, async () => {
    await page.click('#tabs a[data-tab=events]');
    await page.waitForURL('**/admin/events');
    await page.waitForFunction(() => /^Live/.test(document.querySelector('#feed-state').textContent), null, { timeout: 10000 });
    await page.waitForSelector('#events-table tbody tr');
    const token = await apiLogin();
    const res = await fetch(`${BASE}/api/products/${state.productId}/stock`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ delta: 1, reason: 'browser test' }),
    });
    assert(res.status === 200, `POST …/stock: HTTP ${res.status}`);
    const { position } = await res.json();
    await page.waitForSelector(`#events-table tbody tr[data-position="${position}"]`, { timeout: 10000 });
    const first = await page.$eval('#events-table tbody tr', (tr) => [tr.dataset.position, tr.cells[1].textContent]);
    assert(Number(first[0]) === position && first[1] === 'StockAdjusted', `the newest row is ${first.join(' ')}`);
  });

  await step('admin projections and analytics panels', page, async () => {
    await page.click('#tabs a[data-tab=projections]');
    await page.waitForSelector('#projections-table tbody tr');
    const views = await page.$$eval('#projections-table tbody tr th', (l) => l.map((t) => t.textContent));
    assert(views.length >= 1, 'no projections listed');
    await page.click('#tabs a[data-tab=analytics]');
    await page.waitForFunction(() => [...document.querySelectorAll('.chart .bars')].every((b) => !/Loading/.test(b.textContent)));
    const errors = await page.$$eval('.chart .error', (l) => l.map((e) => e.textContent));
    assert(!errors.length, errors.join('; '));
  });

  await step('storefront shows product text as text, highlights included', page, async () => {
    const token = await apiLogin();
    const name = `Escape <img src=x> <em>Kettle</em> & "Co" ${RUN}`;
    const res = await fetch(`${BASE}/api/products`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sku: `BT-${RUN}-ESCAPE`, name, description: `<script>alert(1)</script> ${RUN} &amp; more`, category: 'kitchen',
        brand: '<b>Brand</b>', price_cents: 4200, currency: 'USD', stock: 3, status: 'published', attributes: { '<i>key</i>': '<u>value</u>' } }),
    });
    assert(res.status === 201, `POST /api/products: HTTP ${res.status}`);
    const { id, position } = await res.json();
    let dialogs = 0;
    page.on('dialog', (d) => { dialogs++; d.dismiss(); });
    await page.goto(`${BASE}/search?q=${RUN}&min_position=${position}`);
    await idle(page);
    await page.waitForSelector('.grid .card');
    const card = await page.$eval('.grid .card', (c) => ({ name: c.querySelector('.card-name').textContent, tags: c.querySelectorAll('.card-name *:not(mark), .snippet *:not(mark), .card-brand *').length,
      marks: [...c.querySelectorAll('mark')].map((m) => m.textContent), snippet: (c.querySelector('.snippet') || {}).textContent || '' }));
    assert(card.name === name, `the card shows ${card.name}`);
    assert(card.tags === 0, 'markup of the product became elements');
    assert(card.marks.some((m) => m.toUpperCase() === RUN), `highlights: ${card.marks.join(', ')}`);
    assert(card.snippet.includes('<script>alert(1)</script>') && card.snippet.includes('&amp;'), `snippet ${card.snippet}`);
    await page.goto(`${BASE}/p/${id}?min_position=${position}`);
    await page.waitForSelector('.product h1');
    assert((await page.textContent('.product h1')) === name, 'the product page title differs');
    assert((await page.$$('.product script, .product h1 *, .attrs i, .attrs u')).length === 0, 'markup of the product became elements on its page');
    assert(dialogs === 0, 'a script ran');
  });

  await page.close();
  await context.close();
}

async function waitForCatalog() {
  for (let i = 0; i < 60; i++) {
    const ok = await fetch(`${BASE}/healthz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`${BASE}/healthz does not answer`);
}

function importCsv(count) {
  const quote = (v) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const lines = ['sku,name,description,category,brand,price_cents,currency,stock,status'];
  for (let i = 0; i < count; i++) {
    const name = i % 10 === 0 ? `Browser "Test" Kettle, no. ${i}` : `Browser Test Kettle ${i}`;
    const description = i % 7 === 0 ? `Line one, with a comma\nline two "quoted"` : 'Imported by the browser test';
    lines.push([`BT-${RUN}-${String(i).padStart(5, '0')}`, name, description, 'kitchen', 'Testbrand', String(1000 + i), 'USD', String(i % 50), 'draft'].map(quote).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

// ---- measurements -----------------------------------------------------------------------

async function measure(browser) {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  await watch(context, 'measure');
  const page = await open(context, 'measure');
  await step('storefront first page weight and paint', page, async () => {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    let bytes = 0;
    let requests = 0;
    cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; requests++; });
    await page.goto(`${BASE}/`, { waitUntil: 'load' });
    await page.waitForSelector('.grid .card');
    await page.waitForLoadState('networkidle');
    const paints = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('paint').map((p) => [p.name, Math.round(p.startTime)])));
    console.log(`# page weight: ${bytes} bytes transferred (${requests} requests)`);
    console.log(`# first paint: ${paints['first-paint']} ms, first contentful paint: ${paints['first-contentful-paint']} ms`);
    assert(requests > 0 && bytes > 0, 'nothing was measured');
    state.measure = { bytes, requests, ...paints };
  });
  await context.close();
}

// ---- a PNG, encoded here ----------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}
/** A width×height RGB PNG: a gradient with a stripe, unique per run. */
function png(width, height) {
  const seed = parseInt(RUN.slice(-4), 36) % 255;
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0;
    for (let x = 0; x < width; x++) {
      const i = row + 1 + x * 3;
      const stripe = Math.abs(x - y) < 20;
      raw[i] = stripe ? 255 : Math.round((x / width) * 255);
      raw[i + 1] = stripe ? 209 : Math.round((y / height) * 255);
      raw[i + 2] = stripe ? 102 : seed;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// ---- main -------------------------------------------------------------------------------

let browser = null;
const watchdog = setTimeout(async () => {
  console.log(`not ok - the run took over ${TIMEOUT_MS / 1000} s`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}, TIMEOUT_MS);

try {
  console.log(`# ${BASE}, chromium ${CHROMIUM}, screenshots in ${SHOTS}`);
  await waitForCatalog();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1', '--no-sandbox'],
  });
  // The shopper's last step opens an unknown product on purpose.
  const unknown = expect(404, 'GET', /^\/api\/products\/00000000-0000-4000-8000-000000000000$/, 'the not-found view');
  const shopperContext = await shopper(browser);
  unknown();
  await shopperContext.close();
  await mobile(browser);
  await admin(browser);
  await measure(browser);
  if (problems.length > reported) {
    failed++;
    console.log(`not ok - nothing failed between or after the steps: ${problems.slice(reported).join('; ')}`);
  }
} catch (error) {
  failed++;
  console.log(`not ok - the run stopped: ${error && error.message ? error.message.split('\n')[0] : error}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(watchdog);
}
console.log(failed ? `# ${failed} step(s) failed` : `# all ${stepNumber} steps passed`);
process.exit(failed ? 1 : 0);
