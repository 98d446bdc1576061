/* The driver page's service worker (served at /routes/sw.js, scope /routes, after a preamble that defines
 * RZ_CONFIG: version, scope, assets, static, tiles; see dashboard/views/driver_app.py).
 *
 * - The app's assets (CSS, scripts, Leaflet, icons) are kept when it installs, per version: cache first.
 * - Route pages, the route list and GPX files: network first, so a driver with a connection sees the
 *   current plan; with none (or none answering within NETWORK_WAIT_MS) the copy kept on the phone. These
 *   copies outlive a new version of the app (a new release must not lose a driver's route).
 * - Same-origin map tiles are kept as they are seen.
 * - Nothing else is touched: writes (POST) and /api/ always go to the network, so an action is never
 *   answered from a cache; the page's queue (driver-queue.js) holds them while offline.
 * The page sends {type: "keep", urls, page} once it is shown, so the first visit (not yet controlled by this
 * worker) is kept too; the worker answers {type: "kept", count} on the message's port.
 */
/* global RZ_CONFIG */
"use strict";

var ASSETS = "rz-driver-assets-" + RZ_CONFIG.version;
var PAGES = "rz-driver-pages";
var TILES = "rz-driver-tiles";
var NETWORK_WAIT_MS = 6000;
var TILES_KEPT = 600;

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(ASSETS).then(function (cache) {
    return cache.addAll(RZ_CONFIG.assets);
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (key) {
      return key.indexOf("rz-driver-assets-") === 0 && key !== ASSETS;
    }).map(function (key) { return caches.delete(key); }));
  }).then(function () { return self.clients.claim(); }));
});

function inScope(url) {
  var path = url.pathname;
  if (path === RZ_CONFIG.scope + "/sw.js" || path === RZ_CONFIG.scope + "/manifest.webmanifest") return false;
  return path === RZ_CONFIG.scope || path.indexOf(RZ_CONFIG.scope + "/") === 0;
}

function isAsset(url) { return url.pathname.indexOf(RZ_CONFIG.static) === 0; }

function isTile(url) { return !!RZ_CONFIG.tiles && url.pathname.indexOf(RZ_CONFIG.tiles) === 0; }

function keyOf(url) { var u = new URL(url); u.hash = ""; return u.href; }

function keepable(response) {
  return response && response.ok && !response.redirected && response.type === "basic" && response.status === 200;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.indexOf("/api/") === 0) return;
  if (isAsset(url)) event.respondWith(cacheFirst(request, ASSETS));
  else if (isTile(url)) event.respondWith(cacheFirst(request, TILES));
  else if (request.mode === "navigate" || inScope(url)) event.respondWith(networkFirst(request));
});

function cacheFirst(request, name) {
  return caches.open(name).then(function (cache) {
    return cache.match(request, {ignoreVary: true}).then(function (hit) {
      if (hit) return hit;
      return fetch(request).then(function (response) {
        if (keepable(response)) cache.put(request, response.clone());
        return response;
      });
    });
  });
}

function networkFirst(request) {
  var key = keyOf(request.url);
  return caches.open(PAGES).then(function (cache) {
    var network = fetch(request).then(function (response) {
      if (keepable(response) && inScope(new URL(request.url))) cache.put(key, response.clone());
      return response;
    });
    var late = new Promise(function (resolve) { setTimeout(function () { resolve(null); }, NETWORK_WAIT_MS); });
    return Promise.race([network.catch(function () { return null; }), late]).then(function (response) {
      if (response) return response;
      return cache.match(key, {ignoreVary: true}).then(function (hit) {
        return hit || network.catch(function () { return offlinePage(cache); });
      });
    });
  });
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
  });
}

/* No connection and no copy of this page: say so, and list what is kept on the phone. */
function offlinePage(cache) {
  return cache.keys().then(function (requests) {
    var links = requests.map(function (r) { return new URL(r.url); }).filter(function (u) {
      return /^\/routes\/\d+$/.test(u.pathname) || u.pathname === RZ_CONFIG.scope;
    }).map(function (u) {
      var name = u.pathname === RZ_CONFIG.scope ? "My routes" : "Route " + u.pathname.split("/").pop();
      return '<li><a href="' + escapeHtml(u.pathname) + '">' + escapeHtml(name) + "</a></li>";
    });
    var body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">" +
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Rhizome · offline</title>" +
      "<style>body{font:16px/1.4 system-ui,sans-serif;margin:1rem}a{display:inline-block;min-height:48px;" +
      "line-height:48px}</style></head><body><h1>No connection</h1>" +
      "<p>This page was not saved on this phone. Routes saved here open without a connection:</p><ul>" +
      (links.join("") || "<li>none yet: open your route once while online</li>") + "</ul></body></html>";
    return new Response(body, {status: 503, headers: {"Content-Type": "text/html; charset=utf-8"}});
  });
}

/* The page asks to keep itself, its GPX and what it loaded before this worker controlled it. */
self.addEventListener("message", function (event) {
  var data = event.data || {};
  if (data.type !== "keep" || !Array.isArray(data.urls)) return;
  var port = event.ports && event.ports[0];
  event.waitUntil(keep(data.urls).then(function (count) {
    if (port) port.postMessage({type: "kept", count: count});
    return trimTiles();
  }, function (error) {
    if (port) port.postMessage({type: "failed", error: String(error)});
  }));
});

function keep(urls) {
  var wanted = urls.map(function (u) { return new URL(u, self.location.href); }).filter(function (u) {
    return u.origin === self.location.origin && (inScope(u) || isAsset(u) || isTile(u));
  });
  return Promise.all(wanted.map(function (url) {
    var name = isAsset(url) ? ASSETS : isTile(url) ? TILES : PAGES;
    return caches.open(name).then(function (cache) {
      var key = keyOf(url.href);
      var refresh = name === PAGES;  // pages and GPX: the current copy; assets and tiles: once
      return (refresh ? Promise.resolve(null) : cache.match(key)).then(function (hit) {
        if (hit) return 1;
        return fetch(key, {credentials: "same-origin"}).then(function (response) {
          if (!keepable(response)) return 0;
          return cache.put(key, response).then(function () { return 1; });
        }).catch(function () { return 0; });  // the connection dropped: keep what was kept before
      });
    });
  })).then(function (kept) { return kept.reduce(function (a, b) { return a + b; }, 0); });
}

/* Tiles are kept as seen; the oldest go once there are more than TILES_KEPT (a phone's storage is small). */
function trimTiles() {
  return caches.open(TILES).then(function (cache) {
    return cache.keys().then(function (keys) {
      return Promise.all(keys.slice(0, Math.max(0, keys.length - TILES_KEPT)).map(function (k) {
        return cache.delete(k);
      }));
    });
  });
}
