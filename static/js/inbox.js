// The inbox beside a conversation ([data-inbox]) and the conversation region:
// - marks the open conversation in the inbox (aria-current), from the address bar,
//   after every refresh of the list and every move to another conversation;
// - after a move, shows the newest message of the new timeline;
// - tells kfadmin the person is reading (POST data-seen-url, at most every 10 s) on
//   a click or a key inside the conversation, or when the tab comes back into view,
//   so its messages stop counting as unread.
(function () {
  "use strict";
  var SEEN_EVERY_MS = 10000;
  var lastSeen = 0;

  function markCurrent() {
    var path = window.location.pathname;
    document.querySelectorAll("[data-inbox] a[data-openid]").forEach(function (link) {
      if (link.getAttribute("href") === path) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    });
  }

  function csrfHeader() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function seen() {
    var region = document.querySelector("#conversation-region[data-seen-url]");
    var now = Date.now();
    if (!region || now - lastSeen < SEEN_EVERY_MS) return;
    lastSeen = now;
    fetch(region.getAttribute("data-seen-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfHeader() },
    }).then(function () {
      document.body.dispatchEvent(new CustomEvent("conversationSeen", { bubbles: true }));
    }).catch(function () { /* the next interaction tries again */ });
  }

  function inRegion(event) {
    return event.target && event.target.closest && event.target.closest("#conversation-region");
  }

  document.addEventListener("click", function (event) { if (inRegion(event)) seen(); });
  document.addEventListener("keydown", function (event) { if (inRegion(event)) seen(); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") seen();
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target) return;
    if (target.id === "conversation-region") {
      lastSeen = Date.now(); // opening it marked it seen on the server
      var list = document.querySelector("[data-timeline] .messages-list");
      if (list) list.scrollTop = list.scrollHeight;
      // The inbox's unread count of this conversation is gone now.
      document.body.dispatchEvent(new CustomEvent("conversationSeen", { bubbles: true }));
    }
    markCurrent();
  });

  // Back and forward restore a page from htmx's history cache.
  document.addEventListener("htmx:historyRestore", markCurrent);

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", markCurrent);
  else markCurrent();
})();
