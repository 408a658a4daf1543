// Contacts: search by exact email or by tag, paged with "More". This module also holds the
// filter form kept in the hash query that every operator list shares, so events.js and
// messages.js import it from here.

import {h, mount, time} from "../dom.js";
import {field, pagedList} from "../ui.js";

export async function render(root, ctx) {
  const list = pagedList("/v1/contacts", {email: ctx.query.email, tag: ctx.query.tag}, CONTACT_COLUMNS,
                         {label: "Contacts", empty: "No contacts match."});
  mount(root, h("h1", null, "Contacts"),
    filterForm(ctx, "#/contacts", [
      {name: "email", label: "Email (exact)", type: "email"},
      {name: "tag", label: "Tag"},
    ]),
    list.element);
  await list.ready;
}

const CONTACT_COLUMNS = [
  {title: "Contact", cell: (c) => contactLink(c.id)},
  {title: "Email", cell: (c) => c.email || "—"},
  {title: "Tags", cell: (c) => (c.tags || []).join(", ") || "—"},
  {title: "Updated", cell: (c) => time(c.updated_at)},
];

export function contactLink(id) {
  if (!id) return h("span", {class: "muted"}, "—");
  return h("a", {href: `#/contacts/${encodeURIComponent(id)}`}, id);
}

/**
 * A filter form whose values live in the hash query: submitting navigates to `base?…`, so the
 * view re-renders with the filters and a reload (or Back) shows the same list.
 * `fields`: [{name, label, type?, options?: [values]}]; an empty value means "any".
 */
export function filterForm(ctx, base, fields) {
  const inputs = fields.map((f) => {
    const value = ctx.query[f.name] || "";
    const input = f.options
      ? h("select", {name: f.name}, h("option", {value: ""}, "any"),
          f.options.map((o) => h("option", {value: o, selected: o === value}, o)))
      : h("input", {name: f.name, type: f.type === "email" ? "text" : "search", value, autocomplete: "off",
                    inputmode: f.type === "email" ? "email" : null});
    return [f.name, input];
  });
  const clear = h("button", {type: "button", on: {click: () => ctx.navigate(base)}}, "Clear");
  return h("form", {class: "filters", role: "search", on: {submit: (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, input] of inputs) if (input.value.trim()) query.set(name, input.value.trim());
    const text = query.toString();
    ctx.navigate(text ? `${base}?${text}` : base);
  }}},
  inputs.map(([name, input], i) => field(fields[i].label, input)),
  h("div", {class: "actions"}, h("button", {type: "submit", class: "primary"}, "Filter"), clear));
}
