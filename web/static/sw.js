// athena-edge demo service worker: lets the page load with the network off.
// Network first (so a rebuilt core or page shows at once), falling back to
// the copy cached by the last successful load. Only the page's own files go
// through it; the API (/v1/...) is never cached.
'use strict';

const CACHE = 'athena-edge-shell-v1';
const SHELL = ['/', '/style.css', '/app.js', '/wasm_exec.js', '/athena.wasm'];

self.addEventListener('install', (ev) => {
  ev.waitUntil(self.skipWaiting());
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== 'GET' || url.origin !== self.location.origin) return;
  const path = url.pathname === '/index.html' ? '/' : url.pathname;
  if (!SHELL.includes(path)) return;
  ev.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const resp = await fetch(ev.request);
      if (resp.ok) await cache.put(path, resp.clone());
      return resp;
    } catch (err) {
      const hit = await cache.match(path);
      if (hit) return hit;
      throw err;
    }
  })());
});
