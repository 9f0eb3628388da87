/* The dashboard's live parts, refetched in place: the first screen (#now) every couple of seconds, the planned
   changes, charts and tables below (#live) less often. Each part is replaced whole; what someone was typing in
   a part (a planned change's cancel reason) and where the focus was are carried over to the new copy, so a
   reason being typed is never lost. If the mode changed meanwhile, the switch is turned round to offer the
   other mode and its tick is cleared, saying so aloud. When a refresh fails, the page says since when its
   figures are stale. */
(function () {
  "use strict";
  var areas = Array.prototype.slice.call(document.querySelectorAll("[data-src][data-refresh]"));
  if (!areas.length) { return; }
  var status = document.getElementById("live-status");
  var problem = document.getElementById("live-problem");
  var loaded = new Date();  // the page itself came with fresh figures
  areas.forEach(function (a) { a.fresh = loaded; a.failed = ""; });
  var fastest = Math.min.apply(null, areas.map(function (a) { return parseInt(a.getAttribute("data-refresh"), 10) || 15; }));

  function clock(when) { return when.toISOString().slice(11, 19) + " UTC"; }
  // Quiet: a screen reader is not told every few seconds that the figures were redrawn; only problems are announced.
  function say(text) { if (status) { status.textContent = text; } }
  // Said once per failure, and the same words while it lasts: an alert is not repeated every few seconds.
  function stale() {
    var failed = areas.filter(function (a) { return a.failed; });
    areas.forEach(function (a) { a.classList.toggle("stale", !!a.failed); });
    if (!problem) { return; }
    var since = failed.reduce(function (t, a) { return a.fresh < t ? a.fresh : t; }, new Date());
    var text = failed.length ? "Data is stale since " + clock(since) + ": " + failed[0].failed : "";
    problem.hidden = !text;
    if (problem.textContent !== text) { problem.textContent = text; }
  }

  function turnSwitch(part) {
    var mode = part.getAttribute("data-mode"), target = part.getAttribute("data-target");
    var card = document.getElementById("mode-card");
    var form = card && card.querySelector("form.switch-form");
    if (!card) { return; }
    card.classList.remove("mode-live", "mode-message");
    card.classList.add("mode-" + mode);
    if (!form || form.elements.expected.value === mode) { return; }
    form.elements.expected.value = mode;
    form.elements.mode.value = target;
    form.elements.confirm.checked = false;
    form.querySelector(".mode-target").textContent = target;
    form.querySelector(".switch-label").textContent = "Switch to " + target + " mode";
    // Overriding the go-live check is for a switch to live only; the field comes back with a reload.
    if (form.elements.override) { form.elements.override.parentNode.hidden = target !== "live"; }
    var note = document.getElementById("mode-changed");
    note.textContent = "The hotline was switched to " + mode + " mode by " + part.getAttribute("data-by") +
      " meanwhile. The switch below now offers " + target + " mode; your reason is kept.";
    note.hidden = false;
  }

  // Replace `old` by `part`, keeping the visible fields' values and the focus (by their ids): a field whose
  // form is gone with the new copy (the change was carried out meanwhile) goes with it.
  function replaceKeepingInput(old, part) {
    var typed = {}, active = document.activeElement, focused = null;
    old.querySelectorAll("input[id], textarea[id], select[id]").forEach(function (field) {
      if (field.type === "hidden") { return; }
      typed[field.id] = (field.type === "checkbox" || field.type === "radio") ? field.checked : field.value;
    });
    if (active && active.id && old.contains(active)) {
      focused = {id: active.id, start: active.selectionStart, end: active.selectionEnd};
    }
    old.replaceWith(part);
    Object.keys(typed).forEach(function (id) {
      var twin = document.getElementById(id);
      if (!twin || !part.contains(twin)) { return; }
      if (typeof typed[id] === "boolean") { twin.checked = typed[id]; } else { twin.value = typed[id]; }
    });
    var again = focused && document.getElementById(focused.id);
    if (again && part.contains(again)) {
      again.focus();
      if (typeof focused.start === "number" && again.setSelectionRange) { again.setSelectionRange(focused.start, focused.end); }
    }
  }

  function refreshArea(area) {
    return fetch(area.getAttribute("data-src"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (resp) {
        if (resp.redirected || !resp.ok) {
          throw new Error("reload the page (you may need to sign in again).");
        }
        return resp.text();
      })
      .then(function (html) {
        var parts = document.createElement("template");
        parts.innerHTML = html;
        parts.content.querySelectorAll("[data-live-part]").forEach(function (part) {
          var name = part.getAttribute("data-live-part");
          var old = area.querySelector('[data-live-part="' + name + '"]');
          if (old) { replaceKeepingInput(old, part); }
          if (name === "mode") { turnSwitch(part); }
        });
        return true;
      });
  }

  function refresh(which) {
    if (document.hidden) { return Promise.resolve(false); }
    return Promise.all((which || areas).map(function (area) {
      return refreshArea(area).then(function () {
        area.fresh = new Date();
        area.failed = "";
        return true;
      }, function (exc) {
        area.failed = exc && exc.message && exc.message.indexOf("reload") === 0 ? exc.message :
          "the figures could not be refreshed; trying again every " + fastest + " seconds.";
        return false;
      });
    })).then(function (done) {
      stale();
      if (done.indexOf(false) < 0) {
        say("Figures updated at " + clock(new Date()) + "; they refresh every " + fastest + " seconds.");
      }
      return done.indexOf(false) < 0;
    });
  }

  window.ivrConsole = {refresh: function () { return refresh(); }};
  areas.forEach(function (area) {
    var seconds = parseInt(area.getAttribute("data-refresh"), 10) || 15;
    window.setInterval(function () { refresh([area]); }, seconds * 1000);
  });
}());

/* The rules editor's line numbers: kept in step with the text and its scrolling. */
(function () {
  "use strict";
  var text = document.getElementById("rules-text"), gutter = document.getElementById("rules-gutter");
  if (!text || !gutter) { return; }
  function number() {
    var n = text.value.split("\n").length, lines = [];
    for (var i = 1; i <= n; i += 1) { lines.push(i); }
    gutter.textContent = lines.join("\n") + "\n";
    gutter.scrollTop = text.scrollTop;
  }
  text.addEventListener("input", number);
  text.addEventListener("scroll", function () { gutter.scrollTop = text.scrollTop; });
  number();
}());
