/* Rhizome map layers, built from JSON: the page's data blocks (the layer list, then the communities, tasks
 * and flows) and the site points fetched from /map/sites.json (the page starts that request in its <head>).
 * Folium makes the Leaflet map (view, scale, tiles); RhizomeMap.draw(map, baseLayers) adds the layers, the
 * legend and the layer control to it. The server writes no line of this script. map_geo.js (basemap, areas,
 * labels) and map_flows.js (delivery flows and their filter) add their builders to RhizomeMap.builders.
 *
 * Every user-supplied string (community, site, good, member names) reaches the page as JSON data and the DOM
 * only through textContent: nothing here ever parses a name as HTML. Popups are built when opened, from the
 * API, and site markers share one click handler, so 50,000 markers cost no DOM and no handlers of their own
 * until someone clicks. */
(function () {
  "use strict";

  var LEVEL_COLOURS = {critical: "#d62728", short: "#ff7f0e", ok: "#2ca02c"};
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

  var LEVELS = ["critical", "short", "ok"];

  function getJson(url) {
    return fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      });
  }

  // A community's popup: its goods and sensors from the API when it opens, its open tasks from the page.
  function communityPopup(row, options, loaded) {
    var box = el("div", null, "rz-popup");
    box.appendChild(el("strong", row[1]));
    var body = el("div", "loading…");
    box.appendChild(body);
    getJson(options.detailUrl.replace(/_$/, row[0]))
      .then(function (c) {
        body.textContent = "";
        body.appendChild(el("div", "population " + num(c.population)));
        var needed = c.goods.filter(function (g) { return g.minimum !== null; });
        needed.sort(function (a, b) {  // shortages first: essential, then the lowest share of the minimum
          return (LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level)) ||
            (a.quantity / (a.minimum || Infinity) - b.quantity / (b.minimum || Infinity)) ||
            (a.good < b.good ? -1 : a.good > b.good ? 1 : 0);
        });
        if (needed.length) {
          body.appendChild(table(
            ["good", "stock", "min", "target"],
            needed.map(function (g) { return [g.name, num(g.quantity) + " " + g.unit, num(g.minimum), num(g.target)]; }),
            function (i) { return "rz-" + needed[i].level; }
          ));
        } else {
          body.appendChild(el("div", "no need levels set"));
        }
        var counts = {};
        c.devices.forEach(function (d) { counts[d.state] = (counts[d.state] || 0) + 1; });
        var states = Object.keys(counts).sort();
        body.appendChild(el("div", states.length
          ? "sensors: " + states.map(function (s) { return counts[s] + " " + s; }).join(", ")
          : "no sensors"));
        var tasks = (registry.tasksByCommunity[row[0]] || []);
        if (tasks.length) {
          body.appendChild(el("div", "open repair tasks", "rz-sub"));
          body.appendChild(table(["task", "status", "urgency"], tasks.map(function (t) {
            return [t.title, t.status.replace("_", " "), t.urgency];
          })));
        }
        var link = el("a", "details and charts");
        link.href = options.pageUrl.replace(/_$/, row[0]);
        body.appendChild(link);
        box.setAttribute("data-loaded", "true");  // for the browser tests
        if (loaded) loaded();
      })
      .catch(function (error) {
        body.textContent = "could not load this community (" + error.message + ")";
        if (loaded) loaded();
      });
    return box;
  }

  // Popups sized to their content within the map: at least wide enough for a table, at most the map less a
  // margin, and no taller than the map (a longer one scrolls inside). Their details arrive after they open,
  // so refit() measures them again once filled and pans the map until the whole popup is inside it.
  var POPUP_MARGIN = 24;
  var CONTROLS_ROW = 40;  // the popup's top stays below the folded layer control, its close button clear
  function popupOptions(widest) {
    var map = registry.map, size = map ? map.getSize() : L.point(widest, 600);
    // maxWidth is the content's: its box adds Leaflet's margins (~45 px) and, scrolled, a scrollbar.
    var most = Math.max(160, Math.min(widest, size.x - 2 * POPUP_MARGIN - 60));
    return {
      minWidth: Math.min(220, most), maxWidth: most,
      // less its tip, padding and close button, and the row of the corner controls (zoom, layers) above it
      maxHeight: Math.max(120, size.y - 2 * POPUP_MARGIN - 72 - CONTROLS_ROW),
      autoPan: true, autoPanPadding: L.point(POPUP_MARGIN, POPUP_MARGIN),
      autoPanPaddingTopLeft: L.point(POPUP_MARGIN, POPUP_MARGIN + CONTROLS_ROW), keepInView: false, rzWidest: widest
    };
  }
  function refit(popup) {
    // Leaflet's update() would also call a bound popup's content function again (a second fetch, then a
    // third...): only its layout, position and auto-pan steps run (the vendored Leaflet 1.9.3's own).
    if (!popup || !popup.isOpen()) return;
    popup._updateLayout();
    popup._updatePosition();
    popup._adjustPan();
  }

  function when(iso) { return iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "never"; }

  // A site's popup: its name and sensors come from the API when it opens (the page carries only points).
  function sitePopup(url, id, loaded) {
    var box = el("div", "loading…", "rz-popup");
    getJson(url.replace(/0$/, String(id)))
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
        box.setAttribute("data-loaded", "true");
        if (loaded) loaded();
      })
      .catch(function (error) {
        box.textContent = "could not load this site (" + error.message + ")";
        if (loaded) loaded();
      });
    return box;
  }

  function data(name) {
    var block = document.getElementById("rz-data-" + name);
    return block ? JSON.parse(block.textContent) : [];
  }

  // On a community node: the communities other nodes serve, {slug: {node, down, text}} ("links" block).
  function links() {
    var block = document.getElementById("rz-data-links");
    return block ? JSON.parse(block.textContent) : {};
  }

  function linkLine(link) {
    return el("div", "node " + link.node + ": " + link.text, link.down ? "rz-link-down" : "rz-link-up");
  }

  function communities(options) {
    var group = L.featureGroup();
    var linked = links();
    data("communities").forEach(function (row) {  // [slug, name, lat, lon, radius, level index]
      var colour = LEVEL_COLOURS[options.levels[row[5]]];
      var link = linked.hasOwnProperty(row[0]) ? linked[row[0]] : null;
      var down = !!(link && link.down);
      var marker = L.circleMarker([row[2], row[3]], {
        radius: row[4], color: down ? "#222222" : colour, weight: down ? 3 : 1, dashArray: down ? "5 4" : null,
        fill: true, fillColor: colour, fillOpacity: down ? 0.35 : 0.6, rzCommunity: row[0], rzLinkDown: down
      });
      marker.bindPopup(function () {
        var box = communityPopup(row, options, function () { refit(marker.getPopup()); });
        if (link) box.insertBefore(linkLine(link), box.childNodes[1]);
        return box;
      }, popupOptions(360));
      marker.bindTooltip(function () {
        var tip = el("span", row[1]);
        if (down) tip.appendChild(linkLine(link));
        return tip;
      });
      group.addLayer(marker);
    });
    return group;
  }

  // A cluster's worst state (fault, else other if any site is not online, else online), from its child
  // clusters and own markers, remembered per cluster until markercluster flags its content as changed:
  // zooming recounts no marker twice.
  function worstOf(cluster, fresh) {
    if (cluster._rzWorst && !fresh && !cluster._iconNeedsUpdate) return cluster._rzWorst;
    var worst = "online", i, state;
    for (i = 0; i < cluster._markers.length && worst !== "fault"; i++) {
      state = cluster._markers[i].options.rzState;
      worst = state === "fault" ? "fault" : state !== "online" ? "other" : worst;
    }
    for (i = 0; i < cluster._childClusters.length && worst !== "fault"; i++) {
      state = worstOf(cluster._childClusters[i]);
      worst = state === "fault" ? "fault" : state !== "online" ? "other" : worst;
    }
    cluster._rzWorst = worst;
    return worst;
  }

  function clusterIcon(cluster) {  // markercluster asks again only when the cluster's content changed
    var count = cluster.getChildCount();
    var size = count < 100 ? 30 : count < 1000 ? 36 : 44;
    var div = el("div", null, "rz-cluster rz-cluster-" + worstOf(cluster, true));
    div.appendChild(el("span", count));
    return L.divIcon({html: div, className: "rz-cluster-icon", iconSize: L.point(size, size)});
  }

  function drawSites(cluster, body) {  // body: {scale, states, points: [lat, lon, state, id, ...]}
    var points = body.points, states = body.states, scale = body.scale;
    var markers = new Array(points.length / 4);
    for (var i = 0, n = 0; i < points.length; i += 4, n++) {
      var state = states[points[i + 2]];
      markers[n] = L.circleMarker([points[i] / scale, points[i + 1] / scale], {
        radius: 5, color: "#333333", weight: 1, fill: true, fillColor: stateColour(state), fillOpacity: 0.9,
        rzState: state, rzSite: points[i + 3]
      });
    }
    registry.sitesExpected = markers.length;
    cluster.addLayers(markers);  // on the map by now: the chunked path (off the map it is quadratic)
  }

  function sites(options) {
    var cluster = L.markerClusterGroup({
      chunkedLoading: true, chunkInterval: 200, chunkDelay: 1,
      showCoverageOnHover: false, spiderfyOnMaxZoom: true, removeOutsideVisibleBounds: true,
      animate: false,  // no split/merge animation: it forces layouts and runs opacity steps per zoom
      maxClusterRadius: 80, disableClusteringAtZoom: options.disableClusteringAtZoom,
      iconCreateFunction: clusterIcon,
      chunkProgress: function (processed, total) {
        // The add to the map loads no marker (an empty list): wait for the fetched ones.
        if (processed !== total || total !== registry.sitesExpected) return;
        registry.sitesLoadedAt = performance.now();  // read by bench/map.py and the browser tests
        requestAnimationFrame(function () {
          requestAnimationFrame(function () { registry.sitesDrawnAt = performance.now(); });  // painted
        });
      }
    });
    // One handler for every site marker: its popup is made (and its details fetched) on click.
    cluster.on("click", function (event) {
      var marker = event.layer;
      if (marker.options.rzSite === undefined) return;
      var popup = L.popup(popupOptions(420));
      popup.setLatLng(marker.getLatLng())
        .setContent(sitePopup(options.siteUrl, marker.options.rzSite, function () { refit(popup); }))
        .openOn(cluster._map);
    });
    // The page's <head> started the request (and its JSON parse) early; a page without it fetches now.
    var request = (window.rzPrefetch && window.rzPrefetch.sites) || getJson(options.url);
    request
      .then(function (body) {
        var add = function () { drawSites(cluster, body); };
        if (cluster._map) add(); else cluster.once("add", add);  // a hidden layer loads when shown
      })
      .catch(function (error) {
        registry.sitesError = String(error.message || error);
        if (window.console) console.error("site points: " + registry.sitesError);
      });
    return cluster;
  }

  function tasks(options) {
    var group = L.featureGroup();
    data("tasks").forEach(function (t) {
      (registry.tasksByCommunity[t.community] = registry.tasksByCommunity[t.community] || []).push(t);
      var marker = L.circleMarker([t.lat, t.lon], {
        radius: 9, color: "#6a3d9a", weight: 3, fill: false, dashArray: "4 3", rzTask: t.id
      });
      marker.bindPopup(function () {
        var box = el("div", null, "rz-popup");
        box.appendChild(el("strong", t.title));
        box.appendChild(el("div", t.site_name + " · " + t.community_name));
        box.appendChild(el("div", "status " + t.status.replace("_", " ") + " · urgency " + t.urgency));
        box.appendChild(el("div", t.assigned ? "a crew member has it" : "not yet assigned"));
        return box;
      });
      group.addLayer(marker);
    });
    return group;
  }

  // The drawn layers by kind, and the map: for the legend's future controls, the tests and the benchmark.
  var registry = {
    map: null, layers: {}, sitesLoadedAt: null, sitesDrawnAt: null, sitesExpected: null, sitesError: null, tasksByCommunity: {},
    basemap: null, flowFilter: null
  };
  function register(kind, layer, map) { registry.layers[kind] = layer; registry.map = map; }

  var BUILDERS = {communities: communities, sites: sites, tasks: tasks};  // + map_geo.js, map_flows.js

  // The legend: the page's <template id="rz-legend"> (static markup, no data in it) as a Leaflet control.
  function legend(map) {
    var source = document.getElementById("rz-legend");
    if (!source) return;
    var control = L.control({position: "bottomright"});
    control.onAdd = function () {
      var div = L.DomUtil.create("div", "rz-legend");
      var button = el("button", "Legend", "rz-legend-toggle");
      var body = el("div", null, "rz-legend-body");
      body.id = "rz-legend-body";
      button.type = "button";
      button.setAttribute("aria-controls", body.id);
      if (registry.flowFilter) body.appendChild(registry.flowFilter);  // map_flows.js: which flows show
      body.appendChild(source.content.cloneNode(true));
      div.appendChild(button);
      div.appendChild(body);
      function set(open) {
        div.classList.toggle("rz-open", open);
        button.setAttribute("aria-expanded", open ? "true" : "false");
      }
      set(!narrow());  // on a phone it starts folded: the map is what people came for
      button.addEventListener("click", function () { set(!div.classList.contains("rz-open")); });
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    control.addTo(map);
  }

  var NARROW = "(max-width: 600px)";  // phones: the legend and the layer control start folded
  function narrow() { return !!(window.matchMedia && window.matchMedia(NARROW).matches); }

  // The layers of the "layers" block ([{kind, name, options}], in drawing order) on folium's map, then the
  // legend and the layer control, in this order on purpose: the legend stacks above the attribution, and the
  // control lists the base layers ({name: tile layer}, none offline) and the layers in drawing order.
  function draw(map, bases) {
    var overlays = {};
    registry.map = map;
    var base = window.RhizomeMap.basemap ? window.RhizomeMap.basemap() : null;  // map_geo.js: PMTiles
    if (base) {
      bases[base.name] = base.layer;
      if (base.active) base.layer.addTo(map);
      registry.basemap = base.layer;
    }
    map.on("popupopen", function (event) {  // sized to the map as it is now (a phone turned, a window resized)
      var popup = event.popup;
      if (popup.options.rzWidest) { L.extend(popup.options, popupOptions(popup.options.rzWidest)); refit(popup); }
      // On a phone the popup spans the map: the layer button would sit on its close button (CSS hides it).
      L.DomUtil.addClass(map.getContainer(), "rz-popup-open");
    });
    map.on("popupclose", function () { L.DomUtil.removeClass(map.getContainer(), "rz-popup-open"); });
    data("layers").forEach(function (spec) {
      var build = BUILDERS.hasOwnProperty(spec.kind) ? BUILDERS[spec.kind] : null;
      if (!build) throw new Error("unknown map layer " + spec.kind);
      var layer = build(spec.options);
      register(spec.kind, layer, map);
      layer.addTo(map);
      overlays[spec.name] = layer;
    });
    legend(map);
    // Folded, Leaflet's control is a 44 px button (on touch screens) that opens it on tap, Enter or Space.
    L.control.layers(bases, overlays, {position: "topright", collapsed: narrow(), autoZIndex: true}).addTo(map);
    return map;
  }

  window.RhizomeMap = {
    communities: communities, sites: sites, tasks: tasks, register: register, registry: registry,
    draw: draw, builders: BUILDERS, util: {el: el, num: num, data: data, getJson: getJson}
  };
})();
