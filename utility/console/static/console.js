// The console's one script: parts of a page that refresh themselves (data-refresh="<url>",
// data-every="<seconds>"). The request says X-Console-Refresh, so it does not count as the
// operator's activity (the session still times out) and the server sends only that part.
(function () {
  "use strict";
  document.querySelectorAll("[data-refresh]").forEach(function (live) {
    var every = 1000 * (parseInt(live.getAttribute("data-every"), 10) || 10);
    function refresh() {
      if (document.hidden) { return; }
      fetch(live.getAttribute("data-refresh"), {headers: {"X-Console-Refresh": "1"}, credentials: "same-origin"})
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          // Not while the operator is using a control inside: a form must not vanish under the pointer.
          if (html !== null && html !== undefined && !live.contains(document.activeElement)) { live.innerHTML = html; }
        })
        .catch(function () { /* offline a moment: the next turn tries again */ });
    }
    window.setInterval(refresh, every);
  });
}());
