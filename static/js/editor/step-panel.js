// The canvas' side panel: the form of the selected step (or of the trigger), and the edits that
// start from it (add after, move, remove). Every button produces one operation batch handed to
// `onOps`; the panel itself never changes the definition.

import {h, mount} from "../dom.js";
import {describeError, field} from "../ui.js";
import {moveDown, moveUp} from "./moves.js";
import {schemaForm} from "./schema-form.js";

const ABSENT = "__absent__";
const END = "__end__";

/**
 * renderPanel(panel, {workflow, id, stepTypes: Map, triggerTypes: Map, readOnly,
 *                     onOps(ops, label) → Promise<workflow>, onSelect(id)})
 */
export function renderPanel(panel, args) {
  if (!args.id) {
    mount(panel, h("p", {class: "muted"}, "Select a step on the canvas to edit it. ",
      "Arrow keys move between steps."));
    return;
  }
  if (args.id === "trigger") return triggerPanel(panel, args);
  const step = args.workflow.steps.find((s) => s.id === args.id);
  if (!step) return renderPanel(panel, {...args, id: null});
  return stepPanel(panel, step, args);
}

function issueList(workflow, id) {
  const list = (workflow.issues || []).filter((i) => (id === "trigger" ? !i.step_id : i.step_id === id));
  if (!list.length) return null;
  return h("ul", {class: "issues", "aria-label": "Issues"},
    list.map((i) => h("li", {class: `issue-${i.severity}`}, `${i.severity}: ${i.message}`,
                      i.path ? h("code", null, ` ${i.path}`) : null)));
}

function branchLabels(step, type) {
  if (!type) return [];
  let labels = [...(type.branches || [])];
  if (type.dynamic_branches) {
    // split names its branches; a decide ai step's options are its labels (beside the fixed ones).
    const config = step.config || {};
    const named = [...(config.branches || []), ...(config.random || [])].map((b) => b && b.name).filter(Boolean);
    const options = Array.isArray(config.options) ? config.options.filter((o) => typeof o === "string") : [];
    labels = [...named, ...options, ...labels];
  }
  if (step.next && typeof step.next === "object") {
    for (const key of Object.keys(step.next)) if (!labels.includes(key) && key !== "default") labels.push(key);
  }
  return labels;
}

function targetSelect(steps, selfId, value, emptyLabel) {
  const select = h("select", null,
    h("option", {value: ABSENT}, emptyLabel),
    h("option", {value: END}, "(end the run)"),
    steps.filter((s) => s.id !== selfId).map((s) =>
      h("option", {value: `id:${s.id}`}, s.name ? `${s.id} — ${s.name}` : s.id)));
  select.value = value === undefined ? ABSENT : value === null ? END : `id:${value}`;
  return select;
}

const readTarget = (select) => (select.value === ABSENT ? undefined
  : select.value === END ? null : select.value.slice(3));

