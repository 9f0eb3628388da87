/* The dashboard's live figures: refetched every few seconds. Only #live is replaced, and it holds no form,
   so an open form (the mode switch, a reason being typed) is never lost. */
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var status = document.getElementById("live-status");
  var seconds = parseInt(live.getAttribute("data-refresh"), 10) || 15;

  function say(text) { if (status) { status.textContent = text; } }

  function refresh() {
    if (document.hidden) { return Promise.resolve(false); }
    return fetch(live.getAttribute("data-src"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (resp) {
        if (resp.redirected || !resp.ok) {
          say("Live figures paused: reload the page (you may need to sign in again).");
          return false;
        }
        return resp.text().then(function (html) {
          live.innerHTML = html;
          say("Figures updated at " + new Date().toLocaleTimeString() + "; they refresh every " + seconds + " seconds.");
          return true;
        });
      })
      .catch(function () { say("Live figures could not be refreshed; trying again shortly."); return false; });
  }

  window.ivrConsole = {refresh: refresh};
  window.setInterval(refresh, seconds * 1000);
}());
