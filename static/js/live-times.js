// Relative times that advance without asking the server: <time data-elapsed
// data-seconds="N"> holds a duration that was N seconds when the server rendered it
// ("waiting 6 minutes", "12 min ago"). A poll whose data did not change gets 204 and
// leaves the region alone, so the browser counts on from the time it first saw the
// element, in the server's wording (accounts/templatetags/durations.py, Django's
// timesince: seconds under a minute, else the two largest adjacent units).
(function () {
  "use strict";

  var WORDS = {
    en: {
      second: ["second", "seconds"], minute: ["minute", "minutes"], hour: ["hour", "hours"],
      day: ["day", "days"], week: ["week", "weeks"], month: ["month", "months"], year: ["year", "years"],
      separator: ", "
    },
    "zh-hans": {
      second: ["秒", "秒"], minute: ["分钟", "分钟"], hour: ["小时", "小时"],
      day: ["日", "日"], week: ["周", "周"], month: ["月", "月"], year: ["年", "年"],
      separator: "，"
    }
  };
  var UNITS = [["year", 365 * 86400], ["month", 30 * 86400], ["week", 7 * 86400], ["day", 86400], ["hour", 3600], ["minute", 60]];
  var NBSP = "\u00a0";

  function words() {
    var lang = (document.documentElement.getAttribute("lang") || "en").toLowerCase();
    return lang.indexOf("zh") === 0 ? WORDS["zh-hans"] : WORDS.en;
  }

  function unit(w, name, n) {
    return n + NBSP + w[name][n === 1 ? 0 : 1];
  }

  function duration(seconds) {
    var w = words();
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return unit(w, "second", seconds);
    var parts = [];
    for (var i = 0; i < UNITS.length; i++) {
      var count = Math.floor(seconds / UNITS[i][1]);
      seconds -= count * UNITS[i][1];
      if (parts.length === 0 && count === 0) continue;
      if (count === 0 || parts.length === 2) break;
      parts.push(unit(w, UNITS[i][0], count));
    }
    return parts.join(w.separator);
  }

  var seen = new WeakMap();

  function advance(root) {
    var now = Date.now();
    var times = (root || document).querySelectorAll("time[data-elapsed][data-seconds]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      if (!seen.has(el)) seen.set(el, now);
      var base = parseFloat(el.getAttribute("data-seconds"));
      if (isNaN(base)) continue;
      var text = duration(base + (now - seen.get(el)) / 1000);
      if (el.textContent !== text) el.textContent = text;
    }
  }

  window.kfDuration = duration;  // for the browser tests
  document.addEventListener("DOMContentLoaded", function () { advance(document); });
  document.addEventListener("htmx:afterSettle", function () { advance(document); });
  window.setInterval(function () { advance(document); }, 1000);
})();
