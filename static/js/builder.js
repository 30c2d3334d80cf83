// The builder's drag and drop. Everything here also works without JavaScript:
// Add and Remove buttons post the form, and the server re-renders it.
(function () {
  const form = document.getElementById("builder");
  const entries = document.getElementById("entries");
  const template = document.getElementById("entry-template");
  if (!form || !entries || !template) return;

  const changed = () => htmx.trigger(form, "entries-changed");
  let counter = Date.now() % 100000;

  function entryFrom(token) {
    const data = JSON.parse(token);
    const node = template.content.firstElementChild.cloneNode(true);
    const key = "j" + (counter++);
    node.dataset.key = key;
    const set = (name, value) => { const input = node.querySelector(`[name="${name}"]`); if (input) input.value = value || ""; };
    set("e_key", key);
    ["ref", "select", "label", "os", "arch", "variant", "os_version", "os_features"].forEach((f) => set("e_" + f, data[f]));
    node.querySelector(".entry-label").textContent = data.label || data.ref;
    node.querySelector(".problems").id = "problems-" + key;
    node.querySelector(".remove").value = key;
    node.querySelectorAll("[aria-label]").forEach((el) => {
      el.setAttribute("aria-label", el.getAttribute("aria-label").replace(/ of .*$| .*$/, (m) => m.startsWith(" of ") ? " of " + data.label : " " + data.label));
    });
    refreshChip(node);
    return node;
  }

  function refreshChip(node) {
    const get = (name) => (node.querySelector(`[name="${name}"]`) || {}).value || "";
    const parts = [get("e_os"), get("e_arch"), get("e_variant")].filter(Boolean);
    const chip = node.querySelector(".entry-platform");
    chip.textContent = (parts.length >= 2 ? parts.join("/") : "no platform") + (get("e_os_version") ? " " + get("e_os_version") : "");
  }

  // Capture phase: handle Add and Remove here, before htmx or the browser
  // would submit the form with them (their no-JavaScript path).
  document.addEventListener("click", (event) => {
    const add = event.target.closest("button.add");
    const remove = event.target.closest("#entries button.remove");
    if (!add && !remove) return;
    event.preventDefault();
    event.stopPropagation();
    if (add) {
      entries.appendChild(entryFrom(add.value));
    } else {
      remove.closest(".entry").remove();
    }
    changed();
  }, true);

  entries.addEventListener("input", (event) => {
    const entry = event.target.closest(".entry");
    if (entry) refreshChip(entry);
  });

  new Sortable(entries, {
    group: { name: "list", pull: false, put: true },
    handle: ".handle",
    animation: 120,
    onSort: changed,
    onAdd: (event) => {
      // A candidate dropped here: turn the clone into an entry.
      const token = event.item.dataset.token;
      const entry = entryFrom(token);
      event.item.replaceWith(entry);
      changed();
    },
  });

  const wirePalette = () => {
    const palette = document.getElementById("candidates");
    if (!palette || palette.dataset.sortable) return;
    palette.dataset.sortable = "1";
    new Sortable(palette, { group: { name: "list", pull: "clone", put: false }, sort: false, animation: 120 });
  };
  wirePalette();
  document.body.addEventListener("htmx:afterSwap", wirePalette);
})();
