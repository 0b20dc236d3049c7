// Alerts for people who serve customers. #alerts (messaging/_alerts.html) is polled
// on every page; after each answer this compares the counts with the previous ones:
// - the tab title starts with the number of waiting customers plus unread messages
//   in this person's conversations ("(3) Inbox · kfadmin"), if they chose it;
// - something new (a customer started waiting, a new message, a supervisor's
//   threshold passed) plays static/sounds/alert.wav and shows a notification, each
//   if they chose it. Notifications need the browser's permission, asked only when
//   the person presses the button on the alert settings page, never on load.
(function () {
  "use strict";
  var previous = null;
  var TITLE_COUNT = /^\(\d+\+?\)\s/;

  function num(el, name) {
    return parseInt(el.getAttribute("data-" + name) || "0", 10) || 0;
  }

  function baseTitle() {
    return document.title.replace(TITLE_COUNT, "");
  }

  function setTitle(count, show) {
    var base = baseTitle();
    document.title = show && count > 0 ? "(" + (count > 99 ? "99+" : count) + ") " + base : base;
  }

  function ring(el) {
    var url = el.getAttribute("data-sound-url");
    if (!url) return;
    try {
      var audio = new Audio(url);
      var played = audio.play();
      if (played && played.catch) played.catch(function () { /* autoplay refused until a click */ });
    } catch (e) { /* no audio */ }
  }

  function notify(el, title, body, tag) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      var n = new Notification(title, { body: body || "", tag: tag });
      n.onclick = function () { window.focus(); n.close(); };
    } catch (e) { /* some browsers allow notifications only from a service worker */ }
  }

  function news(el, now) {
    // What is new since the previous answer: [title, body, tag] for each.
    var out = [];
    if (!previous) return out;
    if (now.waiting > previous.waiting) out.push([el.getAttribute("data-t-waiting"), "", "kfadmin-waiting"]);
    if (now.unread > previous.unread || (now.latestId && now.latestId !== previous.latestId && now.unread > 0)) {
      var name = el.getAttribute("data-latest-name") || "";
      out.push([el.getAttribute("data-t-message").replace("{name}", name), el.getAttribute("data-latest-text") || "", "kfadmin-message"]);
    }
    if (now.supervisor) {
      if (now.waitingOver > previous.waitingOver) out.push([el.getAttribute("data-t-waiting-over"), "", "kfadmin-waiting-over"]);
      if (now.unansweredOver > previous.unansweredOver) out.push([el.getAttribute("data-t-unanswered-over"), "", "kfadmin-unanswered-over"]);
    }
    return out;
  }

  function update() {
    var el = document.querySelector("#alerts[data-alerts]");
    if (!el) return;
    var now = {
      waiting: num(el, "waiting"),
      waitingOver: num(el, "waiting-over"),
      unread: num(el, "unread"),
      unansweredOver: num(el, "unanswered-over"),
      latestId: num(el, "latest-id"),
      supervisor: el.getAttribute("data-supervisor") === "1",
    };
    setTitle(now.waiting + now.unread, el.getAttribute("data-title-count") === "1");
    var fresh = news(el, now);
    if (fresh.length) {
      if (el.getAttribute("data-sound") === "1") ring(el);
      if (el.getAttribute("data-notify") === "1") {
        fresh.forEach(function (item) { notify(el, item[0], item[1], item[2]); });
      }
    }
    previous = now;
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (target && target.id === "alerts") update();
    else if (previous) {
      // A move to another conversation set a new title: put the count back on it.
      var el = document.querySelector("#alerts[data-alerts]");
      if (el) setTitle(previous.waiting + previous.unread, el.getAttribute("data-title-count") === "1");
    }
  });

  // The permission button on the alert settings page.
  function showPermission(box) {
    var state = box.querySelector("[data-notify-state]");
    var button = box.querySelector("[data-notify-ask]");
    if (!("Notification" in window)) {
      state.textContent = box.getAttribute("data-t-unsupported");
      button.hidden = true;
      return;
    }
    if (Notification.permission === "granted") state.textContent = box.getAttribute("data-t-granted");
    else if (Notification.permission === "denied") state.textContent = box.getAttribute("data-t-denied");
    else state.textContent = "";
    button.hidden = Notification.permission !== "default";
  }

  function initPermission() {
    var box = document.querySelector("[data-notify-permission]");
    if (!box) return;
    showPermission(box);
    box.querySelector("[data-notify-ask]").addEventListener("click", function () {
      var asked = Notification.requestPermission(function () { showPermission(box); });
      if (asked && asked.then) asked.then(function () { showPermission(box); });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initPermission);
  else initPermission();
})();
