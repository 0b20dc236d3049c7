// The composer's file inputs (data-media-input): pick, drop a file on the field
// (data-dropzone), or paste a picture anywhere on the conversation page. A pasted
// picture while another message type is open switches the composer to "Image"
// first. The file goes into the input itself, so the form posts it as a normal
// upload; the server checks it again from its bytes.
(function () {
  "use strict";

  var pending = null; // a pasted picture waiting for the Image composer to load

  function sizeText(bytes) {
    if (bytes >= 1048576) return (bytes / 1048576).toFixed(1) + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " B";
  }

  function preview(input) {
    var zone = input.closest("[data-dropzone]");
    var box = zone && zone.querySelector("[data-media-preview]");
    if (!box) return;
    var old = box.querySelector("img");
    if (old && old.src.indexOf("blob:") === 0) URL.revokeObjectURL(old.src);
    box.textContent = "";
    var file = input.files && input.files[0];
    if (!file) return;
    if (file.type.indexOf("image/") === 0) {
      var img = document.createElement("img");
      img.className = "media-thumb";
      img.alt = file.name;
      img.src = URL.createObjectURL(file);
      box.appendChild(img);
    }
    var label = document.createElement("span");
    label.className = "muted small";
    label.textContent = " " + (file.name || "") + " · " + sizeText(file.size);
    box.appendChild(label);
  }

  function accepts(input, file) {
    var accept = (input.getAttribute("accept") || "").split(",");
    var name = (file.name || "").toLowerCase();
    return accept.some(function (rule) {
      rule = rule.trim().toLowerCase();
      if (!rule) return false;
      if (rule.charAt(0) === ".") return name.slice(-rule.length) === rule;
      return file.type === rule;
    });
  }

  function put(input, file) {
    var transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function inputFor(file) {
    var inputs = document.querySelectorAll("#composer [data-media-input]");
    for (var i = 0; i < inputs.length; i++) {
      if (accepts(inputs[i], file)) return inputs[i];
    }
    return null;
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-media-input]")) preview(event.target);
  });

  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.add("dragging");
  });

  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (zone) zone.classList.remove("dragging");
  });

  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("dragging");
    var input = zone.querySelector("[data-media-input]");
    var file = event.dataTransfer && event.dataTransfer.files[0];
    if (input && file) put(input, file);
  });

  document.addEventListener("paste", function (event) {
    var items = (event.clipboardData && event.clipboardData.files) || [];
    var file = null;
    for (var i = 0; i < items.length; i++) {
      if (items[i].type.indexOf("image/") === 0) { file = items[i]; break; }
    }
    if (!file || !document.getElementById("composer")) return;
    event.preventDefault();
    var input = inputFor(file);
    if (input) { put(input, file); return; }
    var tab = document.querySelector('#composer .type-tabs a[href*="type=image"]');
    if (!tab) return;
    pending = file;
    tab.click();
  });

  // Another region's swap (the timeline's poll, the session box) may come before the
  // Image composer's: the picture waits for the swap that brings its input.
  document.body.addEventListener("htmx:afterSwap", function () {
    if (!pending) return;
    var input = inputFor(pending);
    if (!input) return;
    put(input, pending);
    pending = null;
  });
})();
