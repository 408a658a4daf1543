// A workflow's lifecycle buttons (activate, pause, resume, deactivate, archive, delete), shared
// by the list and the editor. Each is one API call; the server's answer is the new state.

import {api} from "./api.js";
import {h} from "./dom.js";
import {describeError, toast} from "./ui.js";

// Which actions make sense from which status (the server decides; this only hides noise).
const ACTIONS = {
  draft: ["activate", "archive"],
  active: ["pause", "deactivate", "archive"],
  paused: ["resume", "deactivate", "archive"],
  archived: ["activate"],
};

const LABELS = {
  activate: "Activate", pause: "Pause", resume: "Resume", deactivate: "Deactivate",
  archive: "Archive",
};

/**
 * Buttons for `workflow`'s next lifecycle steps. `onChanged(workflow)` gets the updated
 * workflow after an action, or null after a delete. Viewers see the buttons disabled.
 */
export function lifecycleButtons(workflow, ctx, onChanged) {
  const label = workflow.name || workflow.id;
  const box = h("div", {class: "actions lifecycle", role: "group", "aria-label": `Lifecycle of ${label}`});
  const disabled = !ctx.canEdit;
  for (const action of ACTIONS[workflow.status] || []) {
    box.append(h("button", {
      type: "button", class: action === "activate" ? "primary" : null, disabled,
      dataset: {action},
      title: disabled ? "Your role can only view" : null,
      on: {click: () => run(action)},
    }, LABELS[action]));
  }
  box.append(h("button", {
    type: "button", class: "danger", disabled: disabled || ctx.session?.role !== "admin",
    dataset: {action: "delete"}, on: {click: remove},
  }, "Delete"));

  async function run(action) {
    try {
      const updated = await api.post(`/v1/workflows/${encodeURIComponent(workflow.id)}/${action}`);
      toast(`${label}: ${updated.status}`, "ok");
      onChanged(updated);
    } catch (error) {
      toast(describeError(error), "error");
    }
  }

  async function remove() {
    if (!confirm(`Delete the workflow “${label}” and all its runs?`)) return;
    const path = `/v1/workflows/${encodeURIComponent(workflow.id)}`;
    try {
      await api.del(path);
    } catch (error) {
      if (error.status !== 409) {
        toast(describeError(error), "error");
        return;
      }
      // The contract's 409: it is active or paused. Say so, and offer the forced delete.
      const force = confirm(`“${label}” is ${workflow.status}: deleting it now cancels the ` +
                            "runs in flight. Delete it anyway?");
      if (!force) {
        toast(`${label} was not deleted: ${error.message}`, "error");
        return;
      }
      try {
        await api.del(path, {force: "true"});
      } catch (again) {
        toast(describeError(again), "error");
        return;
      }
    }
    toast(`${label} deleted`, "ok");
    onChanged(null);
  }

  return box;
}
