// Flash messages stay until the reader dismisses them (or the next action replaces
// them); this adds the dismiss button. Its label comes from data-dismiss-label on
// <body>, so it is translated.
(function () {
  function decorate(root) {
    const label = document.body.getAttribute("data-dismiss-label") || "Dismiss";
    root.querySelectorAll(".message").forEach((message) => {
      if (message.querySelector(".dismiss")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "dismiss";
      button.setAttribute("aria-label", label);
      button.textContent = "×";
      button.addEventListener("click", () => message.remove());
      message.appendChild(button);
    });
  }
  document.addEventListener("DOMContentLoaded", () => decorate(document));
  document.addEventListener("htmx:oobAfterSwap", () => decorate(document));
  document.addEventListener("htmx:afterSettle", () => decorate(document));
})();
