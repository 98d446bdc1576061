/* Crew page: a small map of my tasks, and alerts pushed by the server (Server-Sent Events), shown as text. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("rz-crew-data").textContent);
  var box = document.getElementById("rz-crew-map");
  if (box && window.L) {
    var map = L.map(box, {maxZoom: 18});
    var home = [data.home.lat, data.home.lon];
    var points = [home];
    L.circleMarker(home, {radius: 6, color: "#1f3b2d", fillOpacity: 0.8}).addTo(map)
      .bindTooltip(function () { var s = document.createElement("span"); s.textContent = "home: " + data.home.name; return s; });
    data.tasks.forEach(function (t) {
      var at = [t.lat, t.lon];
      points.push(at);
      L.polyline([home, at], {color: "#6a3d9a", weight: 2, dashArray: "5 5"}).addTo(map);
      L.circleMarker(at, {radius: 8, color: "#6a3d9a", weight: 3, fill: false}).addTo(map)
        .bindTooltip(function () { var s = document.createElement("span"); s.textContent = t.title + " · " + t.site; return s; });
    });
    if (points.length > 1) map.fitBounds(points, {padding: [20, 20], maxZoom: 14}); else map.setView(home, 12);
  }
  var script = document.getElementById("rz-crew-js");
  var list = document.getElementById("rz-alerts");
  if (!window.EventSource || !script) return;
  var source = new EventSource(script.dataset.events);
  window.rzShowAlerts(source, list);
  source.addEventListener("task", function (event) {
    var task = JSON.parse(event.data);
    var notice = document.getElementById("rz-new-tasks");
    notice.querySelector("span").textContent = task.title + " (" + task.site + ", " + task.urgency_word + ")";
    notice.querySelector("a").href = window.location.href;
    notice.hidden = false;
  });
})();
