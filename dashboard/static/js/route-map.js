/* Driver page: the route on a small map. The path joins the visits in order; each site has one marker,
 * labelled with the numbers of its visits ("2·5" when the route comes back), so markers never hide each
 * other. Under it, the dashboard's tile server if it has one, else its PMTiles basemap (the service worker
 * keeps both for offline use).
 * RhizomeRouteMap.show(n) centres the map on visit n ("On the map" on each card). */
(function () {
  "use strict";
  var box = document.getElementById("rz-route-map");
  var source = document.getElementById("rz-route-data");
  var api = {show: function () {}};
  window.RhizomeRouteMap = api;
  if (!box || !source) return;
  var data = JSON.parse(source.textContent);
  if (!window.L || !data.markers.length) { box.hidden = true; return; }
  var map = L.map(box, {maxZoom: data.maxZoom || 18});
  if (data.tiles) {
    // the attribution arrives HTML-escaped from the server
    L.tileLayer(data.tiles, {attribution: data.attribution, maxZoom: data.maxZoom || 18}).addTo(map);
  } else if (data.basemap && window.protomapsL) {
    // the map page's PMTiles basemap (coast, borders, places), read by ranges; the worker keeps it offline
    var base = protomapsL.leafletLayer({
      url: data.basemap.url, flavor: "light", lang: "en", attribution: data.basemap.attribution,
      maxDataZoom: data.basemap.maxDataZoom
    });
    base.on("load", function () { api.basemapLoadedAt = performance.now(); });
    base.addTo(map);
  }
  L.polyline(data.path, {color: "#1f5fa8", weight: 4, opacity: 0.8}).addTo(map);
  var byVisit = {};
  data.markers.forEach(function (m) {
    var text = m.visits.join("\u00b7");
    var label = document.createElement("span");
    label.textContent = text;
    var width = Math.max(28, 10 + 8 * text.length);
    var marker = L.marker([m.lat, m.lon], {
      title: m.site,
      icon: L.divIcon({html: label, className: "rz-stop-icon rz-stop-" + m.status, iconSize: [width, 28]})
    }).addTo(map).bindTooltip(function () {
      var tip = document.createElement("span");
      tip.textContent = text + ". " + m.site;
      return tip;
    });
    m.visits.forEach(function (n) { byVisit[n] = marker; });
  });
  map.fitBounds(data.path, {padding: [24, 24], maxZoom: 15});
  api.show = function (n) {
    var marker = byVisit[n];
    if (!marker) return;
    box.scrollIntoView({behavior: "smooth", block: "center"});
    map.setView(marker.getLatLng(), Math.max(map.getZoom(), 14), {animate: false});
    marker.openTooltip();
  };
  api.map = map;
})();
