// Logging out forgets what this browser kept for the person (the composer's unsent
// drafts, static/js/draft.js), so the next person at a shared computer finds none.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    if (!event.target.matches("form[data-logout]")) return;
    try {
      var store = window.localStorage;
      for (var i = store.length - 1; i >= 0; i--) {
        var key = store.key(i);
        if (key && key.indexOf("kfadmin:draft:") === 0) store.removeItem(key);
      }
    } catch (e) {
      // Storage refused (private mode): nothing was kept.
    }
  });
})();
