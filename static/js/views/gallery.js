// The blueprint gallery: each starter journey as a card; "Use this" clones it into a draft
// (POST /v1/blueprints/{key}/clone, optionally named) and opens the draft in the editor.

import {api} from "../api.js";
import {h, mount} from "../dom.js";
import {describeError, field} from "../ui.js";

export async function render(root, ctx) {
  const page = await api.get("/v1/blueprints");
  if (!ctx.isCurrent()) return;
  mount(root,
    h("div", {class: "list-head"},
      h("h1", null, "Start from a blueprint"),
      h("div", {class: "actions"}, h("a", {class: "button", href: "#/workflows"}, "Back to workflows"))),
    h("p", {class: "muted"}, "A blueprint becomes a draft workflow (with its email templates) that you can change before activating it."),
    h("ul", {class: "cards", "aria-label": "Blueprints"}, page.data.map((blueprint) => card(blueprint, ctx))));
}

function card(blueprint, ctx) {
  const titleId = `bp-${blueprint.key}`;
  const name = h("input", {name: "name", maxlength: "200", autocomplete: "off", placeholder: blueprint.name});
  const error = h("p", {class: "error", role: "alert"});
  const submit = h("button", {type: "submit", class: "primary"}, "Create draft");
  const form = h("form", {class: "clone", hidden: true, "aria-label": `Clone ${blueprint.name}`, on: {submit: clone}},
    field("Name (optional)", name, "Empty: the blueprint's name, made unique."), error,
    h("div", {class: "actions"}, submit));
  const use = h("button", {type: "button", class: "primary", disabled: !ctx.canEdit,
                           title: ctx.canEdit ? null : "Your role can only view",
                           "aria-expanded": "false", "aria-describedby": titleId,
                           on: {click: () => {
                             form.hidden = !form.hidden;
                             use.setAttribute("aria-expanded", String(!form.hidden));
                             if (!form.hidden) name.focus();
                           }}}, "Use this");

  return h("li", {class: "card", dataset: {key: blueprint.key}},
    h("h2", {id: titleId}, blueprint.name),
    h("p", null, blueprint.description),
    h("dl", {class: "facts"},
      h("dt", null, "Trigger"), h("dd", null, blueprint.trigger_summary),
      h("dt", null, "Steps"), h("dd", null, String(blueprint.step_count)),
      blueprint.templates?.length ? [h("dt", null, "Templates"), h("dd", null, blueprint.templates.join(", "))] : null),
    h("div", {class: "actions"}, use), form);

  async function clone(event) {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    const body = name.value.trim() ? {name: name.value.trim()} : {};
    try {
      const workflow = await api.post(`/v1/blueprints/${encodeURIComponent(blueprint.key)}/clone`, body);
      ctx.toast(`Created the draft “${workflow.name}”`, "ok");
      ctx.navigate(`#/workflows/${encodeURIComponent(workflow.id)}`);
    } catch (problem) {
      error.textContent = describeError(problem);
      submit.disabled = false;
    }
  }
}
