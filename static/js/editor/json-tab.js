// The JSON tab: the exact definition ({name, description, trigger, settings, steps}) as text,
// saved whole with PUT /v1/workflows/{id} — validated by the same server as every other edit
// (builder-notes item 9). A 422's details are listed beside the text with their paths.

import {h, mount} from "../dom.js";
import {describeError} from "../ui.js";

export function definitionOf(workflow) {
  const {name, description, trigger, settings, steps} = workflow;
  return {name, description, trigger, settings, steps};
}

/** env = {workflow(), ctx, edits, readOnly} → {update, cleanup} */
export function renderJsonTab(container, env) {
  const area = h("textarea", {class: "json-editor", rows: "28", spellcheck: "false", id: "json-definition",
                              "aria-describedby": "json-problems", readonly: env.readOnly});
  const problems = h("div", {class: "json-problems", id: "json-problems", "aria-live": "polite"});
  const save = h("button", {type: "button", class: "primary", disabled: env.readOnly,
                            dataset: {action: "save-json"}, on: {click: submit}}, "Save");
  const reset = h("button", {type: "button", on: {click: update}}, "Revert to saved");
  container.append(h("div", {class: "json-layout"},
    h("div", {class: "json-main"},
      h("label", {for: "json-definition"}, "Definition (name, description, trigger, settings, steps)"),
      area, h("div", {class: "actions"}, save, reset)),
    problems));

  function showIssues(workflow, extra) {
    const issues = workflow.issues || [];
    mount(problems, extra || null,
      h("h3", null, `Issues (${issues.length})`),
      issues.length ? h("ul", {class: "issues"}, issues.map((i) =>
        h("li", {class: `issue-${i.severity}`}, `${i.severity}: `, i.path ? h("code", null, i.path) : null,
          i.path ? " " : null, i.message))) : h("p", {class: "muted"}, "None."));
  }

  function update() {
    area.value = JSON.stringify(definitionOf(env.workflow()), null, 2);
    showIssues(env.workflow());
  }

  async function submit() {
    let body;
    try {
      body = JSON.parse(area.value);
    } catch (error) {
      showIssues(env.workflow(), h("p", {class: "error", role: "alert"}, `Not valid JSON: ${error.message}`));
      return;
    }
    const workflow = env.workflow();
    try {
      // Through the editor's history: the Canvas tab's Undo takes a JSON save back too.
      const saved = await env.edits.put(body, workflow.version, "the JSON edit");
      env.ctx.toast(saved.version === workflow.version ? "Saved (no change to the definition)."
                                                       : `Saved as version ${saved.version}.`, "ok");
    } catch (error) {
      const details = error.details || [];
      showIssues(workflow, h("div", {class: "error", role: "alert"},
        h("p", null, error.message),
        details.length ? h("ul", null, details.map((d) =>
          h("li", null, d.path ? h("code", null, d.path) : null, d.path ? ": " : null, d.message))) : null));
      if (!details.length) env.ctx.toast(describeError(error), "error");
    }
  }

  update();
  return {update, cleanup() {}};
}
