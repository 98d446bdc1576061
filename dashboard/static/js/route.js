/* Driver page: every action goes through the phone's queue (driver-queue.js) and the JSON API, so a press
 * made without a connection is kept, shown as waiting, and sent once the connection is back; the status line
 * at the top always says what is happening. The page registers the service worker that keeps this route
 * (page, GPX, assets, tiles seen) on the phone. Without script the forms post as before. */
(function () {
  "use strict";
  var root = document.getElementById("rz-driver");
  if (!root || !window.RhizomeQueue) return;
  var Q = window.RhizomeQueue;
  var route = Number(root.dataset.route);
  var account = root.dataset.account;
  var csrf = root.dataset.csrf;
  var NOTES = "rhizome.driver.notes";  // sessionStorage: what the last send did, shown after its reload
  var RETRY_FIRST_MS = 2000, RETRY_MAX_MS = 60000;
  var state = {trouble: null, sending: false, saved: false, notes: takeNotes()};
  var retryMs = RETRY_FIRST_MS, retryTimer = null;
  var VERBS = {picked_up: "Picked up", delivered: "Delivered", failed: "Could not deliver",
               accept: "Accept route", decline: "Decline route"};

  function byId(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // the status line sticks just under the page's header, whatever height the header wraps to
  var bar = document.querySelector(".rz-bar");
  function underBar() { if (bar) root.style.setProperty("--rz-bar-height", bar.offsetHeight + "px"); }
  underBar();
  window.addEventListener("resize", underBar);

  var printButton = byId("rz-print");
  if (printButton) printButton.addEventListener("click", function () { window.print(); });
  Array.prototype.forEach.call(document.querySelectorAll("[data-rz-show]"), function (button) {
    button.addEventListener("click", function () { window.RhizomeRouteMap.show(Number(button.dataset.rzShow)); });
  });
  Array.prototype.forEach.call(document.querySelectorAll("form[data-rz-action]"), function (form) {
    form.noValidate = true;  // our own messages, next to the field, instead of the browser's bubble
    form.addEventListener("submit", onSubmit);
  });

  function takeNotes() {
    try {
      var notes = JSON.parse(window.sessionStorage.getItem(NOTES) || "[]");
      window.sessionStorage.removeItem(NOTES);
      return notes;
    } catch (e) { return []; }
  }

  function keepNotes(notes) {
    try { window.sessionStorage.setItem(NOTES, JSON.stringify(notes)); } catch (e) { /* not shown then */ }
  }

  function fieldError(input, text) {
    input.setAttribute("aria-invalid", "true");
    var note = el("p", "rz-field-error", text);
    note.id = "rz-error-" + (input.form.dataset.rzStop || input.form.dataset.rzAction);
    note.setAttribute("role", "alert");
    var label = input.closest("label") || input;
    label.parentNode.insertBefore(note, label.nextSibling);
    input.setAttribute("aria-errormessage", note.id);
    input.focus();
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".rz-field-error"), function (n) { n.remove(); });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (n) {
      n.removeAttribute("aria-invalid");
    });
  }

  /* What was loaded, or null after saying why the value cannot be sent (never the plan by default). */
  function loaded(input) {
    var planned = input.max, text = input.value.trim().replace(",", ".");
    if (input.validity && input.validity.badInput) {
      fieldError(input, "Enter a number: how much you loaded.");
      return null;
    }
    if (!text) {
      fieldError(input, "Enter how much you loaded (planned: " + planned + "). An empty box is never taken " +
        "as the planned quantity.");
      return null;
    }
    var quantity = Number(text);
    if (!isFinite(quantity) || quantity <= 0) {
      fieldError(input, "Enter a number above 0. Nothing there to load? Record its drop-off as " +
        "\u201cCould not deliver\u201d.");
      return null;
    }
    if (planned && quantity > Number(planned)) {
      fieldError(input, "At most the planned " + planned + ": the rest stays for the next plan.");
      return null;
    }
    return quantity;
  }

  function label(action) {
    if (!action.stop) return VERBS[action.kind] + " " + action.route;
    var stop = byId("stop-" + action.stop), visit = stop && stop.closest(".rz-visit");
    var what = stop ? (stop.dataset.good || "") : "";
    var site = visit ? visit.dataset.site : "";
    if (action.kind === "picked_up") what = action.quantity + " " + (stop.dataset.unit || "") + " " + what;
    return (VERBS[action.kind] + " " + what.trim() + (site ? " at " + site : "")).replace(/\s+/g, " ");
  }

  function onSubmit(event) {
    event.preventDefault();
    var form = event.currentTarget, kind = form.dataset.rzAction;
    clearErrors(form);
    var action = {
      id: Q.uuid(), route: route, account: account, api: root.dataset.api, kind: kind,
      stop: form.dataset.rzStop ? Number(form.dataset.rzStop) : null, quantity: null, reason: "",
      at: new Date().toISOString()
    };
    if (kind === "picked_up") {
      action.quantity = loaded(form.querySelector("input[name=quantity]"));
      if (action.quantity === null) return;
    }
    var reason = form.querySelector("input[name=reason]");
    if (reason) {
      action.reason = reason.value.trim();
      if (kind === "failed" && !action.reason) {
        fieldError(reason, "Say why it could not be delivered, so it can be planned again sensibly.");
        return;
      }
    }
    action.label = label(action);
    Q.add(action);
    showWaiting(action);
    retryMs = RETRY_FIRST_MS;
    send();
  }

  /* The stop (or the route's offer) shows the press as waiting; its buttons go, so it is not pressed twice. */
  function showWaiting(action) {
    var where = action.stop ? byId("stop-" + action.stop) : null;
    var note = el("p", "rz-waiting", action.label + " \u00b7 waiting to send");
    note.dataset.action = action.id;
    if (where) {
      where.classList.add("rz-stop-waiting");
      Array.prototype.forEach.call(where.querySelectorAll(".rz-actions"), function (n) { n.hidden = true; });
      where.appendChild(note);
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll("#rz-offer, .rz-give-back"), function (n) {
      n.hidden = true;
    });
    var status = byId("rz-route-status");
    status.parentNode.parentNode.insertBefore(note, status.parentNode.nextSibling);
  }

  function plural(n) { return n === 1 ? "1 action" : n + " actions"; }

  function savedAt() {
    var at = new Date(root.dataset.renderedAt);
    if (isNaN(at.getTime())) return "";
    return " at " + at.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  }

  function render() {
    var n = Q.waiting(account).length, online = navigator.onLine;
    var text = "", tone = "", canSend = false, needSignIn = false;
    if (n && state.trouble === "signin") {
      text = plural(n) + " waiting to send: you are signed out. Sign in again and they are sent.";
      tone = "trouble";
      needSignIn = true;
    } else if (n && state.sending) {
      text = "Sending " + plural(n) + "\u2026";
      tone = "waiting";
    } else if (n && !online) {
      text = "Offline. " + plural(n) + " waiting to send: kept on this phone, sent when the connection is back.";
      tone = "offline";
    } else if (n) {
      text = plural(n) + " waiting to send" +
        (state.trouble ? ": no answer from the server yet, trying again." : ".");
      tone = "waiting";
      canSend = true;
    } else if (!online) {
      text = "Offline: this route as saved on this phone" + savedAt() + ". What you record is kept here " +
        "and sent when the connection is back.";
      tone = "offline";
    } else if (state.notes.length) {
      text = state.notes.join(" ");
      tone = "ok";
    } else if (state.saved) {
      text = "Saved on this phone: this route opens without a connection.";
      tone = "ok";
    }
    var sync = byId("rz-sync");
    sync.hidden = !text;
    sync.className = "rz-sync" + (tone ? " rz-sync-" + tone : "");
    sync.dataset.waiting = String(n);
    byId("rz-sync-text").textContent = text;
    byId("rz-send-now").hidden = !canSend;
    byId("rz-sign-in").hidden = !needSignIn;
    renderRefused();
  }

  function renderRefused() {
    var list = byId("rz-refused"), notes = Q.refused(account);
    list.textContent = "";
    notes.forEach(function (note) {
      var item = el("li");
      item.appendChild(el("span", "", "Not recorded: " + note.label + ". " + note.message));
      var ok = el("button", "rz-button rz-secondary", "OK");
      ok.type = "button";
      ok.addEventListener("click", function () { Q.dismiss(note.id); renderRefused(); });
      item.appendChild(ok);
      list.appendChild(item);
    });
    list.hidden = !notes.length;
  }

  function send() {
    clearTimeout(retryTimer);
    if (!Q.waiting(account).length || !navigator.onLine || Q.busy()) { render(); return; }
    state.sending = true;
    render();
    Q.flush(csrf, account).then(function (report) {
      state.sending = false;
      state.trouble = report.trouble;
      var answered = report.sent.length + report.refused.length;
      if (answered) {
        keepNotes(report.sent.map(function (n) { return n.label + ": " + n.message; }));
      }
      if (!report.trouble && answered) {
        window.location.reload();  // the server's view of the route, which the worker keeps for offline
        return;
      }
      if (report.trouble === "offline" || report.trouble === "server") {
        retryTimer = setTimeout(send, retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
      render();
    });
  }

  byId("rz-send-now").addEventListener("click", function () { retryMs = RETRY_FIRST_MS; send(); });
  window.addEventListener("online", function () { retryMs = RETRY_FIRST_MS; state.trouble = null; send(); });
  window.addEventListener("offline", render);

  function keepForOffline() {
    if (!("serviceWorker" in navigator) || !root.dataset.worker) return;
    var controlled = !!navigator.serviceWorker.controller;
    if (controlled && !navigator.onLine) { state.saved = true; root.dataset.offlineReady = "1"; }
    navigator.serviceWorker.register(root.dataset.worker, {scope: root.dataset.scope}).then(function () {
      return navigator.serviceWorker.ready;
    }).then(function (registration) {
      if (!navigator.onLine || !registration.active) return controlled;
      var urls = [root.dataset.gpx];
      if (!controlled) {  // this first visit came from the network, not through the worker: keep it now
        urls.push(window.location.pathname);
        (performance.getEntriesByType ? performance.getEntriesByType("resource") : []).forEach(function (e) {
          urls.push(e.name);
        });
      }
      return ask(registration.active, {type: "keep", urls: urls});
    }).then(function (kept) {
      if (!kept) return;
      state.saved = true;
      root.dataset.offlineReady = "1";
      render();
    }).catch(function () { /* no worker (e.g. plain HTTP): the page still works while online */ });
  }

  function ask(worker, message) {
    return new Promise(function (resolve) {
      var channel = new MessageChannel();
      var timer = setTimeout(function () { resolve(false); }, 30000);
      channel.port1.onmessage = function (event) {
        clearTimeout(timer);
        resolve(event.data && event.data.type === "kept");
      };
      worker.postMessage(message, [channel.port2]);
    });
  }

  Q.waiting(account).filter(function (a) { return a.route === route; }).forEach(showWaiting);
  render();
  keepForOffline();
  send();
})();
