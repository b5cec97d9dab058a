// The pages' only script, and an optional one: every page works without it.
// A form marked data-once sends once: its buttons are disabled after the first submit, so a
// double click sends one request (the server refuses a second charge anyway: the form's key).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once")) { return; }
  if (form.getAttribute("data-sent") === "1") { event.preventDefault(); return; }
  form.setAttribute("data-sent", "1");
  window.setTimeout(function () {
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  }, 0);
});
