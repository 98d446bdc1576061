/* Geography on the Rhizome map, all served by the app: the PMTiles basemap (protomaps-leaflet, reading the
 * file by HTTP Range requests), the areas (municipios) shaded by their communities' worst shortage, and the
 * community names as labels that do not overlap. Loaded after map.js; RhizomeMap.draw() uses it.
 *
 * An area takes the communities of its name (accents and case aside), then those inside it that matched no
 * name; an area with none is drawn as an outline; a community with no area still has its circle. */
(function () {
  "use strict";

  var R = window.RhizomeMap, el = R.util.el;
  var LEVEL_COLOURS = {critical: "#d62728", short: "#ff7f0e", ok: "#2ca02c"};
  var AREA_PANE = "rz-areas";  // under the markers' canvas, over the basemap
  var MAX_LABELS = 150, LABEL_HEIGHT = 16, CHAR_WIDTH = 6.6;

  // The page's "basemap" block ({name, url, attribution, maxDataZoom, active}) as a base layer.
  function basemap() {
    var block = document.getElementById("rz-data-basemap");
    if (!block || !window.protomapsL) return null;
    var spec = JSON.parse(block.textContent);
    var layer = protomapsL.leafletLayer({
      url: spec.url, flavor: "light", lang: "en", attribution: spec.attribution, maxDataZoom: spec.maxDataZoom
    });
    layer.on("load", function () { R.registry.basemapLoadedAt = performance.now(); });  // every tile in view
    return {name: spec.name, layer: layer, active: spec.active};
  }

  function key(name) {
    return String(name).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase().replace(/\s+/g, " ").trim();
  }

  function inRing(ring, x, y) {  // ring: [[lon, lat], ...]; even-odd rule
    var inside = false;
    for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }

  function contains(area, lon, lat) {
    var b = area.bbox;
    if (lon < b[0] || lon > b[2] || lat < b[1] || lat > b[3]) return false;
    return area.polygons.some(function (polygon) {
      var hit = inRing(polygon[0], lon, lat);
      for (var h = 1; hit && h < polygon.length; h++) if (inRing(polygon[h], lon, lat)) hit = false;
      return hit;
    });
  }

  function prepare(feature) {
    var g = feature.geometry || {};
    var polygons = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
    var bbox = [Infinity, Infinity, -Infinity, -Infinity];
    polygons.forEach(function (p) {
      p[0].forEach(function (c) {
        bbox[0] = Math.min(bbox[0], c[0]); bbox[1] = Math.min(bbox[1], c[1]);
        bbox[2] = Math.max(bbox[2], c[0]); bbox[3] = Math.max(bbox[3], c[1]);
      });
    });
    var name = (feature.properties && feature.properties.name) || "";
    return {feature: feature, name: name, polygons: polygons, bbox: bbox, level: null, communities: 0};
  }

  // Each area's worst level (an index into options.levels) from the communities it takes.
  function match(areas, rows) {
    var byName = {};
    areas.forEach(function (a) { (byName[key(a.name)] = byName[key(a.name)] || []).push(a); });
    rows.forEach(function (row) {  // [slug, name, lat, lon, radius, level index]
      var named = byName[key(row[1])];
      var found = named && named.length === 1 ? named[0] : null;
      if (!found) {
        for (var i = 0; i < areas.length && !found; i++) if (contains(areas[i], row[3], row[2])) found = areas[i];
      }
      if (!found) return;
      found.communities += 1;
      found.level = found.level === null ? row[5] : Math.min(found.level, row[5]);
    });
  }

  function areas(options) {
    var group = L.featureGroup(), registry = R.registry;
    function drawAreas(geo) {
      var map = registry.map;
      if (!map.getPane(AREA_PANE)) {
        map.createPane(AREA_PANE).style.zIndex = 350;
      }
      var renderer = L.svg({pane: AREA_PANE, padding: 0.3});
      var list = (geo.features || []).map(prepare);
      match(list, R.util.data("communities"));
      list.forEach(function (a) {
        var level = a.level === null ? null : options.levels[a.level];
        var layer = L.geoJSON(a.feature, {
          renderer: renderer, interactive: false,
          style: {
            color: "#555555", weight: 0.8, opacity: 0.7,
            fill: level !== null, fillColor: level ? LEVEL_COLOURS[level] : "#ffffff", fillOpacity: 0.28,
            className: "rz-area rz-area-" + (level || "none")
          }
        });
        group.addLayer(layer);
      });
      registry.areas = list.map(function (a) {  // for the tests: which level each area was given
        return {name: a.name, level: a.level === null ? null : options.levels[a.level], communities: a.communities};
      });
      registry.areasDrawn = list.length;
      registry.areasDrawnAt = performance.now();  // read by bench/map.py
      registry.areasMatched = list.filter(function (a) { return a.level !== null; }).length;
    }
    R.util.getJson(options.url)
      .then(function (geo) {
        if (group._map) drawAreas(geo); else group.once("add", function () { drawAreas(geo); });
      })
      .catch(function (error) {
        registry.areasError = String(error.message || error);
        if (window.console) console.error("areas: " + registry.areasError);
      });
    return group;
  }

  // Community names, largest first, each placed right of its circle unless it would cover a name already
  // placed; recomputed after each zoom or pan, for what is on screen, at most MAX_LABELS of them.
  function labels() {
    var group = L.layerGroup(), shown = {}, registry = R.registry;
    var rows = R.util.data("communities");  // largest first
    function place() {
      var map = registry.map;
      if (!map || !map.hasLayer(group)) return;
      var bounds = map.getBounds(), boxes = [], keep = {}, placed = 0;
      for (var i = 0; i < rows.length && placed < MAX_LABELS; i++) {
        var row = rows[i], at = L.latLng(row[2], row[3]);
        if (!bounds.contains(at)) continue;
        var p = map.latLngToLayerPoint(at), left = p.x + row[4] + 3;
        var box = [left, p.y - LABEL_HEIGHT / 2, left + String(row[1]).length * CHAR_WIDTH + 6, p.y + LABEL_HEIGHT / 2];
        var clash = false;
        for (var b = 0; b < boxes.length && !clash; b++) {
          var o = boxes[b];
          clash = box[0] < o[2] && box[2] > o[0] && box[1] < o[3] && box[3] > o[1];
        }
        if (clash) continue;
        boxes.push(box);
        keep[row[0]] = true;
        placed++;
        if (!shown[row[0]]) {
          var icon = L.divIcon({
            html: el("span", row[1]), className: "rz-label", iconSize: null,
            iconAnchor: L.point(-(row[4] + 3), LABEL_HEIGHT / 2)
          });
          shown[row[0]] = L.marker(at, {icon: icon, interactive: false, keyboard: false});
          group.addLayer(shown[row[0]]);
        }
      }
      Object.keys(shown).forEach(function (slug) {
        if (!keep[slug]) { group.removeLayer(shown[slug]); delete shown[slug]; }
      });
      registry.labelsShown = placed;
    }
    group.on("add", function () { registry.map.on("moveend", place); place(); });
    group.on("remove", function () { registry.map.off("moveend", place); });
    return group;
  }

  R.builders.areas = areas;
  R.builders.labels = labels;
  R.basemap = basemap;
})();
