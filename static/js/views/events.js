// Events: recent events, filtered by exact name and by contact; each event's properties open
// as JSON text (never parsed as markup).

import {h, mount, time} from "../dom.js";
import {contactLink, filterForm} from "./contacts.js";
import {pagedList} from "../ui.js";

export const EVENT_COLUMNS = [
  {title: "Event", cell: (e) => h("span", {class: "mono"}, e.name)},
  {title: "Contact", cell: (e) => contactLink(e.contact_id)},
  {title: "Properties", cell: (e) => properties(e)},
  {title: "Time", cell: (e) => time(e.timestamp)},
];

export async function render(root, ctx) {
  const list = pagedList("/v1/events", {name: ctx.query.name, contact_id: ctx.query.contact_id},
                         EVENT_COLUMNS, {label: "Events", empty: "No events match."});
  mount(root, h("h1", null, "Events"),
    filterForm(ctx, "#/events", [
      {name: "name", label: "Event name (exact)"},
      {name: "contact_id", label: "Contact ID"},
    ]),
    list.element);
  await list.ready;
}

function properties(event) {
  const keys = Object.keys(event.properties || {});
  if (!keys.length) return h("span", {class: "muted"}, "none");
  return h("details", {class: "properties"},
    h("summary", null, `${keys.length} propert${keys.length === 1 ? "y" : "ies"}`,
      h("span", {class: "visually-hidden"}, ` of ${event.name} ${event.id}`)),
    h("pre", {class: "json"}, JSON.stringify(event.properties, null, 2)));
}
