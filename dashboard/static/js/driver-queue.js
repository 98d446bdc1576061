/* The driver's actions waiting to reach the server, kept on the phone (localStorage) so that neither a
 * dead connection nor a closed tab loses a press. Each action has the UUID made when it was pressed; the
 * server applies an id once and answers a repeat with the first answer, so sending again after an answer
 * was lost is always safe.
 *
 * RhizomeQueue.add(action) keeps one; RhizomeQueue.flush(csrf, account) sends this account's actions in the
 * order they were pressed (a delivery after its pickup) and resolves to what happened:
 *   {sent: [...answers], refused: [...], waiting: n, trouble: null | "offline" | "signin" | "server"}.
 * An action leaves the queue only with an answer from the server: applied (2xx) or refused (4xx, kept in
 * RhizomeQueue.refused() for the driver to read). Signed out (401, 403, a stale CSRF token) keeps it until
 * the driver signs in again; no answer or a 5xx keeps it for the next try.
 */
(function () {
  "use strict";
  var QUEUE = "rhizome.driver.queue.v1";
  var REFUSED = "rhizome.driver.refused.v1";
  var SEND_TIMEOUT_MS = 20000;
  var memory = {};  // when the browser refuses storage (some private modes): this tab only

  function read(key) {
    try {
      var text = window.localStorage.getItem(key);
      return text ? JSON.parse(text) : [];
    } catch (e) {
      return memory[key] || [];
    }
  }

  function write(key, list) {
    memory[key] = list;
    try { window.localStorage.setItem(key, JSON.stringify(list)); } catch (e) { /* memory only */ }
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));  // crypto.randomUUID needs HTTPS; this does not
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function classify(status, body) {
    if (status >= 200 && status < 300) return "sent";
    if (status === 401 || status === 403) return "signin";
    if (status === 400 && /security token/.test((body && body.message) || "")) return "signin";
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) return "refused";
    return "server";
  }

  function send(action, csrf) {
    var control = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (control) control.abort(); }, SEND_TIMEOUT_MS);
    var body = {id: action.id, kind: action.kind};
    if (action.stop) body.stop = action.stop;
    if (action.quantity !== null && action.quantity !== undefined) body.quantity = action.quantity;
    if (action.reason) body.reason = action.reason;
    return fetch(action.api, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
      signal: control ? control.signal : undefined
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        return {outcome: classify(response.status, answer), status: response.status, answer: answer};
      });
    }, function () {
      return {outcome: "offline", status: 0, answer: {}};
    }).then(function (result) {
      clearTimeout(timer);
      return result;
    });
  }

  var busy = null;

  function flush(csrf, account) {
    if (busy) return busy;
    var report = {sent: [], refused: [], waiting: 0, trouble: null};
    function next() {
      var mine = read(QUEUE).filter(function (a) { return a.account === account; });
      if (!mine.length) return Promise.resolve(report);
      var action = mine[0];
      return send(action, csrf).then(function (result) {
        if (result.outcome === "sent" || result.outcome === "refused") {
          remove(action.id);
          var note = {id: action.id, route: action.route, label: action.label, account: action.account,
                      message: result.answer.message || ("HTTP " + result.status),
                      replayed: !!result.answer.replayed};
          if (result.outcome === "sent") report.sent.push(note);
          else { report.refused.push(note); write(REFUSED, read(REFUSED).concat([note])); }
          return next();
        }
        report.trouble = result.outcome;
        return report;
      });
    }
    busy = next().then(function (done) {
      busy = null;
      done.waiting = mineCount(account);
      return done;
    }, function (error) {
      busy = null;
      throw error;
    });
    return busy;
  }

  function mineCount(account) {
    return read(QUEUE).filter(function (a) { return a.account === account; }).length;
  }

  function remove(id) {
    write(QUEUE, read(QUEUE).filter(function (a) { return a.id !== id; }));
  }

  window.RhizomeQueue = {
    uuid: uuid,
    add: function (action) { write(QUEUE, read(QUEUE).concat([action])); },
    waiting: function (account) { return read(QUEUE).filter(function (a) { return a.account === account; }); },
    refused: function (account) {
      return read(REFUSED).filter(function (n) { return n.account === account; });
    },
    dismiss: function (id) { write(REFUSED, read(REFUSED).filter(function (n) { return n.id !== id; })); },
    flush: flush,
    busy: function () { return !!busy; }
  };
})();