function stepPanel(panel, step, args) {
  const {workflow, stepTypes, readOnly} = args;
  const type = stepTypes.get(step.type);
  const disabled = readOnly;
  const status = h("p", {class: "field-error", role: "alert"});
  const name = h("input", {type: "text", name: "name", value: step.name || "", disabled});
  const config = schemaForm(type ? type.config_schema : {}, step.config || {}, {disabled});

  // `next`: one select per branch label (and the default path), or one select.
  const labels = branchLabels(step, type);
  const raw = step.next;
  const nextSelects = [];
  let nextBox;
  if (labels.length) {
    const map = raw && typeof raw === "object" ? raw : {};
    nextBox = h("fieldset", {class: "next"}, h("legend", null, "Branches"),
      [...labels, "default"].map((label) => {
        const select = targetSelect(workflow.steps, step.id, map[label],
          label === "default" ? "(following step)" : "(not mapped: the run ends)");
        select.disabled = disabled;
        select.dataset.branch = label;
        nextSelects.push([label, select]);
        return field(label, select);
      }));
  } else {
    const select = targetSelect(workflow.steps, step.id, typeof raw === "object" && raw ? undefined : raw,
                                "(following step in the list)");
    select.disabled = disabled;
    select.name = "next";
    nextSelects.push([null, select]);
    nextBox = field("Next", select);
  }

  const retry = step.retry || {};
  const attempts = h("input", {type: "number", min: "1", max: "100", name: "max_attempts", disabled,
                               value: retry.max_attempts === undefined ? "" : String(retry.max_attempts)});
  const backoff = h("input", {type: "text", name: "backoff", placeholder: "PT10S", disabled, value: retry.backoff || ""});
  const maxBackoff = h("input", {type: "text", name: "max_backoff", placeholder: "PT1H", disabled, value: retry.max_backoff || ""});
  const onError = h("select", {name: "on_error", disabled},
    h("option", {value: ""}, "—"), h("option", {value: "fail"}, "fail"),
    h("option", {value: "continue"}, "continue"));
  onError.value = step.on_error || "";

  function changes() {
    const set = {};
    const newName = name.value.trim();
    if (newName !== (step.name || "")) set.name = newName;
    const newConfig = config.read();
    if (JSON.stringify(newConfig) !== JSON.stringify(step.config || {})) set.config = newConfig;
    let next;
    if (labels.length) {
      next = {};
      for (const [label, select] of nextSelects) {
        const target = readTarget(select);
        if (target !== undefined) next[label] = target;
      }
      if (!Object.keys(next).length && !(raw && typeof raw === "object")) next = undefined;
    } else {
      next = readTarget(nextSelects[0][1]);
      if (next === undefined && "next" in step) {
        // `set` cannot delete a key: "following step" is written as that step's id.
        const i = workflow.steps.indexOf(step);
        next = workflow.steps[i + 1] ? workflow.steps[i + 1].id : null;
      }
    }
    if (next !== undefined && JSON.stringify(next) !== JSON.stringify(step.next)) set.next = next;
    const newRetry = {};
    if (attempts.value !== "") newRetry.max_attempts = Number(attempts.value);
    if (backoff.value.trim()) newRetry.backoff = backoff.value.trim();
    if (maxBackoff.value.trim()) newRetry.max_backoff = maxBackoff.value.trim();
    if (Object.keys(newRetry).length && JSON.stringify(newRetry) !== JSON.stringify(retry)) set.retry = newRetry;
    if (onError.value && onError.value !== (step.on_error || "")) set.on_error = onError.value;
    return set;
  }

  async function save(event) {
    event.preventDefault();
    status.textContent = "";
    let set;
    try { set = changes(); } catch (error) { status.textContent = error.message; return; }
    if (!Object.keys(set).length) { status.textContent = "Nothing changed."; return; }
    await attempt(status, () => args.onOps([{op: "update_step", id: step.id, set}], `edit ${step.id}`));
  }

  const form = h("form", {class: "step-form", "aria-label": `Step ${step.id}`, dataset: {form: "step"}, on: {submit: save}},
    field("Name", name),
    h("fieldset", {class: "config", dataset: {form: "config"}},
      h("legend", null, "Config"),
      type ? config.element : h("p", {class: "error"}, `Unknown step type “${step.type}”.`)),
    nextBox,
    h("details", {class: "retry"}, h("summary", null, "Retry and errors"),
      field("Max attempts", attempts), field("Backoff", backoff), field("Max backoff", maxBackoff),
      field("On error", onError)),
    h("div", {class: "actions"}, h("button", {type: "submit", class: "primary", disabled}, "Save step")),
    status);

  const up = moveUp(workflow.steps, step.id);
  const down = moveDown(workflow.steps, step.id);
  const edits = h("div", {class: "actions", role: "group", "aria-label": "Step edits"},
    h("button", {type: "button", disabled: disabled || !up.ops, title: up.why, dataset: {action: "move-up"},
                 on: {click: () => attempt(status, () => args.onOps(up.ops, `move ${step.id} up`))}}, "Move up"),
    h("button", {type: "button", disabled: disabled || !down.ops, title: down.why, dataset: {action: "move-down"},
                 on: {click: () => attempt(status, () => args.onOps(down.ops, `move ${step.id} down`))}}, "Move down"),
    h("button", {type: "button", class: "danger", disabled, dataset: {action: "remove"},
                 on: {click: () => attempt(status, async () => {
                   await args.onOps([{op: "remove_step", id: step.id}], `remove ${step.id}`);
                   args.onSelect(null);
                 })}}, "Remove step"));

  mount(panel,
    h("h2", null, `Step ${step.id}`, " ", h("span", {class: "muted"}, step.type)),
    type ? h("p", {class: "muted small"}, type.description) : null,
    issueList(workflow, step.id), form, edits,
    addStepForm(step, labels, args, status));
}

