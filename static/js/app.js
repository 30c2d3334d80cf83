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

// Tables marked data-client-sort sort their rows (this page of them) by a
// column: each header becomes a button, aria-sort says the order.
function sortable(table) {
  if (table.dataset.sortReady) return;
  table.dataset.sortReady = "1";
  const headers = Array.from(table.querySelectorAll("thead th"));
  headers.forEach((th, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort-button";
    button.textContent = th.textContent.trim();
    th.textContent = "";
    th.appendChild(button);
    const arrow = document.createElement("span");
    arrow.className = "sort-arrow";
    arrow.setAttribute("aria-hidden", "true");
    arrow.textContent = " ↕";
    th.appendChild(arrow);
    th.setAttribute("aria-sort", "none");
    button.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach((h) => { h.setAttribute("aria-sort", "none"); h.querySelector(".sort-arrow").textContent = " ↕"; });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      arrow.textContent = ascending ? " ↑" : " ↓";
      const body = table.tBodies[0];
      const rows = Array.from(body.rows).filter((r) => r.cells.length > index);
      const key = (row) => row.cells[index].textContent.trim();
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const order = x.localeCompare(y, undefined, { numeric: true });
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
}
document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("table[data-client-sort]").forEach(sortable));
document.addEventListener("htmx:afterSettle", () => document.querySelectorAll("table[data-client-sort]").forEach(sortable));
