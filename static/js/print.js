// The transcript's "Print" button ([data-print]) opens the browser's print dialog.
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.addEventListener("click", function () { window.print(); });
});