function addStepForm(after, labels, args, status) {
  const disabled = args.readOnly;
  const typeSelect = h("select", {name: "new_type", disabled},
    [...args.stepTypes.keys()].map((name) => h("option", {value: name}, name)));
  const branch = h("select", {name: "branch", disabled},
    h("option", {value: ""}, "default path"),
    labels.map((label) => h("option", {value: label}, label)));
  async function add(event) {
    event.preventDefault();
    const op = {op: "add_step", step: {type: typeSelect.value, config: {}}};
    if (after) op.after = after.id;
    if (branch.value) op.branch = branch.value;
    const before = new Set(args.workflow.steps.map((s) => s.id));
    await attempt(status, async () => {
      const workflow = await args.onOps([op], `add ${typeSelect.value}`);
      const added = workflow && workflow.steps.find((s) => !before.has(s.id));
      if (added) args.onSelect(added.id);
    });
  }
  return h("form", {class: "add-step", dataset: {form: "add-step"}, on: {submit: add}},
    h("h3", null, after ? "Add a step after this one" : "Add the first step"),
    field("Type", typeSelect),
    labels.length ? field("On branch", branch) : null,
    h("button", {type: "submit", disabled}, "Add step"));
}

function triggerPanel(panel, args) {
  const {workflow, triggerTypes, readOnly: disabled} = args;
  const status = h("p", {class: "field-error", role: "alert"});
  const trigger = workflow.trigger || {};
  const typeSelect = h("select", {name: "trigger_type", disabled},
    [...triggerTypes.keys()].map((name) => h("option", {value: name}, name)));
  typeSelect.value = trigger.type;
  const configBox = h("div");
  let form = null;
  function drawConfig() {
    const type = triggerTypes.get(typeSelect.value);
    const value = typeSelect.value === trigger.type ? trigger : {};
    form = schemaForm(type ? type.config_schema : {}, value, {disabled, skip: ["type", "url"]});
    mount(configBox, type && type.description ? h("p", {class: "muted small"}, type.description) : null,
          form.element);
  }
  typeSelect.addEventListener("change", drawConfig);
  drawConfig();
  async function save(event) {
    event.preventDefault();
    status.textContent = "";
    let value;
    try { value = form.read(); } catch (error) { status.textContent = error.message; return; }
    delete value.url;   // the server's, for webhook triggers
    await attempt(status, () => args.onOps([{op: "set_trigger", trigger: {...value, type: typeSelect.value}}],
                                           "change trigger"));
  }
  mount(panel,
    h("h2", null, "Trigger"),
    trigger.url ? h("p", null, "Webhook URL: ", h("code", null, trigger.url)) : null,
    issueList(workflow, "trigger"),
    h("form", {class: "trigger-form", dataset: {form: "trigger"}, on: {submit: save}},
      field("Type", typeSelect), configBox,
      h("div", {class: "actions"}, h("button", {type: "submit", class: "primary", disabled}, "Save trigger")),
      status),
    workflow.steps.length ? null : addStepForm(null, [], args, status));
}

async function attempt(status, work) {
  status.textContent = "";
  try {
    await work();
  } catch (error) {
    status.textContent = describeError(error);
  }
}
