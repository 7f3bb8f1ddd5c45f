// Catalog admin console: the bulk import at /admin/import (a CSV or NDJSON file, sent to
// POST /api/products/bulk in chunks of 100 rows).

import { $, h, sleep, notice, lastPosition, setLastPosition, request } from './admin-core.js';

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
          if (positions.length) setLastPosition(Math.max(lastPosition, ...positions));
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
