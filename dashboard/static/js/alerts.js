/* Alerts pushed by the server (Server-Sent Events) on a member's page, each shown as text, newest first.
   rzShowAlerts(source, list) is shared with the crew page; a page whose script tag has id rz-alerts-js and
   data-events opens its own stream. */
(function () {
  "use strict";
  window.rzShowAlerts = function (source, list) {
    source.addEventListener("alert", function (event) {
      var alert = JSON.parse(event.data);
      if (list.querySelector('[data-id="' + alert.id + '"]')) return;
      var item = document.createElement("li");
      item.dataset.id = alert.id;
      item.className = "rz-new";
      var time = document.createElement("time");
      time.textContent = alert.at.slice(0, 16).replace("T", " ");
      item.appendChild(time);
      item.appendChild(document.createTextNode(" " + alert.text));
      list.insertBefore(item, list.firstChild);
    });
  };
  var script = document.getElementById("rz-alerts-js");
  var list = document.getElementById("rz-alerts");
  if (!window.EventSource || !script || !list || !script.dataset.events) return;
  window.rzShowAlerts(new EventSource(script.dataset.events), list);
})();
