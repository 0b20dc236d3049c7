// Keeps what the person typed in the composer per customer (the region's
// data-draft-key: "<user>:<account>:<openid>"; logout.js forgets them all) and message type, in localStorage, so moving
// to another conversation and back, or reloading, loses nothing. Restored into
// empty fields only; cleared when kfadmin accepted the message for sending (the
// send answers with the timelineChanged event).
(function () {
  "use strict";
  var PREFIX = "kfadmin:draft:";

  function store() {
    try {
      return window.localStorage;
    } catch (e) {
      return null;
    }
  }

  function composerForm() {
    return document.querySelector("#composer form");
  }

  function keyFor(form) {
    var region = document.querySelector("[data-draft-key]");
    var type = form.querySelector("input[name=msgtype]");
    if (!region || !type) return null;
    return PREFIX + region.getAttribute("data-draft-key") + ":" + type.value;
  }

  function fields(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && (el.type === "text" || el.type === "url")))
        && el.name && el.name !== "csrfmiddlewaretoken";
    });
  }

  function save() {
    var form = composerForm(), s = store();
    if (!form || !s) return;
    var key = keyFor(form);
    if (!key) return;
    var values = {}, any = false;
    fields(form).forEach(function (el) {
      if (el.value) { values[el.name] = el.value; any = true; }
    });
    if (any) s.setItem(key, JSON.stringify(values));
    else s.removeItem(key);
  }

  function restore() {
    var form = composerForm(), s = store();
    if (!form || !s) return;
    var key = keyFor(form);
    var raw = key ? s.getItem(key) : null;
    if (!raw) return;
    var values;
    try { values = JSON.parse(raw); } catch (e) { return; }
    fields(form).forEach(function (el) {
      if (!el.value && typeof values[el.name] === "string") el.value = values[el.name];
    });
  }

  document.addEventListener("input", function (event) {
    if (event.target && event.target.closest && event.target.closest("#composer form")) save();
  });

  // Before the swap, while the form that sent is still in the page: the answer
  // replaces it, and a detached form neither matches "#composer form" nor sends its
  // events up to document. (beforeSwap's own elt is the target, #composer.)
  document.addEventListener("htmx:beforeSwap", function (event) {
    var config = event.detail.requestConfig, xhr = event.detail.xhr;
    var form = config && config.elt;
    if (!form || !form.matches || !form.matches("#composer form") || !xhr || xhr.status >= 400) return;
    var trigger = xhr.getResponseHeader("HX-Trigger");
    if (trigger && trigger.indexOf("timelineChanged") !== -1) {
      var key = keyFor(form), s = store();
      if (key && s) s.removeItem(key);
    }
  });

  document.addEventListener("htmx:afterSettle", restore);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", restore);
  else restore();
})();
