/* Rhizome map layers, built from JSON the server put in the page.
 *
 * Every user-supplied string (community, site, good, member names) reaches the page as JSON data and the DOM
 * only through textContent: nothing here ever parses a name as HTML. Popups and tooltips are built lazily,
 * when opened, so 50,000 markers cost no DOM until someone clicks. */
(function () {
  "use strict";

  var LEVEL_COLOURS = {critical: "#d62728", short: "#ff7f0e", ok: "#2ca02c"};
  var SITE_STATES = ["online", "fault", "offline", "stale", "unknown", "no sensor"];
  var STATE_COLOURS = {online: "#2ca02c", fault: "#d62728"};  // everything else grey
  var GREY = "#7f7f7f";

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function num(value) {
    if (value === null || value === undefined) return "-";
    var rounded = Math.round(value * 10) / 10;
    return rounded.toLocaleString("en-US");
  }

  function table(headers, rows, rowClass) {
    var t = el("table", null, "rz-table");
    var head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", h)); });
    t.appendChild(head);
    rows.forEach(function (row, i) {
      var tr = el("tr", null, rowClass ? rowClass(i) : null);
      row.forEach(function (cell) { tr.appendChild(el("td", cell)); });
      t.appendChild(tr);
    });
    return t;
  }

  function stateColour(state) { return STATE_COLOURS[state] || GREY; }

  function communityPopup(c) {
    var box = el("div", null, "rz-popup");
    box.appendChild(el("strong", c.name));
    box.appendChild(el("div", "population " + num(c.population)));
    if (c.goods.length) {
      box.appendChild(table(
        ["good", "stock", "min", "target"],
        c.goods.map(function (g) { return [g.name, num(g.quantity) + " " + g.unit, num(g.minimum), num(g.target)]; }),
        function (i) { return "rz-" + c.goods[i].level; }
      ));
    } else {
      box.appendChild(el("div", "no need levels set"));
    }
    var states = Object.keys(c.devices).sort();
    box.appendChild(el("div", states.length
      ? "sensors: " + states.map(function (s) { return c.devices[s] + " " + s; }).join(", ")
      : "no sensors"));
    if (c.tasks.length) {
      box.appendChild(el("div", "open repair tasks", "rz-sub"));
      box.appendChild(table(["task", "status", "urgency"], c.tasks.map(function (t) {
        return [t.title, t.status.replace("_", " "), t.urgency];
      })));
    }
    var link = el("a", "details and charts");
    link.href = c.url;
    box.appendChild(link);
    return box;
  }

  function when(iso) { return iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "never"; }

  // A site's popup: its name and sensors come from the API when it opens (the page carries only points).
  function sitePopup(url, row) {
    var box = el("div", "loading…", "rz-popup");
    fetch(url.replace(/0$/, String(row[3])), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (site) {
        box.textContent = "";
        box.appendChild(el("strong", site.name));
        var link = el("a", site.community_name);
        link.href = site.community_url;
        var line = el("div", site.kind + " · ");
        line.appendChild(link);
        box.appendChild(line);
        if (site.devices.length) {
          box.appendChild(table(["sensor", "kind", "state", "last seen"], site.devices.map(function (d) {
            return [d.slug, d.kind, d.state, when(d.last_seen_at)];
          })));
        } else {
          box.appendChild(el("div", "no sensors"));
        }
      })
      .catch(function (error) { box.textContent = "could not load this site (" + error.message + ")"; });
    return box;
  }

  function communities(data, options) {
    var group = L.featureGroup();
    data.forEach(function (c) {
      var colour = LEVEL_COLOURS[c.level];
      var marker = L.circleMarker([c.lat, c.lon], {
        radius: c.radius, color: colour, weight: 1, fill: true, fillColor: colour, fillOpacity: 0.6,
        rzCommunity: c.slug
      });
      marker.bindPopup(function () { return communityPopup(c); }, {maxWidth: 360});
      marker.bindTooltip(function () { return el("span", c.name); });
      group.addLayer(marker);
    });
    return group;
  }

  function clusterIcon(cluster) {
    var markers = cluster.getAllChildMarkers();
    var worst = "online";
    for (var i = 0; i < markers.length; i++) {
      var state = markers[i].options.rzState;
      if (state === "fault") { worst = "fault"; break; }
      if (state !== "online") worst = "other";
    }
    var count = cluster.getChildCount();
    var size = count < 100 ? 30 : count < 1000 ? 36 : 44;
    var div = el("div", null, "rz-cluster rz-cluster-" + worst);
    div.appendChild(el("span", count));
    return L.divIcon({html: div, className: "rz-cluster-icon", iconSize: L.point(size, size)});
  }

  function sites(data, options) {
    var cluster = L.markerClusterGroup({
      chunkedLoading: true, chunkInterval: 200, chunkDelay: 1,
      showCoverageOnHover: false, spiderfyOnMaxZoom: true, removeOutsideVisibleBounds: true,
      maxClusterRadius: 80, disableClusteringAtZoom: options.disableClusteringAtZoom,
      iconCreateFunction: clusterIcon,
      chunkProgress: function (processed, total) {
        if (processed !== total) return;
        registry.sitesLoadedAt = performance.now();  // read by bench/map.py and the browser tests
        requestAnimationFrame(function () {
          requestAnimationFrame(function () { registry.sitesDrawnAt = performance.now(); });  // painted
        });
      }
    });
    var markers = new Array(data.length);
    for (var i = 0; i < data.length; i++) {
      var row = data[i];
      var state = SITE_STATES[row[2]];
      var marker = L.circleMarker([row[0], row[1]], {
        radius: 5, color: "#333333", weight: 1, fill: true, fillColor: stateColour(state), fillOpacity: 0.9,
        rzState: state
      });
      marker.bindPopup(sitePopup.bind(null, options.siteUrl, row), {maxWidth: 420});
      markers[i] = marker;
    }
    cluster.addLayers(markers);
    return cluster;
  }

  function tasks(data, options) {
    var group = L.featureGroup();
    data.forEach(function (t) {
      var marker = L.circleMarker([t.lat, t.lon], {
        radius: 9, color: "#6a3d9a", weight: 3, fill: false, dashArray: "4 3", rzTask: t.id
      });
      marker.bindPopup(function () {
        var box = el("div", null, "rz-popup");
        box.appendChild(el("strong", t.title));
        box.appendChild(el("div", t.site_name + " · " + t.community_name));
        box.appendChild(el("div", "status " + t.status.replace("_", " ") + " · urgency " + t.urgency));
        box.appendChild(el("div", t.assignee ? "crew: " + t.assignee : "not yet assigned"));
        return box;
      });
      group.addLayer(marker);
    });
    return group;
  }

  // A directed line: the path plus a filled arrowhead at its middle, pointing to the destination.
  function arrowhead(from, to, width) {
    var mid = [(from[0] + to[0]) / 2, (from[1] + to[1]) / 2];
    var dLat = to[0] - from[0], dLon = to[1] - from[1];
    var length = Math.sqrt(dLat * dLat + dLon * dLon) || 1e-9;
    var size = Math.min(length * 0.12, 0.02) * (0.7 + width / 10);
    var uLat = dLat / length, uLon = dLon / length;
    var tip = [mid[0] + uLat * size, mid[1] + uLon * size];
    var back = [mid[0] - uLat * size * 0.6, mid[1] - uLon * size * 0.6];
    return [tip, [back[0] - uLon * size * 0.6, back[1] + uLat * size * 0.6],
      [back[0] + uLon * size * 0.6, back[1] - uLat * size * 0.6]];
  }

  function flowTooltip(f) {
    var box = el("div", null, "rz-popup");
    box.appendChild(el("strong", f.from_name + " → " + f.to_name));
    f.goods.forEach(function (g) {
      box.appendChild(el("div", g.name + ": " + num(g.quantity) + " " + g.unit + " (" + g.status.replace("_", " ") + ")"));
    });
    return box;
  }

  function flows(data, options) {
    var group = L.featureGroup();
    data.forEach(function (f) {
      var from = [f.from_lat, f.from_lon], to = [f.to_lat, f.to_lon];
      var style = {color: f.moving ? "#1f5fa8" : "#3d8bd9", weight: f.width, opacity: 0.55, rzFlow: true};
      var line = L.polyline([from, to], style);
      var head = L.polygon(arrowhead(from, to, f.width), {
        color: style.color, weight: 1, fill: true, fillColor: style.color, fillOpacity: 0.8, rzFlow: true
      });
      [line, head].forEach(function (layer) {
        layer.bindTooltip(function () { return flowTooltip(f); }, {sticky: true});
        group.addLayer(layer);
      });
    });
    return group;
  }

  // The drawn layers by kind, and the map: for the legend's future controls, the tests and the benchmark.
  var registry = {map: null, layers: {}, sitesLoadedAt: null, sitesDrawnAt: null};
  function register(kind, layer, map) { registry.layers[kind] = layer; registry.map = map; }

  window.RhizomeMap = {
    communities: communities, sites: sites, tasks: tasks, flows: flows, register: register, registry: registry
  };
})();
