// Shows the chosen avatar before it is uploaded, with the same advice the server
// gives (JPEG only, at most 5 MB, 640×640 best). The server checks again.
// Hooks: <input type=file data-avatar-preview="ID"> where ID is the preview box,
// holding an <img> and a <ul data-hints>; messages come from data-msg-* on the input.
(function () {
  const MAX_BYTES = 5 * 1024 * 1024;
  const ADVISED = 640;

  function bind(input) {
    if (input.dataset.bound) return;
    input.dataset.bound = "1";
    input.addEventListener("change", () => {
      const box = document.getElementById(input.dataset.avatarPreview);
      if (!box) return;
      const img = box.querySelector("img");
      const hints = box.querySelector("[data-hints]");
      hints.replaceChildren();
      const file = input.files && input.files[0];
      if (!file) { box.hidden = true; return; }
      const say = (text) => { const li = document.createElement("li"); li.textContent = text; hints.appendChild(li); };
      if (file.type && file.type !== "image/jpeg") say(input.dataset.msgNotJpeg);
      if (file.size > MAX_BYTES) say(input.dataset.msgTooBig);
      const url = URL.createObjectURL(file);
      img.onload = () => {
        if (img.naturalWidth !== img.naturalHeight) say(input.dataset.msgNotSquare);
        if (Math.min(img.naturalWidth, img.naturalHeight) < ADVISED) say(input.dataset.msgSmall);
        URL.revokeObjectURL(url);
      };
      img.onerror = () => { say(input.dataset.msgUnreadable); URL.revokeObjectURL(url); };
      img.src = url;
      box.hidden = false;
    });
  }
  function scan(root) { root.querySelectorAll("input[type=file][data-avatar-preview]").forEach(bind); }
  document.addEventListener("DOMContentLoaded", () => scan(document));
  document.addEventListener("htmx:load", (event) => scan(event.detail.elt));
})();
