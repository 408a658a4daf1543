// Small shared widgets: notices, error text, tables, tabs. Text only (see dom.js).

import {api} from "./api.js";
import {h, mount} from "./dom.js";

/** A notice at the top of the page; errors stay until dismissed, others fade. */
export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  const close = h("button", {type: "button", class: "link", "aria-label": "Dismiss"}, "×");
  const item = h("div", {class: ["toast", `toast-${kind}`], role: kind === "error" ? "alert" : null},
                 h("span", null, text), close);
  close.addEventListener("click", () => item.remove());
  box.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 4000);
  return item;
}

/** An ApiError (or any error) as one sentence, with the first validation details. */
export function describeError(error) {
  const details = (error.details || []).slice(0, 5)
    .map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).filter(Boolean);
  return [error.message, ...details].join(" — ");
}

export function showError(error) {
  console.error(error);
  return toast(describeError(error), "error");
}

/**
 * A table: columns are [{title, cell(row) -> Node|string, class?}]; `onOpen(row)` makes each
 * row's first cell a link-like button, so rows are reachable by keyboard.
 */
export function table(columns, rows, {empty = "Nothing here yet.", caption} = {}) {
  if (!rows.length) return h("p", {class: "empty muted"}, empty);
  return h("table", {class: "list"},
    caption ? h("caption", {class: "visually-hidden"}, caption) : null,
    h("thead", null, h("tr", null, columns.map((c) => h("th", {scope: "col"}, c.title)))),
    h("tbody", null, rows.map((row) =>
      h("tr", null, columns.map((c) => h("td", {class: c.class}, c.cell(row)))))));
}

/** Tabs with roving focus (arrow keys); `panels` is [{id, label, render(container)}]. */
export function tabs(panels, selected, onSelect) {
  const list = h("div", {role: "tablist", class: "tabs"});
  for (const panel of panels) {
    const isSelected = panel.id === selected;
    const tab = h("button", {
      type: "button", role: "tab", id: `tab-${panel.id}`, "aria-selected": String(isSelected),
      "aria-controls": `panel-${panel.id}`, tabindex: isSelected ? "0" : "-1",
      on: {click: () => onSelect(panel.id)},
    }, panel.label);
    list.append(tab);
  }
  list.addEventListener("keydown", (event) => {
    const buttons = [...list.querySelectorAll("[role=tab]")];
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    const step = {ArrowRight: 1, ArrowLeft: -1}[event.key];
    if (!step) return;
    event.preventDefault();
    const next = buttons[(index + step + buttons.length) % buttons.length];
    next.focus();
    next.click();
  });
  return list;
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 10)}`;
  input.id = id;
  return h("div", {class: "field"}, h("label", {for: id}, label), input,
           hint ? h("small", {class: "muted"}, hint) : null);
}

/** Replace a container's content with a "loading" line until `work` settles. */
export async function loading(container, work) {
  mount(container, h("p", {class: "muted", "aria-busy": "true"}, "Loading…"));
  try {
    return await work();
  } catch (error) {
    mount(container, h("p", {class: "error", role: "alert"}, describeError(error)));
    throw error;
  }
}

/**
 * A table of `path`'s items (columns as in table()), one page at a time: "More" follows
 * next_cursor. Returns {element, ready, tbody}; `ready` settles when the first page is drawn.
 * A failed load shows its error in place of the table (and rejects `ready` only if `strict`).
 * `row(item)` draws an item's <tr> when a list needs more than its cells (data attributes).
 */
export function pagedList(path, query, columns, {label, empty = "Nothing here yet.", limit = 50,
                                                 strict = true, row, tableClass = "list"} = {}) {
  const drawRow = row || ((item) => h("tr", null, columns.map((c) => h("td", {class: c.class}, c.cell(item)))));
  const tbody = h("tbody");
  const table = h("table", {class: tableClass, hidden: true},
    h("caption", {class: "visually-hidden"}, label),
    h("thead", null, h("tr", null, columns.map((c) => h("th", {scope: "col"}, c.title)))), tbody);
  const note = h("p", {class: "empty muted", "aria-live": "polite"}, "Loading…");
  const more = h("button", {type: "button", hidden: true, on: {click: () => load()}}, "More");
  const element = h("div", {class: "paged", dataset: {list: path}}, table, note, h("div", {class: "actions"}, more));
  let cursor = null;

  async function load() {
    more.disabled = true;
    try {
      const page = await api.get(path, {...query, limit, cursor});
      tbody.append(...page.data.map(drawRow));
      cursor = page.next_cursor;
    } catch (error) {
      note.hidden = false;
      note.className = "error";
      note.setAttribute("role", "alert");
      note.textContent = describeError(error);
      more.disabled = false;
      if (strict && !tbody.childElementCount) throw error;
      return;
    }
    const count = tbody.childElementCount;
    table.hidden = count === 0;
    note.hidden = count > 0;
    note.textContent = count ? "" : empty;
    more.hidden = !cursor;
    more.disabled = false;
    element.dataset.count = String(count);
  }

  return {element, ready: load(), tbody};
}
