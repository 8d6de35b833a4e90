// wschat's service worker: keeps the web client so that it opens with the server down (an
// installed page, a reload) and says "Reconnecting" instead of showing a browser error.
// Network first: while the server answers, every load gets the current page (and refreshes the
// copy kept here); only when it does not is the kept copy used. Nothing else is touched:
// the chat itself is a WebSocket, and shared files (/media/) are never kept here.
'use strict';
const CACHE = 'wschat-page-v1';
const KEPT = ['./', 'manifest.webmanifest', 'icons/icon.svg', 'icons/icon-192.png'];
const scope = new URL(self.registration.scope);
const keptPaths = new Set(KEPT.map((p) => new URL(p, scope).pathname));

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(KEPT)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== scope.origin || !keptPaths.has(url.pathname)) return;
  event.respondWith(
    fetch(request).then((response) => {
      if (response.ok) {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((cache) => cache.put(url.pathname, copy)));
      }
      return response;
    }).catch(() => caches.match(url.pathname).then((kept) => kept || Response.error())),
  );
});
