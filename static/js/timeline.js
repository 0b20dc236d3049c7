// Keeps a conversation timeline ([data-timeline]) readable while it refreshes:
// on load it shows the newest message, or the record a history result pointed at
// (.focus); after each refresh it stays at the newest message if the reader was
// there, and otherwise keeps the reader's place.
(function () {
  "use strict";
  var NEAR_BOTTOM = 48;
  var saved = null;

  function list() {
    return document.querySelector("[data-timeline] .messages-list");
  }

  function atBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM;
  }

  function initial() {
    var el = list();
    if (!el) return;
    var focus = el.querySelector(".focus");
    if (focus) {
      el.scrollTop = Math.max(0, focus.offsetTop - el.offsetTop - el.clientHeight / 3);
    } else {
      el.scrollTop = el.scrollHeight;
    }
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.matches || !target.matches("[data-timeline]")) return;
    var el = list();
    saved = el ? { bottom: atBottom(el), top: el.scrollTop } : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (saved === null) return;
    var el = list();
    if (el) el.scrollTop = saved.bottom ? el.scrollHeight : saved.top;
    saved = null;
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", initial);
  } else {
    initial();
  }
})();
