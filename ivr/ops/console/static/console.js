/* The dashboard's live parts (warnings, the mode card's status, the figures), refetched every few seconds.
   Each part is replaced whole; none holds a form, so a reason being typed is never lost. If the mode changed
   meanwhile, the switch is turned round to offer the other mode and its tick is cleared, saying so aloud. */
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var status = document.getElementById("live-status");
  var problem = document.getElementById("live-problem");
  var seconds = parseInt(live.getAttribute("data-refresh"), 10) || 15;

  // Quiet: a screen reader is not told every 15 s that the figures were redrawn; only problems are announced.
  function say(text) { if (status) { status.textContent = text; } }
  function alarm(text) {
    if (!problem) { return; }
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
    document.querySelectorAll("#stat-mode").forEach(function (el) { el.textContent = mode; });
    if (!form || form.elements.expected.value === mode) { return; }
    form.elements.expected.value = mode;
    form.elements.mode.value = target;
    form.elements.confirm.checked = false;
    form.querySelector(".mode-target").textContent = target;
    form.querySelector(".switch-label").textContent = "Switch to " + target + " mode";
    var note = document.getElementById("mode-changed");
    note.textContent = "The hotline was switched to " + mode + " mode by " + part.getAttribute("data-by") +
      " meanwhile. The switch below now offers " + target + " mode; your reason is kept.";
    note.hidden = false;
  }

  function refresh() {
    if (document.hidden) { return Promise.resolve(false); }
    return fetch(live.getAttribute("data-src"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (resp) {
        if (resp.redirected || !resp.ok) {
          alarm("Live figures paused: reload the page (you may need to sign in again).");
          return false;
        }
        return resp.text().then(function (html) {
          var fresh = document.createElement("template");
          fresh.innerHTML = html;
          fresh.content.querySelectorAll("[data-live-part]").forEach(function (part) {
            var name = part.getAttribute("data-live-part");
            var old = live.querySelector('[data-live-part="' + name + '"]');
            if (old) { old.replaceWith(part); }
            if (name === "mode") { turnSwitch(part); }
          });
          alarm("");
          say("Figures updated at " + new Date().toISOString().slice(11, 19) + " UTC; they refresh every " + seconds +
              " seconds.");
          return true;
        });
      })
      .catch(function () { alarm("Live figures could not be refreshed; trying again shortly."); return false; });
  }

  window.ivrConsole = {refresh: refresh};
  window.setInterval(refresh, seconds * 1000);
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
