// Catalog storefront: routes /, /c/{slug}, /p/{id}, /search?q= in the page. API text only
// ever goes into text nodes (h()); search highlights are parsed, never used as HTML (marked()).

const PAGE_SIZE = 24;
const $ = (sel, root = document) => root.querySelector(sel);
const view = $('#view');
const main = $('#main');
const statusLine = $('#status');

// Read-your-writes: `?min_position=N` (admin links) goes out as X-Min-Position, kept as a lower bound.
let minPosition = null;
let routeController = null;

/** Builds an element; strings become text nodes, so nothing here is parsed as HTML. */
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
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function api(path, { signal, retry = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (minPosition != null) headers['X-Min-Position'] = minPosition;
  const res = await fetch(path, { headers, signal, cache: minPosition != null ? 'no-cache' : 'default' });
  if (res.status === 503 && retry) {
    const wait = Math.min(Number(res.headers.get('Retry-After')) || 1, 3);
    await sleep(wait * 1000);
    return api(path, { signal, retry: false });
  }
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { /* not JSON */ }
    throw new HttpError(res.status, problem);
  }
  return res.json();
}

// ---- formatting

const formats = new Map();
function currencyFormat(currency) {
  if (!formats.has(currency)) {
    let format = null;
    try { format = new Intl.NumberFormat(undefined, { style: 'currency', currency }); } catch { /* unknown code */ }
    formats.set(currency, format);
  }
  return formats.get(currency);
}
function minorDigits(currency) {
  const format = currencyFormat(currency);
  return format ? format.resolvedOptions().maximumFractionDigits : 2;
}
function money(cents, currency = 'USD') {
  const format = currencyFormat(currency);
  const value = cents / 10 ** minorDigits(currency);
  return format ? format.format(value) : `${value.toFixed(2)} ${currency}`;
}
/** "12.5" (currency units) → 1250; null when empty or not a non-negative number. */
function toMinor(text, currency = 'USD') {
  if (text == null || String(text).trim() === '') return null;
  const value = Number(String(text).replace(',', '.'));
  if (!Number.isFinite(value) || value < 0) return null;
  return Math.round(value * 10 ** minorDigits(currency));
}

/** A highlight is escaped text with matches in <em>…</em>: split on the delimiters, decode the
 * entities between them into text nodes, and <mark> what was inside <em>. */
const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
function decodeEntities(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (all, code) => {
    if (code[0] === '#') {
      const n = code[1] === 'x' || code[1] === 'X' ? parseInt(code.slice(2), 16) : parseInt(code.slice(1), 10);
      return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : all;
    }
    return ENTITIES[code.toLowerCase()] ?? all;
  });
}
function marked(fragment) {
  const out = document.createDocumentFragment();
  let inMark = false;
  for (const part of String(fragment).split(/(<em>|<\/em>)/)) {
    if (part === '<em>') inMark = true;
    else if (part === '</em>') inMark = false;
    else if (part) out.append(inMark ? h('mark', null, decodeEntities(part)) : decodeEntities(part));
  }
  return out;
}

/** Uploads end in .page.jpg with a .thumb.jpg beside; other URLs of another origin would be
 * refused by the CSP, so they are skipped. */
