/* Delivery flows on the Rhizome map: one line per place pair and good (the server sums the shipments),
 * width by weight, an arrowhead of a fixed size in pixels at its middle, a tooltip on hover or tap, and a
 * filter by good and sector. At first only the heaviest flows of essential goods are drawn (options.top);
 * the rest are behind the filter, so the map stays readable with a region's whole plan on it.
 *
 * Lines share the map's canvas with the communities and sites: a canvas of their own would lie above or
 * below the other one and one of them would never see the pointer (why tooltips could not open before).
 * Names reach the DOM only as text. Loaded after map.js; RhizomeMap.draw() calls the builder. */
(function () {
  "use strict";

  var R = window.RhizomeMap, el = R.util.el, num = R.util.num;
  var PLANNED = "#3d8bd9", MOVING = "#1f5fa8";
  var ESSENTIAL = "essential", ALL = "all";
  var ARROW_PANE = "rz-arrows";  // over the site clusters (600), under tooltips (650): always reachable

  function arrowSize(width) { return Math.round(10 + width); }  // 11-19 px whatever the zoom

  // A triangle pointing right, turned to the line's direction on screen. Web Mercator keeps angles, so the
  // angle worked out at any one zoom holds at every zoom: the icon never changes after it is made.
  function arrowIcon(map, f, colour) {
    var a = map.project(f.from, 10), b = map.project(f.to, 10);
    var degrees = Math.atan2(b.y - a.y, b.x - a.x) * 180 / Math.PI;
    var size = arrowSize(f.width), ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", size);
    svg.setAttribute("height", size);
    svg.setAttribute("viewBox", "0 0 10 10");
    svg.style.transform = "rotate(" + degrees.toFixed(1) + "deg)";
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M10 5 L0 0.5 L2.5 5 L0 9.5 Z");
    path.setAttribute("fill", colour);
    path.setAttribute("stroke", "#ffffff");
    path.setAttribute("stroke-width", "0.6");
    svg.appendChild(path);
    var box = el("div", null, "rz-arrow-shape");
    box.appendChild(svg);
    return L.divIcon({html: box, className: "rz-arrow", iconSize: L.point(size, size)});
  }

  function tooltip(f) {
    var box = el("div", null, "rz-flow-tip");
    box.appendChild(el("strong", f.from_name + " → " + f.to_name));
    box.appendChild(el("div", f.good + ": " + num(f.quantity) + " " + f.unit + " (" + num(f.kg) + " kg)"));
    var moving = f.moving ? ", " + f.moving + " on the road" : "";
    box.appendChild(el("div", f.shipments + (f.shipments === 1 ? " shipment" : " shipments") + moving));
    box.appendChild(el("div", f.sector + (f.essential ? " · essential good" : ""), "rz-sub"));
    return box;
  }

  function drawOne(group, map, f) {
    var colour = f.moving ? MOVING : PLANNED;
    var line = L.polyline([f.from, f.to], {color: colour, weight: f.width, opacity: 0.6, rzFlow: true});
    var head = L.marker([(f.from[0] + f.to[0]) / 2, (f.from[1] + f.to[1]) / 2], {
      icon: arrowIcon(map, f, colour), keyboard: false, rzFlow: true, pane: ARROW_PANE
    });
    var options = {sticky: true, direction: "top", className: "rz-flow-tooltip"};
    line.bindTooltip(function () { return tooltip(f); }, options);
    head.bindTooltip(function () { return tooltip(f); }, {direction: "top", className: "rz-flow-tooltip"});
    group.addLayer(line);
    group.addLayer(head);
    if (line.bringToBack) line.bringToBack();  // under the communities on the shared canvas
  }

  function option(value, text) {
    var node = el("option", text);
    node.value = value;
    return node;
  }

  function counted(list, key) {
    var counts = {};
    list.forEach(function (f) { counts[f[key]] = (counts[f[key]] || 0) + 1; });
    return Object.keys(counts).sort().map(function (k) { return [k, counts[k]]; });
  }

  // The filter's form (shown in the legend, which folds on a phone): good, sector, and "every flow".
  function filterBox(all, state, changed) {
    var box = el("form", null, "rz-flow-filter");
    box.setAttribute("aria-label", "Which deliveries the map shows");
    box.appendChild(el("strong", "Deliveries"));
    var good = el("select", null, "rz-flow-good");
    good.setAttribute("aria-label", "good");
    var essentials = all.filter(function (f) { return f.essential; }).length;
    good.appendChild(option(ESSENTIAL, "essential goods (" + essentials + ")"));
    good.appendChild(option(ALL, "every good (" + all.length + ")"));
    counted(all, "good").forEach(function (g) { good.appendChild(option("good:" + g[0], g[0] + " (" + g[1] + ")")); });
    var sector = el("select", null, "rz-flow-sector");
    sector.setAttribute("aria-label", "sector");
    sector.appendChild(option(ALL, "every sector"));
    counted(all, "sector").forEach(function (s) { sector.appendChild(option(s[0], s[0] + " (" + s[1] + ")")); });
    var every = el("input", null, "rz-flow-all");
    every.type = "checkbox";
    var everyLabel = el("label", null, "rz-flow-all-label");
    everyLabel.appendChild(every);
    var shown = el("span", "", "rz-flow-count");
    everyLabel.appendChild(shown);
    good.value = state.good;
    sector.value = state.sector;
    [good, sector, every].forEach(function (input) {
      var row = el("div");
      row.appendChild(input === every ? everyLabel : input);
      box.appendChild(row);
      input.addEventListener("change", function () {
        state.good = good.value;
        state.sector = sector.value;
        state.all = every.checked;
        changed();
      });
    });
    box.addEventListener("submit", function (event) { event.preventDefault(); });
    box.rzCount = function (drawn, matching) {
      every.disabled = matching <= drawn && !state.all;  // nothing more to show
      shown.textContent = state.all ? "all " + matching + " shown"
        : drawn < matching ? "show all " + matching + " (the " + drawn + " heaviest now)" : matching + " shown";
    };
    return box;
  }

  function matches(f, state) {
    var good = state.good === ESSENTIAL ? f.essential
      : state.good === ALL ? true : "good:" + f.good === state.good;
    return good && (state.sector === ALL || f.sector === state.sector);
  }

  function flows(options) {
    var group = L.featureGroup(), registry = R.registry;
    var all = R.util.data("flows");  // heaviest first
    var top = options.top || 25;
    var state = {good: all.some(function (f) { return f.essential; }) ? ESSENTIAL : ALL, sector: ALL, all: false};
    var box = filterBox(all, state, redraw);
    function redraw() {
      var map = registry.map;
      if (!map) return;
      if (!map.getPane(ARROW_PANE)) map.createPane(ARROW_PANE).style.zIndex = 620;
      var matching = all.filter(function (f) { return matches(f, state); });
      var drawn = state.all ? matching : matching.slice(0, top);
      group.clearLayers();
      drawn.forEach(function (f) { drawOne(group, map, f); });
      registry.flowsDrawn = drawn.length;
      registry.flowsMatching = matching.length;
      box.rzCount(drawn.length, matching.length);
    }
    registry.flowFilter = box;  // the legend shows it
    registry.flowState = state;
    registry.flowsTotal = all.length;
    group.rzRedraw = redraw;
    group.once("add", redraw);
    return group;
  }

  R.builders.flows = flows;
  R.flows = flows;
})();
