// Confirmation dialogs loaded by htmx (<dialog data-modal>) open as modals; closing
// one (Cancel, Escape) empties its host so the next one loads fresh. Without
// JavaScript the same links lead to a confirmation page instead.
(function () {
  function open(root) {
    root.querySelectorAll("dialog[data-modal]").forEach((dialog) => {
      if (dialog.open) return;
      dialog.addEventListener("close", () => {
        const host = dialog.closest("[data-modal-host]");
        if (host) host.replaceChildren();
      });
      dialog.showModal();
    });
  }
  document.addEventListener("htmx:load", (event) => open(event.detail.elt.parentElement || document));
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-close-dialog]");
    if (button) {
      const dialog = button.closest("dialog");
      if (dialog) dialog.close();
    }
  });
})();
