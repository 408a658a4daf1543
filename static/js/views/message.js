// One message as flowd recorded it. Its content is shown as text only: the text part as
// written, and the HTML part as its source (the page's CSP forbids frames, and rendering a
// stored email's markup in the page would run whatever it carries).

import {api, ApiError} from "../api.js";
import {badge, h, mount, time} from "../dom.js";
import {contactLink} from "./contacts.js";

export async function render(root, ctx) {
  const message = await api.get(`/v1/messages/${encodeURIComponent(ctx.params.id)}`);
  if (!ctx.isCurrent()) return;
  const runCell = h("dd", null, message.run_id ? h("code", null, message.run_id) : "—");

  mount(root,
    h("p", null, h("a", {href: "#/messages"}, "← Messages")),
    h("h1", null, message.subject || `Message ${message.id}`),
    h("dl", {class: "facts"},
      h("dt", null, "ID"), h("dd", null, h("code", null, message.id)),
      h("dt", null, "Status"), h("dd", null, badge(message.status)),
      h("dt", null, "Channel"), h("dd", null, message.channel),
      h("dt", null, "To"), h("dd", null, message.to || "—"),
      h("dt", null, "Contact"), h("dd", null, contactLink(message.contact_id)),
      h("dt", null, "Run"), runCell,
      h("dt", null, "Step"), h("dd", null, message.step_id || "—"),
      h("dt", null, "Provider ID"), h("dd", null, message.provider_message_id || "—"),
      h("dt", null, "Created"), h("dd", null, time(message.created_at)),
      h("dt", null, "Sent"), h("dd", null, time(message.sent_at)),
      message.error ? [h("dt", null, "Error"),
                       h("dd", {class: "error"}, `${message.error.code || ""}: ${message.error.message || ""}`)] : null),
    h("h2", null, "Subject"),
    h("p", {class: "message-subject"}, message.subject ?? h("span", {class: "muted"}, "none")),
    h("h2", null, "Text"),
    message.text || (!message.html && message.body)
      ? h("pre", {class: "message-text"}, message.text || message.body)
      : h("p", {class: "muted"}, "No text part."),
    h("h2", null, "HTML source"),
    message.html
      ? [h("p", {class: "muted"}, "Shown as its source text; links are as sent (rewritten for tracking)."),
         h("pre", {class: "message-html"}, message.html)]
      : h("p", {class: "muted"}, "No HTML part."));

  // The run's page lives under its workflow: one lookup finds which.
  if (message.run_id) {
    try {
      const run = await api.get(`/v1/runs/${encodeURIComponent(message.run_id)}`);
      if (!ctx.isCurrent()) return;
      mount(runCell, h("a", {href: `#/workflows/${encodeURIComponent(run.workflow_id)}/runs/${encodeURIComponent(run.id)}`}, run.id));
    } catch (error) {
      // A run removed by retention leaves the plain id; anything else is a real problem.
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
  }
}
