// Small behaviours, no inline script anywhere (the CSP forbids it).
document.documentElement.classList.add("js");

// Phones: the menu button folds the links and the search in and out.
document.addEventListener("click", (event) => {
  const toggle = event.target.closest(".nav-toggle");
  if (!toggle) return;
  const bar = toggle.closest(".bar");
  const open = !bar.classList.contains("open");
  bar.classList.toggle("open", open);
  toggle.setAttribute("aria-expanded", open ? "true" : "false");
});

// Copy buttons: data-copy holds the exact text (a digest, a command).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = button.getAttribute("data-copy");
  const done = () => {
    const label = button.textContent;
    button.textContent = "copied";
    setTimeout(() => { button.textContent = label; }, 1200);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }
});

// Confirmation before a tag is rewritten: a form marked data-confirm="ID"
// opens <dialog id=ID> instead of posting; the dialog's own form posts with
// the confirmation field the server insists on. Without JavaScript the first
// form posts without it, and the server answers with a confirmation page.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (!form) return;
  const dialog = document.getElementById(form.getAttribute("data-confirm"));
  if (!dialog || typeof dialog.showModal !== "function") return;
  event.preventDefault();
  dialog.showModal();
  const cancel = dialog.querySelector("[data-close]");
  if (cancel) cancel.focus();
});
document.addEventListener("click", (event) => {
  const close = event.target.closest("dialog [data-close]");
  if (close) close.closest("dialog").close();
});
