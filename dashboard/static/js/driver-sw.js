/* The driver page's service worker (served at /routes/sw.js, scope /routes, after a preamble that defines
 * RZ_CONFIG: version, scope, assets, static, tiles; see dashboard/views/driver_app.py).
 *
 * - The app's assets (CSS, scripts, Leaflet, icons) are kept when it installs, per version: cache first.
 * - Route pages, the route list and GPX files: network first, so a driver with a connection sees the
 *   current plan; with none (or none answering within NETWORK_WAIT_MS) the copy kept on the phone. These
 *   copies outlive a new version of the app (a new release must not lose a driver's route).
 * - Same-origin map tiles are kept as they are seen.
 * - The PMTiles basemap (RZ_CONFIG.basemap, read by Range requests) is kept per file (RZ_CONFIG.basemapId):
 *   whole, once a route page is shown, when it is small (basemapWhole); else each range as it is read. Offline,
 *   a range is answered (206) from the whole copy or from the same range kept before.
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
var BASEMAP = "rz-driver-basemap-" + RZ_CONFIG.basemapId;
var RANGES_KEPT = 400;

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(ASSETS).then(function (cache) {
    return cache.addAll(RZ_CONFIG.assets);
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (key) {
      return (key.indexOf("rz-driver-assets-") === 0 && key !== ASSETS) ||
        (key.indexOf("rz-driver-basemap-") === 0 && key !== BASEMAP);
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

function isBasemap(url) { return !!RZ_CONFIG.basemap && url.pathname === RZ_CONFIG.basemap; }

function keyOf(url) { var u = new URL(url); u.hash = ""; return u.href; }

function keepable(response) {
  return response && response.ok && !response.redirected && response.type === "basic" && response.status === 200;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.indexOf("/api/") === 0) return;
  if (isBasemap(url)) event.respondWith(basemapRange(request));
  else if (isAsset(url)) event.respondWith(cacheFirst(request, ASSETS));
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

/* "bytes=a-b" of a file of `size` bytes as [a, b] (inclusive), or null. */
function span(range, size) {
  var m = /^bytes=(\d*)-(\d*)$/.exec(range || "");
  if (!m || (m[1] === "" && m[2] === "")) return null;
  var first = m[1] === "" ? Math.max(0, size - Number(m[2])) : Number(m[1]);
  var last = m[1] === "" || m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  return first <= last ? [first, last] : null;
}

function partial(body, first, last, size, from) {
  return new Response(body, {status: 206, headers: {
    "Content-Type": "application/vnd.pmtiles",
    "Content-Range": "bytes " + first + "-" + last + "/" + size,
    "Content-Length": String(last - first + 1),
    "ETag": from.headers.get("ETag") || ""
  }});
}

/* A range of the basemap: from the whole copy, else from the same range kept before, else the network
 * (keeping what it sends). Ranges are kept as 200s, since a cache takes no 206. */
function basemapRange(request) {
  var range = request.headers.get("Range");
  var whole = keyOf(request.url);
  var rangeKey = whole + (whole.indexOf("?") < 0 ? "?" : "&") + "rz-range=" + encodeURIComponent(range || "");
  return caches.open(BASEMAP).then(function (cache) {
    return cache.match(whole).then(function (copy) {
      if (copy && range) {
        return copy.arrayBuffer().then(function (bytes) {
          var s = span(range, bytes.byteLength);
          if (!s) return new Response(null, {status: 416, headers: {"Content-Range": "bytes */" + bytes.byteLength}});
          return partial(bytes.slice(s[0], s[1] + 1), s[0], s[1], bytes.byteLength, copy);
        });
      }
      if (copy) return copy;
      return cache.match(rangeKey).then(function (kept) {
        var network = fetch(request).then(function (response) {
          if (response.status === 206 && response.type === "basic") {
            var sent = response.clone();
            sent.arrayBuffer().then(function (bytes) {
              return cache.put(rangeKey, new Response(bytes, {status: 200, headers: {
                "ETag": sent.headers.get("ETag") || "", "X-Rz-Content-Range": sent.headers.get("Content-Range") || ""
              }}));
            }).catch(function () {});
          }
          return response;
        });
        if (!kept) return network;
        return network.catch(function () {
          var m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(kept.headers.get("X-Rz-Content-Range") || "");
          if (!m) return Response.error();
          return kept.arrayBuffer().then(function (bytes) {
            return partial(bytes, Number(m[1]), Number(m[2]), Number(m[3]), kept);
          });
        });
      });
    });
  });
}

/* Keep the small basemap whole (once per file), so any view of it opens offline. */
function keepBasemap() {
  if (!RZ_CONFIG.basemap || !RZ_CONFIG.basemapWhole) return Promise.resolve(0);
  var url = new URL(RZ_CONFIG.basemap, self.location.href).href;
  return caches.open(BASEMAP).then(function (cache) {
    return cache.match(url).then(function (hit) {
      if (hit) return 1;
      return fetch(url, {credentials: "same-origin"}).then(function (response) {
        if (!keepable(response)) return 0;
        return cache.put(url, response).then(function () { return 1; });
      }).catch(function () { return 0; });
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
  event.waitUntil(Promise.all([keep(data.urls), keepBasemap()]).then(function (counts) {
    if (port) port.postMessage({type: "kept", count: counts[0] + counts[1]});
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

/* Tiles and basemap ranges are kept as seen; the oldest go once there are more than TILES_KEPT tiles or
 * RANGES_KEPT ranges (a phone's storage is small). */
function trimTiles() {
  function trim(name, most) {
    return caches.open(name).then(function (cache) {
      return cache.keys().then(function (keys) {
        return Promise.all(keys.slice(0, Math.max(0, keys.length - most)).map(function (k) {
          return cache.delete(k);
        }));
      });
    });
  }
  return Promise.all([trim(TILES, TILES_KEPT), trim(BASEMAP, RANGES_KEPT)]);
}
