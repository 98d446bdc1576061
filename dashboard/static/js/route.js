/* Driver page: the route on a small map (numbered stops joined in order) and the print button. */
(function () {
  "use strict";
  var printButton = document.getElementById("rz-print");
  if (printButton) printButton.addEventListener("click", function () { window.print(); });
  var box = document.getElementById("rz-route-map");
  var data = JSON.parse(document.getElementById("rz-route-data").textContent);
  if (!box || !window.L || !data.stops.length) { if (box) box.hidden = true; return; }
  var map = L.map(box, {maxZoom: 18});
  var points = data.stops.map(function (s) { return [s.lat, s.lon]; });
  L.polyline(points, {color: "#1f5fa8", weight: 4, opacity: 0.8}).addTo(map);
  data.stops.forEach(function (s) {
    var label = document.createElement("span");
    label.textContent = s.n;
    L.marker([s.lat, s.lon], {
      icon: L.divIcon({html: label, className: "rz-stop-icon rz-stop-" + s.status, iconSize: [26, 26]})
    }).addTo(map).bindTooltip(function () { var t = document.createElement("span"); t.textContent = s.n + ". " + s.site; return t; });
  });
  map.fitBounds(points, {padding: [24, 24], maxZoom: 15});
})();