function imageUrl(url, kind) {
  if (typeof url !== 'string' || !url) return null;
  let parsed;
  try { parsed = new URL(url, location.href); } catch { return null; }
  const uploaded = parsed.pathname.endsWith('.page.jpg');
  if (!uploaded && parsed.origin !== location.origin) return null;
  if (!/^https?:$/.test(parsed.protocol)) return null;
  return uploaded && kind === 'thumb' ? url.replace(/\.page\.jpg(?=$|[?#])/, '.thumb.jpg') : url;
}
/** The product's images this page can show, in order. */
const shownImages = (product) => (product.images || []).filter((url) => imageUrl(url, 'page'));
function picture(product, kind, index = 0) {
  const src = imageUrl(shownImages(product)[index], kind);
  if (!src) return h('div', { class: 'noimg', role: 'img', 'aria-label': `${product.name}: no image` });
  const img = h('img', { src, alt: product.name, width: 320, height: 320, loading: kind === 'thumb' ? 'lazy' : null, decoding: 'async' });
  img.addEventListener('error', () => img.replaceWith(h('div', { class: 'noimg', role: 'img', 'aria-label': `${product.name}: image unavailable` })), { once: true });
  return img;
}

function stockBadge(stock) {
  if (stock > 10) return h('span', { class: 'stock in' }, 'In stock');
  if (stock > 0) return h('span', { class: 'stock low' }, `Only ${stock} left`);
  return h('span', { class: 'stock out' }, 'Out of stock');
}

function card(product, highlight) {
  return h('li', { class: 'card' },
    h('a', { class: 'card-link', href: `/p/${encodeURIComponent(product.id)}` },
      picture(product, 'thumb'),
      h('span', { class: 'card-name' }, highlight && highlight.name ? marked(highlight.name) : product.name)),
    product.brand && h('p', { class: 'card-brand' }, product.brand),
    h('p', { class: 'price', 'data-price-cents': product.price_cents }, money(product.price_cents, product.currency)),
    stockBadge(product.stock),
    highlight && highlight.description && h('p', { class: 'snippet' }, marked(highlight.description)));
}
const grid = (items, highlights) => items.length
  ? h('ul', { class: 'grid' }, items.map((p) => card(p, highlights && p.highlight)))
  : h('p', { class: 'empty' }, 'No products match.');

// ---- categories

let categoriesPromise = null;
function categories() {
  if (!categoriesPromise) {
    categoriesPromise = api('/api/categories').then((body) => body.items || []);
    categoriesPromise.catch(() => { categoriesPromise = null; });
  }
  return categoriesPromise;
}
const childrenOf = (all, slug) => all.filter((c) => (c.parent || null) === slug);
function descendants(all, slug) {
  const out = [slug];
  for (let i = 0; i < out.length && out.length < 20; i++) out.push(...childrenOf(all, out[i]).map((c) => c.slug));
  return out.slice(0, 20);
}
/** Products of a category and its subcategories (a listing shows them all). */
const total = (all, slug) => descendants(all, slug).reduce((n, s) => n + ((all.find((c) => c.slug === s) || {}).product_count || 0), 0);
async function renderCategoryNav() {
  const list = $('#cat-list');
  try {
    const all = await categories();
    const item = (c) => h('li', null,
      h('a', { href: `/c/${encodeURIComponent(c.slug)}`, 'data-slug': c.slug },
        h('span', null, c.name), h('span', { class: 'count', 'aria-label': `${total(all, c.slug)} products` }, total(all, c.slug))),
      childrenOf(all, c.slug).length ? h('ul', null, childrenOf(all, c.slug).map(item)) : null);
    const roots = all.filter((c) => !c.parent || !all.some((p) => p.slug === c.parent));
    list.replaceChildren(...roots.map(item));
    markCurrentCategory();
  } catch (error) {
    list.replaceChildren(h('li', { class: 'error' }, 'Categories are unavailable right now.'));
  }
}
function markCurrentCategory() {
  const match = location.pathname.match(/^\/c\/([^/]+)/);
  const slug = match ? decodeURIComponent(match[1]) : null;
  for (const a of document.querySelectorAll('#cat-list a')) {
    if (a.dataset.slug === slug) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---- filters shared by listings and search

function readFilters(params) {
  const num = (name) => {
    const value = params.get(name);
    return value != null && value !== '' && toMinor(value) != null ? value : '';
  };
  return {
    brands: params.getAll('brand').filter(Boolean),
    categories: params.getAll('category').filter(Boolean),
    min: num('min'),
    max: num('max'),
    inStock: params.get('in_stock') === 'true',
    sort: params.get('sort') || '',
    cursor: params.get('cursor') || '',
  };
}
/** The API's filter parameters (prices in cents). */
function apiFilters(filters, { brands = true } = {}) {
  const q = new URLSearchParams();
  if (brands) for (const b of filters.brands) q.append('brand', b);
  const min = toMinor(filters.min);
  const max = toMinor(filters.max);
  if (min != null) q.set('min_price', String(min));
  if (max != null) q.set('max_price', String(max));
  if (filters.inStock) q.set('in_stock', 'true');
  return q;
}
/** The page URL for `filters` (prices in currency units), without a cursor unless given. */
function pageUrl(path, filters, extra = {}) {
  const q = new URLSearchParams();
  if (extra.q != null) q.set('q', extra.q);
  for (const c of filters.categories || []) q.append('category', c);
  for (const b of filters.brands) q.append('brand', b);
  if (filters.min) q.set('min', filters.min);
  if (filters.max) q.set('max', filters.max);
  if (filters.inStock) q.set('in_stock', 'true');
  if (filters.sort) q.set('sort', filters.sort);
  if (extra.cursor) q.set('cursor', extra.cursor);
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}

function checkboxGroup(legend, name, entries, selected, onChange) {
  if (!entries.length) return null;
  return h('fieldset', { class: 'facet' }, h('legend', null, legend),
    entries.map(([value, label, count], i) => {
      const id = `f-${name}-${i}`;
      return h('div', { class: 'check' },
        h('input', { type: 'checkbox', id, name, value, checked: selected.includes(value), onchange: onChange }),
        h('label', { for: id }, label, count != null ? h('span', { class: 'count' }, count) : null));
    }));
}

const wide = matchMedia('(min-width: 861px)');
function filterPanel({ filters, brandCounts, categoryEntries, priceBuckets, sorts, apply }) {
  const form = h('form', { class: 'filters', 'aria-label': 'Filters' });
  const collect = () => {
    const data = new FormData(form);
    return {
      ...filters,
      brands: data.getAll('brand'),
      categories: categoryEntries ? data.getAll('category') : filters.categories,
      min: String(data.get('min') || '').trim(),
      max: String(data.get('max') || '').trim(),
      inStock: data.get('in_stock') === 'true',
      sort: String(data.get('sort') || ''),
    };
  };
  const changed = () => apply(collect());
  form.addEventListener('submit', (e) => { e.preventDefault(); changed(); });

  form.append(h('div', { class: 'field' },
    h('label', { for: 'f-sort' }, 'Sort by'),
    h('select', { id: 'f-sort', name: 'sort', onchange: changed },
      sorts.map(([value, label]) => h('option', { value, selected: value === filters.sort }, label)))));

  if (categoryEntries) form.append(checkboxGroup('Category', 'category', categoryEntries, filters.categories, changed) || '');

  const brands = new Map(Object.entries(brandCounts || {}));
  for (const b of filters.brands) if (![...brands.keys()].some((k) => k.toLowerCase() === b.toLowerCase())) brands.set(b, 0);
  const brandEntries = [...brands].sort((a, b) => a[0].localeCompare(b[0])).map(([name, n]) => [name, name, n]);
  const selectedBrands = filters.brands.map((b) => brandEntries.find(([v]) => v.toLowerCase() === b.toLowerCase())?.[0] || b);
  form.append(checkboxGroup('Brand', 'brand', brandEntries, selectedBrands, changed) || '');

  const price = h('fieldset', { class: 'facet' }, h('legend', null, 'Price'));
  if (priceBuckets && priceBuckets.length) {
    const list = h('ul', { class: 'buckets' });
    for (const bucket of priceBuckets) {
      const min = bucket.from != null ? String(bucket.from / 100) : '';
      const max = bucket.to != null ? String((bucket.to - 1) / 100) : '';
      const label = bucket.from == null ? `Under ${money(bucket.to)}`
        : bucket.to == null ? `${money(bucket.from)} and up` : `${money(bucket.from)} – ${money(bucket.to)}`;
      const current = filters.min === min && filters.max === max;
      list.append(h('li', null, h('button', {
        type: 'button', class: 'linkish', 'aria-pressed': String(current), disabled: !bucket.count && !current,
        onclick: () => apply({ ...collect(), min: current ? '' : min, max: current ? '' : max }),
      }, label, h('span', { class: 'count' }, bucket.count))));
    }
    price.append(list);
  }
  price.append(h('div', { class: 'range' },
    h('div', { class: 'field' }, h('label', { for: 'f-min' }, 'Min'),
      h('input', { id: 'f-min', name: 'min', type: 'number', min: 0, step: '0.01', inputmode: 'decimal', value: filters.min, onchange: changed })),
    h('div', { class: 'field' }, h('label', { for: 'f-max' }, 'Max'),
      h('input', { id: 'f-max', name: 'max', type: 'number', min: 0, step: '0.01', inputmode: 'decimal', value: filters.max, onchange: changed }))));
  form.append(price);

  form.append(h('div', { class: 'check' },
    h('input', { type: 'checkbox', id: 'f-stock', name: 'in_stock', value: 'true', checked: filters.inStock, onchange: changed }),
    h('label', { for: 'f-stock' }, 'In stock only')));
  form.append(h('button', { type: 'submit', class: 'secondary' }, 'Apply'));
  const active = filters.brands.length + filters.categories.length + (filters.min ? 1 : 0) + (filters.max ? 1 : 0) + (filters.inStock ? 1 : 0);
  return h('details', { class: 'filter-box', open: wide.matches || null },
    h('summary', null, active ? `Filters and sort (${active} active)` : 'Filters and sort'), form);
}

/** Previous / Next links; the cursors of earlier pages travel in history.state. */
function pager(path, filters, extra, nextCursor) {
  const stack = (history.state && history.state.cursors) || [];
  const nav = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  if (filters.cursor) {
    const prev = stack.length ? stack[stack.length - 1] : '';
    nav.append(h('a', { href: pageUrl(path, filters, { ...extra, cursor: prev }), rel: 'prev', 'data-cursors': JSON.stringify(stack.slice(0, -1)) },
      stack.length ? '← Previous page' : '← First page'));
  }
  if (nextCursor) {
    nav.append(h('a', { href: pageUrl(path, filters, { ...extra, cursor: nextCursor }), rel: 'next', class: 'next', 'data-cursors': JSON.stringify([...stack, filters.cursor]) }, 'Next page →'));
  }
  return nav.childElementCount ? nav : null;
}

// ---- views

function show(title, ...nodes) {
  document.title = title ? `${title} — Catalog` : 'Catalog';
  const focused = document.activeElement && view.contains(document.activeElement) ? document.activeElement.id : null;
  view.replaceChildren(...nodes.filter(Boolean));
  main.removeAttribute('aria-busy');
  statusLine.textContent = title ? `${title} loaded` : '';
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  else if (pendingFocus) { const h1 = view.querySelector('h1'); if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); } }
  pendingFocus = false;
}
function errorView(error) {
  if (error && error.name === 'AbortError') return;
  show('Error',
    h('h1', null, 'Something went wrong'),
    h('p', { class: 'error', role: 'alert' }, error instanceof HttpError ? error.message : 'The catalog cannot be reached right now.'),
    h('p', null, h('button', { type: 'button', onclick: route }, 'Try again')));
}
function notFoundView(what = 'Page') {
  show(`${what} not found`,
    h('h1', null, `${what} not found`),
    h('p', null, `This ${what.toLowerCase()} does not exist or is no longer available.`),
    h('p', null, h('a', { href: '/' }, 'Back to the shop')));
}

async function homeView(signal) {
  const [all, best] = await Promise.all([categories(), api('/api/products/bestsellers?limit=10', { signal }).catch(() => ({ items: [] }))]);
  const tiles = all.filter((c) => !c.parent).map((c) =>
    h('li', null, h('a', { class: 'tile', href: `/c/${encodeURIComponent(c.slug)}` }, h('span', null, c.name), h('span', { class: 'count' }, `${total(all, c.slug)} products`))));
  show('',
    h('h1', null, 'Welcome to Catalog'),
    h('section', { 'aria-labelledby': 'shop-by' }, h('h2', { id: 'shop-by' }, 'Shop by category'), h('ul', { class: 'tiles' }, tiles)),
    best.items.length ? h('section', { 'aria-labelledby': 'best' }, h('h2', { id: 'best' }, 'Bestsellers'), grid(best.items)) : null);
}

const LIST_SORTS = [['newest', 'Newest'], ['price_asc', 'Price: low to high'], ['price_desc', 'Price: high to low'], ['bestselling', 'Bestselling'], ['name', 'Name (A–Z)']];
const SEARCH_SORTS = [['relevance', 'Relevance'], ['price_asc', 'Price: low to high'], ['price_desc', 'Price: high to low'], ['newest', 'Newest']];

async function listingView(slug, params, signal) {
  const all = await categories();
  const category = all.find((c) => c.slug === slug);
  if (!category) return notFoundView('Category');
  const filters = readFilters(params);
  filters.categories = [];
  const scope = descendants(all, slug);
  const q = apiFilters(filters);
  for (const c of scope) q.append('category', c);
  if (filters.sort) q.set('sort', filters.sort);
  q.set('limit', String(PAGE_SIZE));
  if (filters.cursor) q.set('cursor', filters.cursor);
  // Brand choices: the brand facet of an empty search over the same scope and filters.
  const facetQuery = apiFilters(filters);
  facetQuery.set('q', '');
  for (const c of scope) facetQuery.append('category', c);
  facetQuery.set('limit', '1');
  const [page, found] = await Promise.all([
    api(`/api/products?${q}`, { signal }),
    api(`/api/search?${facetQuery}`, { signal }).catch((e) => { if (e.name === 'AbortError') throw e; return null; }),
  ]);
  const facets = found && found.facets;
  const count = found ? `${found.total} ${found.total === 1 ? 'product' : 'products'}` : `${total(all, slug)} products`;
  const path = `/c/${encodeURIComponent(slug)}`;
  const apply = (next) => refine(pageUrl(path, { ...next, categories: [] }));
  const parent = category.parent && all.find((c) => c.slug === category.parent);
  show(category.name,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/' }, 'Home'),
      parent ? [' › ', h('a', { href: `/c/${encodeURIComponent(parent.slug)}` }, parent.name)] : null),
    h('h1', null, category.name, h('span', { class: 'count' }, count)),
    h('div', { class: 'results' },
      filterPanel({ filters, brandCounts: facets && facets.brand, priceBuckets: facets && facets.price, sorts: LIST_SORTS, apply }),
      h('section', { class: 'hits', 'aria-label': 'Products' },
        grid(page.items),
        pager(path, filters, {}, page.next_cursor))));
}

async function searchView(params, signal) {
  const text = params.get('q') || '';
  $('#q').value = text;
  const all = await categories().catch(() => []);
  const filters = readFilters(params);
  const q = apiFilters(filters);
  q.set('q', text);
  for (const c of filters.categories) q.append('category', c);
  if (filters.sort) q.set('sort', filters.sort);
  q.set('limit', String(PAGE_SIZE));
  if (filters.cursor) q.set('cursor', filters.cursor);
  const page = await api(`/api/search?${q}`, { signal });
  const nameOf = (slug) => (all.find((c) => c.slug === slug) || {}).name || slug;
  const facetCats = new Map(Object.entries(page.facets.category || {}));
  for (const c of filters.categories) if (!facetCats.has(c)) facetCats.set(c, 0);
  const categoryEntries = [...facetCats].map(([slug, n]) => [slug, nameOf(slug), n]);
  const apply = (next) => refine(pageUrl('/search', next, { q: text }));
  const heading = text ? `Results for “${text}”` : 'All products';
  const dym = page.did_you_mean
    ? h('p', { class: 'dym' }, 'Did you mean ', h('a', { href: pageUrl('/search', { ...filters, cursor: '' }, { q: page.did_you_mean }) }, page.did_you_mean), '?')
    : null;
  show(heading,
    h('h1', null, heading, h('span', { class: 'count' }, `${page.total} ${page.total === 1 ? 'result' : 'results'}`)),
    dym,
    h('div', { class: 'results' },
      filterPanel({ filters, brandCounts: page.facets.brand, categoryEntries, priceBuckets: page.facets.price, sorts: SEARCH_SORTS, apply }),
      h('section', { class: 'hits', 'aria-label': 'Search results' },
        grid(page.items, true),
        pager('/search', filters, { q: text }, page.next_cursor))));
}

function attributeValue(value) {
  if (value === true) return 'Yes';
  if (value === false) return 'No';
  return String(value);
}

async function productView(id, signal) {
  let product;
  try {
    product = await api(`/api/products/${encodeURIComponent(id)}`, { signal });
  } catch (error) {
    if (error instanceof HttpError && (error.status === 404 || error.status === 400)) return notFoundView('Product');
    throw error;
  }
  const all = await categories().catch(() => []);
  const category = all.find((c) => c.slug === product.category);
  const main = h('div', { class: 'gallery-main' }, picture(product, 'page'));
  const images = shownImages(product).map((url, i) => ({ i, thumb: imageUrl(url, 'thumb') }));
  const thumbs = images.length > 1 ? h('ul', { class: 'thumbs', 'aria-label': 'More images' }, images.map(({ i, thumb }) =>
    h('li', null, h('button', { type: 'button', 'aria-label': `Show image ${i + 1}`, onclick: () => main.replaceChildren(picture(product, 'page', i)) },
      h('img', { src: thumb, alt: '', width: 64, height: 64, loading: 'lazy' }))))) : null;
  const attributes = Object.entries(product.attributes || {});
  show(product.name,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/' }, 'Home'), ' › ',
      h('a', { href: `/c/${encodeURIComponent(product.category)}` }, category ? category.name : product.category)),
    h('article', { class: 'product' },
      h('div', { class: 'gallery' }, main, thumbs),
      h('div', { class: 'info' },
        h('h1', null, product.name),
        product.brand && h('p', { class: 'card-brand' }, 'by ', product.brand),
        h('p', { class: 'price big', 'data-price-cents': product.price_cents }, money(product.price_cents, product.currency)),
        h('p', null, stockBadge(product.stock), product.stock > 0 ? h('span', { class: 'muted' }, ` ${product.stock} available`) : null),
        product.description && h('div', { class: 'description' }, product.description.split(/\n{2,}/).map((p) => h('p', null, p))),
        attributes.length ? h('table', { class: 'attrs' }, h('caption', null, 'Details'),
          h('tbody', null, attributes.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k.replace(/_/g, ' ')), h('td', null, attributeValue(v)))))) : null,
        h('p', { class: 'muted sku' }, 'SKU ', product.sku))));
}

