// Selects marked data-autosubmit (the account and language switchers) submit their
// form on change; without JavaScript their <noscript> button does it.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
    field.form.requestSubmit();
  }
});
