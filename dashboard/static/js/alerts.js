/* Alerts pushed by the server (Server-Sent Events) on a member's page, each shown as text, newest first:
   the server words every kind (dashboard/read/alert_words.py); an event without text still shows its kind,
   never its JSON. A link is shown only when it is a path on this dashboard.
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
      var text = typeof alert.text === "string" && alert.text ? alert.text
        : "New " + String(alert.kind || "alert").replace(/_/g, " ") + " (reload to read it)";
      item.dataset.kind = alert.kind || "alert";
      item.appendChild(document.createTextNode(" " + text));
      if (typeof alert.link === "string" && /^\/(?!\/)/.test(alert.link)) {
        var link = document.createElement("a");
        link.href = alert.link;
        link.textContent = "open";
        item.appendChild(document.createTextNode(" "));
        item.appendChild(link);
      }
      list.insertBefore(item, list.firstChild);
      var none = document.getElementById("rz-no-alerts");  // "No alerts yet", when the page has it
      if (none) none.hidden = true;
    });
  };
  var script = document.getElementById("rz-alerts-js");
  var list = document.getElementById("rz-alerts");
  if (!window.EventSource || !script || !list || !script.dataset.events) return;
  window.rzShowAlerts(new EventSource(script.dataset.events), list);
})();
