// The composer's quick-reply picker ([data-quick-replies] inside [data-composer]).
// "/" at the start of the text opens it, and what follows the slash filters it;
// Ctrl+/ (or the "Quick replies" button) opens it with its own search field. ↑ ↓
// choose, Enter inserts the reply's text (replacing "/filter", or at the caret),
// Esc closes. Options come from the server, the person's most used first; a pick is
// counted (POST to the option's data-used-url). A media reply (data-msgtype,
// data-library: a library image, voice, video or published article) instead loads the
// composer of that message type with the item chosen (?type=…&library=…, as the type
// tabs and the library page do) and puts the focus on Send: one click or Ctrl+Enter
// sends it.
(function () {
  "use strict";
  var open = null; // {picker, text, search, list, fromSlash, index, asked}
  var SLASH_QUERY_MAX = 40;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (ignored) {
      return "";
    }
  }

  function partsFor(element) {
    var composer = element.closest && element.closest("[data-composer]");
    var picker = composer && composer.querySelector("[data-quick-replies]");
    var text = composer && composer.querySelector("textarea[name=content]");
    if (!picker || !text) return null;
    return {
      picker: picker, text: text,
      search: picker.querySelector("[data-quick-reply-search]"),
      list: picker.querySelector("[data-quick-reply-options]"),
      fromSlash: false, index: -1, asked: 0,
    };
  }

  function options() {
    return open ? Array.prototype.slice.call(open.list.querySelectorAll("[data-quick-reply]")) : [];
  }

  function highlight(index) {
    var all = options();
    if (!all.length) { open.index = -1; open.text.removeAttribute("aria-activedescendant"); return; }
    open.index = (index + all.length) % all.length;
    all.forEach(function (option, i) { option.setAttribute("aria-selected", i === open.index ? "true" : "false"); });
    var chosen = all[open.index];
    chosen.scrollIntoView({ block: "nearest" });
    (open.fromSlash ? open.text : open.search).setAttribute("aria-activedescendant", chosen.id);
  }

  function load(query) {
    if (!open) return;
    var asked = ++open.asked;
    var current = open;
    var url = current.picker.getAttribute("data-pick-url") + "?q=" + encodeURIComponent(query);
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        if (open !== current || asked !== current.asked) return; // a newer query answered first, or closed
        current.list.innerHTML = html;
        highlight(0);
      })
      .catch(function () { /* the picker stays as it was; typing again retries */ });
  }

  function show(element, fromSlash, query) {
    if (!open || !open.picker.isConnected || open.text !== (partsFor(element) || {}).text) {
      close();
      open = partsFor(element);
      if (!open) return;
    }
    open.fromSlash = fromSlash;
    open.picker.hidden = false;
    open.search.hidden = fromSlash;
    open.text.setAttribute("aria-controls", "quick-reply-options");
    open.text.setAttribute("aria-expanded", "true");
    if (!fromSlash) { open.search.value = query; open.search.focus(); }
    load(query);
  }

  function close() {
    if (!open) return;
    open.picker.hidden = true;
    open.text.removeAttribute("aria-activedescendant");
    open.text.setAttribute("aria-expanded", "false");
    open = null;
  }

  function count(option) {
    fetch(option.getAttribute("data-used-url"), {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
    }).catch(function () { /* counting is best effort */ });
  }

  function chooseMedia(option) {
    var composer = open.picker.closest("[data-composer]");
    var url = open.picker.getAttribute("data-conversation-url") + "?type=" + encodeURIComponent(option.getAttribute("data-msgtype"))
      + "&library=" + encodeURIComponent(option.getAttribute("data-library"));
    var text = open.text, fromSlash = open.fromSlash;
    close();
    if (fromSlash) {
      text.value = ""; // the "/filter" typed to find it is no draft to keep
      text.dispatchEvent(new Event("input", { bubbles: true }));
    }
    count(option);
    window.htmx.ajax("GET", url, { target: composer, swap: "outerHTML" }).then(function () {
      var send = document.querySelector("[data-composer] form button.primary[type=submit]");
      if (send) send.focus();
    });
  }

  function choose(option) {
    if (!open || !option) return;
    if (option.hasAttribute("data-library")) { chooseMedia(option); return; }
    var text = open.text;
    var reply = option.getAttribute("data-text") || "";
    var caret = reply.length;
    if (open.fromSlash) {
      text.value = reply;
    } else {
      var start = text.selectionStart || 0, end = text.selectionEnd || 0;
      text.value = text.value.slice(0, start) + reply + text.value.slice(end);
      caret = start + reply.length;
    }
    close();
    text.focus();
    text.setSelectionRange(caret, caret);
    text.dispatchEvent(new Event("input", { bubbles: true }));
    count(option);
  }

  function slashQuery(value) {
    if (value.charAt(0) !== "/" || value.indexOf("\n") !== -1 || value.length > SLASH_QUERY_MAX) return null;
    return value.slice(1);
  }

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-composer] textarea[name=content]")) {
      var query = slashQuery(target.value);
      if (query !== null) show(target, true, query);
      else if (open && open.fromSlash) close();
    } else if (open && target === open.search) {
      load(target.value);
    }
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "/" && (event.ctrlKey || event.metaKey) && target.closest && target.closest("[data-composer]")) {
      event.preventDefault();
      if (open) close(); else show(target, false, "");
      return;
    }
    if (!open || (target !== open.text && target !== open.search)) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      highlight(open.index + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter" && !event.ctrlKey && !event.metaKey && !event.shiftKey && !event.isComposing) {
      var chosen = options()[open.index];
      if (chosen || target === open.search) event.preventDefault();
      if (chosen) choose(chosen);
    } else if (event.key === "Escape") {
      event.preventDefault();
      var text = open.text;
      close();
      text.focus();
    }
  });

  document.addEventListener("mousedown", function (event) {
    var option = open && event.target.closest && event.target.closest("[data-quick-reply]");
    if (option && open.list.contains(option)) {
      event.preventDefault(); // keep the focus in the message box
      choose(option);
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-quick-reply-open]");
    if (button) {
      if (open) close(); else show(button, false, "");
    }
  });

  // The composer is replaced after each send: a picker of the old one is gone.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (open && event.detail.target && event.detail.target.contains(open.picker)) close();
  });
})();
