// Messages: every message flowd recorded, filtered as GET /v1/messages allows (contact, channel,
// status, run), each with its status badge and a link to its content.

import {badge, h, mount, time} from "../dom.js";
import {contactLink, filterForm} from "./contacts.js";
import {pagedList} from "../ui.js";

const CHANNELS = ["email", "sms", "push"];
const STATUSES = ["sending", "sent", "failed", "bounced", "suppressed"];

export const MESSAGE_COLUMNS = [
  {title: "Message", cell: (m) => h("a", {href: `#/messages/${encodeURIComponent(m.id)}`},
                                     m.subject || m.body?.slice(0, 80) || m.id)},
  {title: "Channel", cell: (m) => m.channel},
  {title: "To", cell: (m) => m.to || "—"},
  {title: "Status", cell: (m) => h("span", {title: m.error?.message || null}, badge(m.status))},
  {title: "Contact", cell: (m) => contactLink(m.contact_id)},
  {title: "Created", cell: (m) => time(m.created_at)},
];

export async function render(root, ctx) {
  const q = ctx.query;
  const list = pagedList("/v1/messages",
    {contact_id: q.contact_id, channel: q.channel, status: q.status, run_id: q.run_id},
    MESSAGE_COLUMNS, {label: "Messages", empty: "No messages match."});
  mount(root, h("h1", null, "Messages"),
    filterForm(ctx, "#/messages", [
      {name: "channel", label: "Channel", options: CHANNELS},
      {name: "status", label: "Status", options: STATUSES},
      {name: "contact_id", label: "Contact ID"},
      {name: "run_id", label: "Run ID"},
    ]),
    list.element);
  await list.ready;
}
