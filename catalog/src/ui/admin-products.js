// Catalog admin console: the product list at /admin (browse by category and sort, or search).

import { $, h, getJson, money, statusPill, UUID, fillCategorySelect, viewGeneration, nextView } from './admin-core.js';
import { showSection, go } from './admin.js';

// ---- products list

let listStack = [];

export async function productsView() {
  const generation = nextView();
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
