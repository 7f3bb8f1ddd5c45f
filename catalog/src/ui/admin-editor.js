// Catalog admin console: one product at /admin/products/{id} (details, price, stock,
// visibility and images, each written with If-Match) and a new one at /admin/products/new.

import {
  $, h, sleep, HttpError, notice, lastPosition, getJson, send,
  money, units, digitsOf, storefrontLink, statusPill, fillCategorySelect, viewGeneration, nextView,
} from './admin-core.js';
import { showSection, go } from './admin.js';

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

export async function editView(id) {
  const generation = nextView();
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
