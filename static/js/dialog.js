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

// The header's folded menu (<details data-navmore>) closes on a click elsewhere or
// Escape, as a menu does; without JavaScript it opens and closes on its summary.
(function () {
  function closeMenus(except) {
    document.querySelectorAll("details[data-navmore][open]").forEach((menu) => {
      if (menu !== except) menu.open = false;
    });
  }
  document.addEventListener("click", (event) => closeMenus(event.target.closest("details[data-navmore]")));
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const open = document.querySelector("details[data-navmore][open]");
    if (open) {
      open.open = false;
      open.querySelector("summary").focus();
    }
  });
})();
