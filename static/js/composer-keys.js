// The composer from the keyboard: Ctrl+Enter (⌘+Enter on a Mac) sends; after a send
// (or a refused one) the focus is back in the message box, so the next message is
// typed without reaching for the mouse. Skip links marked data-focus-composer and
// data-focus-find put the caret in the message box or the conversation's find field.
(function () {
  "use strict";
  var refocus = false;

  function field(composer) {
    return composer.querySelector("[aria-invalid=true]")
      || composer.querySelector("textarea[name=content]")
      || composer.querySelector("form textarea, form input:not([type=hidden]):not([type=search]), form select");
  }

  function focusComposer() {
    var composer = document.querySelector("[data-composer]");
    var target = composer && field(composer);
    if (!target) return false;
    target.focus();
    if (typeof target.setSelectionRange === "function" && target.value !== undefined) {
      var end = target.value.length;
      try { target.setSelectionRange(end, end); } catch (ignored) { /* not a text field */ }
    }
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.defaultPrevented) return;
    var form = event.target.closest && event.target.closest("[data-composer] form");
    if (!form) return;
    event.preventDefault();
    form.requestSubmit(form.querySelector("button.primary[type=submit]") || undefined);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.closest && elt.closest("[data-composer]") && elt.tagName === "FORM") refocus = true;
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (!refocus) return;
    if (focusComposer()) refocus = false;
  });

  document.addEventListener("htmx:responseError", function () { refocus = false; });

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-focus-composer], [data-focus-find]");
    if (!link) return;
    if (link.hasAttribute("data-focus-composer")) {
      if (focusComposer()) event.preventDefault();
      return;
    }
    var find = document.querySelector("#customer-panel input[name=q]");
    if (find) {
      event.preventDefault();
      find.focus();
    }
  });
})();
