// The builder's drag and drop, keyboard reordering and "added" marks. Everything
// here also works without JavaScript: Add, Remove and Move buttons post the
// form, and the server re-renders it.
(function () {
  const form = document.getElementById("builder");
  const entries = document.getElementById("entries");
  const template = document.getElementById("entry-template");
  const status = document.getElementById("builder-status");
  if (!form || !entries || !template) return;

  const changed = () => htmx.trigger(form, "entries-changed");
  let counter = Date.now() % 100000;

  const digestOf = (data) => data.select || (data.ref || "").split("@")[1] || "";

  function entryFrom(token) {
    const data = JSON.parse(token);
    const node = template.content.firstElementChild.cloneNode(true);
    const key = "j" + (counter++);
    node.dataset.key = key;
    node.dataset.digest = digestOf(data);
    const set = (name, value) => { const input = node.querySelector(`[name="${name}"]`); if (input) input.value = value || ""; };
    set("e_key", key);
    ["ref", "select", "label", "os", "arch", "variant", "os_version", "os_features", "registry"].forEach((f) => set("e_" + f, data[f]));
    node.querySelector(".entry-label").textContent = data.label || data.ref;
    const problems = node.querySelector(".problems");
    problems.id = "problems-" + key;
    node.querySelectorAll("[aria-describedby]").forEach((el) => el.setAttribute("aria-describedby", problems.id));
    node.querySelector(".remove").value = key;
    node.querySelector(".move-up").value = key + ":up";
    node.querySelector(".move-down").value = key + ":down";
    node.querySelectorAll("[data-aria]").forEach((el) => el.setAttribute("aria-label", el.dataset.aria.replace("{}", data.label || data.ref)));
    refreshChip(node);
    return node;
  }

  function refreshChip(node) {
    const get = (name) => (node.querySelector(`[name="${name}"]`) || {}).value || "";
    const parts = [get("e_os"), get("e_arch"), get("e_variant")].filter(Boolean);
    const chip = node.querySelector(".entry-platform");
    chip.textContent = (parts.length >= 2 ? parts.join("/") : "no platform") + (get("e_os_version") ? " " + get("e_os_version") : "");
  }

  // "added" on every palette row whose digest is in the list.
  function markAdded() {
    const inList = new Set(Array.from(entries.querySelectorAll(".entry")).map((e) => e.dataset.digest).filter(Boolean));
    document.querySelectorAll("#candidates .candidate").forEach((row) => {
      const added = inList.has(row.dataset.digest);
      row.classList.toggle("is-added", added);
      let mark = row.querySelector(".added-mark");
      if (added && !mark) {
        mark = document.createElement("span");
        mark.className = "badge ok added-mark";
        mark.textContent = "added";
        row.querySelector("button.add").before(mark);
      } else if (!added && mark) {
        mark.remove();
      }
    });
  }

  function announce(text) { if (status) status.textContent = text; }

  function move(entry, direction) {
    const sibling = direction === "up" ? entry.previousElementSibling : entry.nextElementSibling;
    if (!sibling) return;
    if (direction === "up") sibling.before(entry); else sibling.after(entry);
    const all = Array.from(entries.children);
    const label = entry.querySelector(".entry-label").textContent;
    announce(`${label} moved to position ${all.indexOf(entry) + 1} of ${all.length}`);
    entry.querySelector(direction === "up" ? ".move-up" : ".move-down").focus();
    entry.classList.add("moved");
    setTimeout(() => entry.classList.remove("moved"), 600);
    changed();
  }

  // Capture phase: handle Add, Remove and Move here, before htmx or the
  // browser would submit the form with them (their no-JavaScript path).
  document.addEventListener("click", (event) => {
    const add = event.target.closest("button.add");
    const remove = event.target.closest("#entries button.remove");
    const mover = event.target.closest("#entries button.move");
    if (!add && !remove && !mover) return;
    event.preventDefault();
    event.stopPropagation();
    if (add) {
      entries.appendChild(entryFrom(add.value));
      announce(`${JSON.parse(add.value).label} added, position ${entries.children.length}`);
    } else if (remove) {
      remove.closest(".entry").remove();
    } else {
      move(mover.closest(".entry"), mover.classList.contains("move-up") ? "up" : "down");
      return;
    }
    markAdded();
    changed();
  }, true);

  // Alt+ArrowUp / Alt+ArrowDown anywhere in an entry moves it too.
  entries.addEventListener("keydown", (event) => {
    if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    const entry = event.target.closest(".entry");
    if (!entry) return;
    event.preventDefault();
    move(entry, event.key === "ArrowUp" ? "up" : "down");
  });

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
      markAdded();
      changed();
    },
  });

  const wirePalette = () => {
    document.querySelectorAll("#candidates ul.candidates").forEach((list) => {
      if (list.dataset.sortable) return;
      list.dataset.sortable = "1";
      new Sortable(list, { group: { name: "list", pull: "clone", put: false }, sort: false, animation: 120 });
    });
    markAdded();
  };
  wirePalette();
  document.body.addEventListener("htmx:afterSwap", wirePalette);

  // Errors at their fields: a slot filled by the preview marks its field invalid.
  const markFields = () => {
    document.querySelectorAll(".field-error-slot[data-for]").forEach((slot) => {
      const field = document.getElementById(slot.dataset.for);
      if (!field) return;
      if (slot.children.length) field.setAttribute("aria-invalid", "true"); else field.removeAttribute("aria-invalid");
    });
    document.querySelectorAll("#entries .entry").forEach((entry) => {
      const problems = entry.querySelector(".problems");
      entry.classList.toggle("has-error", !!(problems && problems.children.length));
    });
  };
  document.body.addEventListener("htmx:afterSettle", markFields);
})();