// ---- router

let pendingFocus = false;
async function route() {
  const url = new URL(location.href);
  const position = url.searchParams.get('min_position');
  if (position && /^\d{1,18}$/.test(position)) minPosition = position;
  if (routeController) routeController.abort();
  const controller = new AbortController();
  routeController = controller;
  main.setAttribute('aria-busy', 'true');
  markCurrentCategory();
  closeSuggestions();
  const path = url.pathname;
  let match;
  try {
    if (path === '/' || path === '') await homeView(controller.signal);
    else if ((match = path.match(/^\/c\/([^/]+)\/?$/))) await listingView(decodeURIComponent(match[1]), url.searchParams, controller.signal);
    else if ((match = path.match(/^\/p\/([^/]+)\/?$/))) await productView(decodeURIComponent(match[1]), controller.signal);
    else if (path === '/search') await searchView(url.searchParams, controller.signal);
    else notFoundView('Page');
  } catch (error) {
    if (controller.signal.aborted) return;
    // A cursor from an older listing: start again from the first page.
    if (error instanceof HttpError && error.status === 400 && url.searchParams.has('cursor')) {
      url.searchParams.delete('cursor');
      history.replaceState(null, '', url.pathname + url.search);
      return route();
    }
    errorView(error);
  }
}
const ours = (pathname) => pathname === '/' || pathname === '/search' || /^\/(c|p)\/[^/]+\/?$/.test(pathname);
/** A filter change (a change and a submit of one input both come here: pushed once). */
function refine(href) {
  if (href !== location.pathname + location.search) go(href);
}
function go(href, state = null, focus = false) {
  history.pushState(state, '', href);
  pendingFocus = focus;
  route();
}
document.addEventListener('click', (event) => {
  const a = event.target.closest && event.target.closest('a[href]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !ours(url.pathname)) return;
  event.preventDefault();
  const state = a.dataset.cursors ? { cursors: JSON.parse(a.dataset.cursors) } : null;
  go(url.pathname + url.search, state, true);
  window.scrollTo(0, 0);
});
window.addEventListener('popstate', () => { pendingFocus = false; route(); });

// ---- search box with suggestions

const input = $('#q');
const list = $('#suggestions');
let options = [];
let active = -1;
let suggestTimer = 0;
let suggestController = null;

function closeSuggestions() {
  list.hidden = true;
  input.setAttribute('aria-expanded', 'false');
  input.removeAttribute('aria-activedescendant');
  active = -1;
}
function setActive(index) {
  const items = list.querySelectorAll('[role=option]');
  items.forEach((el, i) => el.setAttribute('aria-selected', String(i === index)));
  active = index;
  if (index >= 0 && items[index]) {
    input.setAttribute('aria-activedescendant', items[index].id);
    items[index].scrollIntoView({ block: 'nearest' });
  } else input.removeAttribute('aria-activedescendant');
}
function choose(option) {
  closeSuggestions();
  if (option.product) go(`/p/${encodeURIComponent(option.product.id)}`, null, true);
  else { input.value = option.query; go(`/search?${new URLSearchParams({ q: option.query })}`, null, true); }
}
function renderSuggestions(data) {
  options = [...(data.queries || []).map((query) => ({ query })), ...(data.products || []).map((product) => ({ product }))];
  if (!options.length || document.activeElement !== input) return closeSuggestions();
  const items = [];
  let n = 0;
  const option = (o, content) => {
    const index = n++;
    return h('li', { role: 'option', id: `sug-${index}`, class: o.product ? 'opt product' : 'opt', 'aria-selected': 'false',
      onmousedown: (e) => e.preventDefault(), onclick: () => choose(options[index]) }, content);
  };
  if (data.queries && data.queries.length) {
    items.push(h('li', { role: 'presentation', class: 'group' }, 'Searches'));
    for (const o of options.filter((x) => x.query != null)) items.push(option(o, o.query));
  }
  if (data.products && data.products.length) {
    items.push(h('li', { role: 'presentation', class: 'group' }, 'Products'));
    for (const o of options.filter((x) => x.product)) {
      items.push(option(o, [h('span', null, o.product.name), h('span', { class: 'price' }, money(o.product.price_cents, o.product.currency))]));
    }
  }
  list.replaceChildren(...items);
  list.hidden = false;
  input.setAttribute('aria-expanded', 'true');
  setActive(-1);
}
async function suggest(text) {
  if (suggestController) suggestController.abort();
  const controller = new AbortController();
  suggestController = controller;
  try {
    const data = await api(`/api/search/suggest?${new URLSearchParams({ q: text, limit: '5' })}`, { signal: controller.signal, retry: false });
    if (input.value === text) renderSuggestions(data);
  } catch (error) {
    if (error.name !== 'AbortError') closeSuggestions();
  }
}
input.addEventListener('input', () => {
  clearTimeout(suggestTimer);
  setActive(-1);
  const text = input.value;
  if (!text.trim()) {
    if (suggestController) suggestController.abort();
    return closeSuggestions();
  }
  suggestTimer = setTimeout(() => suggest(text), 150);
});
input.addEventListener('keydown', (event) => {
  const open = !list.hidden;
  if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
    if (!open) { if (options.length && input.value.trim()) { list.hidden = false; input.setAttribute('aria-expanded', 'true'); } return; }
    event.preventDefault();
    const count = options.length;
    setActive(event.key === 'ArrowDown' ? (active + 1) % count : (active <= 0 ? count - 1 : active - 1));
  } else if (event.key === 'Enter' && open && active >= 0) {
    event.preventDefault();
    choose(options[active]);
  } else if (event.key === 'Escape' && open) {
    event.preventDefault();
    closeSuggestions();
  }
});
input.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== input) closeSuggestions(); }, 100));
$('#search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  clearTimeout(suggestTimer);
  if (suggestController) suggestController.abort();
  closeSuggestions();
  go(`/search?${new URLSearchParams({ q: input.value.trim() })}`, null, true);
});

renderCategoryNav();
route();
