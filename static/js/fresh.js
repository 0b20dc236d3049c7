// Responses can arrive out of order (a slow poll answering after a newer refresh).
// A region marked data-as-of="<server time of its data>" is only replaced by a copy
// at least as fresh, so a late answer never rolls the page back. Works for direct
// swaps of the region (htmx:beforeSwap) and out-of-band ones (htmx:oobBeforeSwap).
(function () {
  "use strict";

  function stamp(element) {
    var value = element && element.getAttribute ? element.getAttribute("data-as-of") : null;
    return value ? parseFloat(value) : null;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var current = stamp(event.detail.target);
    if (current === null || !event.detail.shouldSwap) return;
    // The region's own root is the first element of the answer.
    var match = /^\s*<[^>]*\sdata-as-of="([0-9.]+)"/.exec(event.detail.serverResponse || "");
    if (match && parseFloat(match[1]) < current) event.detail.shouldSwap = false;
  });

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var current = stamp(event.detail.target);
    var fragment = event.detail.fragment;
    var next = stamp(fragment && (fragment.firstElementChild || fragment));
    if (current !== null && next !== null && next < current) event.detail.shouldSwap = false;
  });
})();
