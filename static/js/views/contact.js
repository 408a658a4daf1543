// One contact, and on the same page what flowd did with them: their events, their runs (each
// linking to the run on its workflow) and the messages sent to them.

import {api} from "../api.js";
import {badge, h, mount, time} from "../dom.js";
import {EVENT_COLUMNS} from "./events.js";
import {MESSAGE_COLUMNS} from "./messages.js";
import {pagedList} from "../ui.js";

const RUN_COLUMNS = [
  {title: "Run", cell: (r) => h("a", {href: `#/workflows/${encodeURIComponent(r.workflow_id)}/runs/${encodeURIComponent(r.id)}`}, r.id)},
  {title: "Workflow", cell: (r) => h("a", {href: `#/workflows/${encodeURIComponent(r.workflow_id)}`},
                                     `${r.workflow_id} v${r.workflow_version}`)},
  {title: "Status", cell: (r) => badge(r.status)},
  {title: "At step", cell: (r) => r.current_step_id || "—"},
  {title: "Started", cell: (r) => time(r.created_at)},
];

export async function render(root, ctx) {
  const id = ctx.params.id;
  const contact = await api.get(`/v1/contacts/${encodeURIComponent(id)}`);
  if (!ctx.isCurrent()) return;
  const byContact = {contact_id: id};
  // Each section loads on its own: one failing list must not hide the others.
  const events = pagedList("/v1/events", byContact, EVENT_COLUMNS.filter((c) => c.title !== "Contact"),
                           {label: "Events of this contact", empty: "No events.", limit: 20, strict: false});
  const runs = pagedList("/v1/runs", byContact, RUN_COLUMNS,
                         {label: "Runs of this contact", empty: "No runs.", limit: 20, strict: false});
  const messages = pagedList("/v1/messages", byContact, MESSAGE_COLUMNS.filter((c) => c.title !== "Contact"),
                             {label: "Messages to this contact", empty: "No messages.", limit: 20, strict: false});
  const q = encodeURIComponent(id);

  mount(root,
    h("p", null, h("a", {href: "#/contacts"}, "← Contacts")),
    h("h1", null, "Contact ", h("span", {class: "mono"}, contact.id)),
    h("div", {class: "contact-facts"},
      h("section", {"aria-labelledby": "c-fields"},
        h("h2", {id: "c-fields"}, "Fields"),
        h("dl", {class: "facts"},
          h("dt", null, "Email"), h("dd", null, contact.email || "—"),
          h("dt", null, "Phone"), h("dd", null, contact.phone || "—"),
          h("dt", null, "Time zone"), h("dd", null, contact.timezone || "—"),
          h("dt", null, "Push tokens"), h("dd", null, String((contact.push_tokens || []).length)),
          h("dt", null, "Created"), h("dd", null, time(contact.created_at)),
          h("dt", null, "Updated"), h("dd", null, time(contact.updated_at)))),
      h("section", {"aria-labelledby": "c-traits"},
        h("h2", {id: "c-traits"}, "Traits"), traits(contact.traits || {})),
      h("section", {"aria-labelledby": "c-tags"},
        h("h2", {id: "c-tags"}, "Tags"),
        contact.tags?.length
          ? h("ul", {class: "tags"}, contact.tags.map((t) => h("li", null, h("a", {href: `#/contacts?tag=${encodeURIComponent(t)}`}, t))))
          : h("p", {class: "muted"}, "No tags."),
        h("h2", null, "Subscriptions"),
        h("ul", {class: "subscriptions"}, Object.entries(contact.subscribed || {}).map(([channel, on]) =>
          h("li", null, `${channel}: `, h("strong", {class: on ? null : "error"}, on ? "subscribed" : "unsubscribed")))))),
    h("section", {"aria-labelledby": "c-events", class: "contact-events"},
      h("h2", {id: "c-events"}, "Events ", h("a", {class: "small", href: `#/events?contact_id=${q}`}, "(all events of this contact)")),
      events.element),
    h("section", {"aria-labelledby": "c-runs", class: "contact-runs"},
      h("h2", {id: "c-runs"}, "Runs"), runs.element),
    h("section", {"aria-labelledby": "c-messages", class: "contact-messages"},
      h("h2", {id: "c-messages"}, "Messages ", h("a", {class: "small", href: `#/messages?contact_id=${q}`}, "(all messages to this contact)")),
      messages.element));
  await Promise.all([events.ready, runs.ready, messages.ready]);
}

function traits(values) {
  const entries = Object.entries(values);
  if (!entries.length) return h("p", {class: "muted"}, "No traits.");
  return h("dl", {class: "facts traits"}, entries.map(([key, value]) => [
    h("dt", null, key),
    h("dd", {class: typeof value === "string" ? null : "mono"},
      typeof value === "string" ? value : JSON.stringify(value)),
  ]));
}
