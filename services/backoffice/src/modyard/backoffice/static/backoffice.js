// The console works without this file (plain forms); it adds drag-and-drop, the upload's
// progress bar and "select all" checkboxes.
"use strict";

function describeFile(input, label) {
  const file = input.files && input.files[0];
  label.textContent = file ? `${file.name} (${Math.ceil(file.size / 1024)} KiB)` : "No file chosen.";
}

document.addEventListener("DOMContentLoaded", () => {
  for (const zone of document.querySelectorAll("[data-dropzone]")) {
    const input = zone.querySelector("input[type=file]");
    const label = zone.querySelector(".file-name");
    input.addEventListener("change", () => describeFile(input, label));
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || files.length === 0) return;
      const chosen = new DataTransfer();
      chosen.items.add(files[0]);
      input.files = chosen.files;
      describeFile(input, label);
    });
  }
  for (const box of document.querySelectorAll("[data-select-all]")) {
    box.addEventListener("change", () => {
      const form = box.closest("form");
      for (const item of form.querySelectorAll(`input[name="${box.dataset.selectAll}"]`)) {
        item.checked = box.checked;
      }
    });
  }
});

// htmx reports the upload's progress; the bar lives in the form that is uploading.
document.addEventListener("htmx:xhr:progress", (event) => {
  const bar = event.target.querySelector && event.target.querySelector("progress");
  if (bar && event.detail.lengthComputable) {
    const percent = Math.round((event.detail.loaded / event.detail.total) * 100);
    bar.value = percent;
    bar.textContent = `${percent}%`;
  }
});
