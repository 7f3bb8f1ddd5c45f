// Front-end dev server for the Catalog web UI (no dependencies; node >= 18).
//
// Serves the pages exactly as the catalog binary does (same routes, same Content-Security-Policy)
// straight from catalog/src/ui/, so edits show on reload without rebuilding the Rust binary,
// and proxies everything else (/api, /images, /.well-known, …) to a running catalog:
//
//   CATALOG_ADMIN_EMAIL=admin@example.com CATALOG_ADMIN_PASSWORD=admin-password-123 \
//     target/debug/catalog serve --demo --listen 127.0.0.1:18080 --data-dir /tmp/ui-data
//   CATALOG_UPSTREAM=http://127.0.0.1:18080 node tests/browser/dev-server.mjs   # → http://127.0.0.1:8090
//
// Environment:
//   CATALOG_UPSTREAM  the catalog to proxy to (default http://127.0.0.1:18080)
//   DEV_LISTEN        host:port to listen on (default 127.0.0.1:8090)
//   DEV_SHIMS         comma-separated stand-ins for routes an older binary lacks (default none):
//     session  /api/auth/session[/refresh] (cookie session) translated to /api/auth/login,
//              /api/auth/refresh and /api/auth/logout;
//     images   POST/DELETE /api/products/{id}/images[/{image_id}] kept in this process's memory
//              (served under /images/dev/, no resizing: the thumbnail is the same bytes) and
//              written to the product with PATCH {"images": [...]}.
//
// Then: CATALOG_URL=http://127.0.0.1:8090 node tests/browser/run.mjs

import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const uiDir = path.resolve(here, '../../catalog/src/ui');
const upstream = new URL(process.env.CATALOG_UPSTREAM || 'http://127.0.0.1:18080');
const [host, port] = (process.env.DEV_LISTEN || '127.0.0.1:8090').split(':');
const shims = new Set((process.env.DEV_SHIMS || '').split(',').map((s) => s.trim()).filter(Boolean));
const origin = `http://${host}:${port}`;

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
  + "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
const SECURITY = { 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer' };

function pageFor(pathname) {
  if (pathname === '/' || pathname === '/search' || /^\/(c|p)\/[^/]+\/?$/.test(pathname)) return 'storefront.html';
  if (pathname === '/admin' || pathname.startsWith('/admin/')) return 'admin.html';
  const m = pathname.match(/^\/ui\/([A-Za-z0-9._-]+)$/);
  return m && !m[1].startsWith('.') ? m[1] : null;
}

async function serveUi(res, file, method) {
  let body;
  try { body = await readFile(path.join(uiDir, file)); } catch { return problem(res, 404, 'not found', `no UI file ${file}`); }
  res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream', 'Content-Length': body.length,
    'Cache-Control': 'no-cache', 'Content-Security-Policy': CSP, ...SECURITY });
  res.end(method === 'HEAD' ? undefined : body);
}

function problem(res, status, title, detail, extra = {}) {
  const body = JSON.stringify({ type: 'about:blank', title, status, detail });
  res.writeHead(status, { 'Content-Type': 'application/problem+json', ...extra });
  res.end(body);
}

const readBody = (req) => new Promise((resolve, reject) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => resolve(Buffer.concat(chunks)));
  req.on('error', reject);
});

/** Streams the request to the upstream catalog and its answer back (SSE included). */
function proxy(req, res, body) {
  const headers = { ...req.headers, host: upstream.host };
  if (body) headers['content-length'] = String(body.length);
  const out = http.request({ hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers }, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  out.on('error', (error) => { if (!res.headersSent) problem(res, 502, 'bad gateway', `upstream ${upstream.origin}: ${error.message}`); else res.destroy(); });
  res.on('close', () => out.destroy());
  if (body) out.end(body); else req.pipe(out);
}

/** One JSON call to the upstream (for the shims). */
async function call(method, pathname, { headers = {}, json } = {}) {
  const res = await fetch(new URL(pathname, upstream), {
    method, headers: { ...headers, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: json !== undefined ? JSON.stringify(json) : undefined,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? (() => { try { return JSON.parse(text); } catch { return null; } })() : null };
}
function relay(res, answer, extra = {}) {
  const headers = { 'Content-Type': answer.headers.get('content-type') || 'application/json', ...extra };
  for (const name of ['retry-after', 'x-position', 'x-request-id', 'location']) if (answer.headers.get(name)) headers[name] = answer.headers.get(name);
  res.writeHead(answer.status, headers);
  res.end(answer.status === 204 ? undefined : answer.text);
}

// ---- session shim -----------------------------------------------------------------------

const COOKIE = 'catalog_refresh';
const cookieOf = (req) => (req.headers.cookie || '').split(';').map((p) => p.trim().split('=')).find(([k]) => k === COOKIE)?.[1] || '';
const setCookie = (value, age) => `${COOKIE}=${value}; Path=/api/auth/session; Max-Age=${age}; HttpOnly; Secure; SameSite=Strict`;

async function sessionShim(req, res, pathname) {
  if (req.headers['x-catalog-csrf'] !== '1') return problem(res, 403, 'forbidden', 'session calls must carry the header X-Catalog-CSRF: 1');
  const body = await readBody(req);
  const forward = { 'x-forwarded-for': req.socket.remoteAddress };
  let answer;
  if (pathname === '/api/auth/session' && req.method === 'POST') {
    let credentials;
    try { credentials = JSON.parse(body.toString() || '{}'); } catch { return problem(res, 400, 'bad request', 'malformed JSON'); }
    answer = await call('POST', '/api/auth/login', { json: credentials, headers: forward });
  } else if (pathname === '/api/auth/session/refresh' && req.method === 'POST') {
    const token = cookieOf(req);
    if (!token) return problem(res, 401, 'unauthorized', 'no session');
    answer = await call('POST', '/api/auth/refresh', { json: { refresh_token: token }, headers: forward });
  } else if (pathname === '/api/auth/session' && req.method === 'DELETE') {
    const token = cookieOf(req);
    if (token) await call('POST', '/api/auth/logout', { json: { refresh_token: token } });
    res.writeHead(204, { 'Set-Cookie': setCookie('', 0) });
    return res.end();
  } else return problem(res, 405, 'method not allowed', 'no such session route');
  if (answer.status !== 200 || !answer.json) return relay(res, answer, answer.status === 401 ? { 'Set-Cookie': setCookie('', 0) } : {});
  const { refresh_token: refresh, ...pair } = answer.json;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Set-Cookie': setCookie(refresh, 86400) });
  res.end(JSON.stringify(pair));
}

// ---- images shim ------------------------------------------------------------------------

const images = new Map();
const MAX_IMAGE = 10 * 1024 * 1024;

function dimensions(buf, type) {
  if (type === 'image/png' && buf.length > 24 && buf.readUInt32BE(0) === 0x89504e47) return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
  if (type === 'image/jpeg' && buf[0] === 0xff && buf[1] === 0xd8) {
    for (let i = 2; i + 9 < buf.length;) {
      if (buf[i] !== 0xff) return null;
      const marker = buf[i + 1];
      const len = buf.readUInt16BE(i + 2);
      if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) return [buf.readUInt16BE(i + 7), buf.readUInt16BE(i + 5)];
      i += 2 + len;
    }
    return null;
  }
  if (type === 'image/webp' && buf.length > 30 && buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP') return [0, 0];
  return null;
}

async function imagesShim(req, res, id, imageId) {
  const auth = { authorization: req.headers.authorization || '' };
  const ifMatch = req.headers['if-match'] ? { 'if-match': req.headers['if-match'] } : {};
  const current = await call('GET', `/api/products/${id}`, { headers: auth });
  if (current.status !== 200) return relay(res, current);
  const list = current.json.images || [];
  if (req.method === 'POST' && !imageId) {
    const type = String(req.headers['content-type'] || '').split(';')[0].trim();
    if (!['image/jpeg', 'image/png', 'image/webp'].includes(type)) return problem(res, 415, 'unsupported media type', 'send image/jpeg, image/png or image/webp');
    if (Number(req.headers['content-length'] || 0) > MAX_IMAGE) { req.resume(); return problem(res, 413, 'payload too large', 'an image is at most 10 MiB'); }
    const body = await readBody(req);
    if (body.length > MAX_IMAGE) return problem(res, 413, 'payload too large', 'an image is at most 10 MiB');
    const size = dimensions(body, type);
    if (!size) return problem(res, 422, 'unprocessable', 'the image cannot be decoded');
    const key = randomUUID();
    images.set(key, { type, body });
    const url = `${origin}/images/dev/${key}.page.jpg`;
    const answer = await call('PATCH', `/api/products/${id}`, { headers: { ...auth, ...ifMatch }, json: { images: [...list, url] } });
    if (answer.status !== 200) { images.delete(key); return relay(res, answer); }
    res.writeHead(201, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ ...answer.json, image: { id: key, url, thumbnail_url: url.replace('.page.jpg', '.thumb.jpg'), width: size[0], height: size[1] } }));
  }
  if (req.method === 'DELETE' && imageId) {
    const kept = list.filter((u) => !u.includes(`/${imageId}.page.jpg`));
    if (kept.length === list.length) return problem(res, 404, 'not found', 'no such image on this product');
    const answer = await call('PATCH', `/api/products/${id}`, { headers: { ...auth, ...ifMatch }, json: { images: kept } });
    if (answer.status !== 200) return relay(res, answer);
    res.writeHead(204, { 'X-Position': String(answer.json.position) });
    return res.end();
  }
  return problem(res, 405, 'method not allowed', 'POST an image or DELETE one');
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, origin);
    const file = (req.method === 'GET' || req.method === 'HEAD') && pageFor(url.pathname);
    if (file) return await serveUi(res, file, req.method);
    if (shims.has('session') && url.pathname.startsWith('/api/auth/session')) return await sessionShim(req, res, url.pathname);
    if (shims.has('images')) {
      const m = url.pathname.match(/^\/api\/products\/([0-9a-f-]{36})\/images(?:\/([0-9a-f-]{36}))?$/);
      if (m) return await imagesShim(req, res, m[1], m[2]);
      const served = url.pathname.match(/^\/images\/dev\/([0-9a-f-]{36})\.(page|thumb)\.jpg$/);
      if (served && images.has(served[1])) {
        const { type, body } = images.get(served[1]);
        res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, 'Cache-Control': 'public, max-age=31536000, immutable' });
        return res.end(req.method === 'HEAD' ? undefined : body);
      }
    }
    return proxy(req, res);
  } catch (error) {
    if (!res.headersSent) problem(res, 502, 'dev server error', String(error && error.message));
    else res.destroy();
  }
});
server.listen(Number(port), host, () => console.log(`dev server on ${origin} → ${upstream.origin}${shims.size ? ` (shims: ${[...shims].join(', ')})` : ''}`));
