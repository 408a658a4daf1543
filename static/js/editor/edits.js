// Edits of a workflow's definition and their undo history. Every edit is ONE API call — a
// PATCH with an operation batch, which makes one new version — and the server's answer is the
// new state: the page never keeps a definition of its own.
//
// Undo restores the version before the edit by PUT of that version's trigger/steps/settings
// (versions are immutable, so this is exact whatever happened in between); redo PUTs the
// version the edit made. One history entry per edit, selection is not history
// (builder-notes item 2).

import {api} from "../api.js";

/** `current()` is the workflow as last drawn: a PUT needs its name and description too. */
export function createEdits(workflowId, current, onChanged) {
  const path = `/v1/workflows/${encodeURIComponent(workflowId)}`;
  const undoStack = [];   // [{before, after, label}] version numbers
  const redoStack = [];
  let busy = false;
  const listeners = new Set();

  const notify = () => listeners.forEach((fn) => fn());

  async function record(label, before, call) {
    if (busy) throw new Error("another change is still being saved");
    busy = true;
    notify();
    try {
      const workflow = await call();
      if (workflow.version !== before) {
        undoStack.push({before, after: workflow.version, label});
        redoStack.length = 0;
      }
      onChanged(workflow);
      return workflow;
    } finally {
      busy = false;
      notify();
    }
  }

  async function restore(version) {
    const old = await api.get(`${path}/versions/${version}`);
    const {name, description} = current();
    return api.put(path, {name, description, trigger: old.trigger, steps: old.steps,
                          settings: old.settings});
  }

  async function travel(from, to, direction) {
    if (busy || !from.length) return null;
    const entry = from[from.length - 1];
    busy = true;
    notify();
    try {
      const workflow = await restore(direction === "undo" ? entry.before : entry.after);
      from.pop();
      to.push(entry);
      onChanged(workflow);
      return workflow;
    } finally {
      busy = false;
      notify();
    }
  }

  return {
    /** One PATCH of `operations`; `version` is the workflow's version the edit starts from. */
    patch: (operations, version, label) =>
      record(label, version, () => api.patch(path, {operations})),
    /** A whole definition (the JSON tab): one PUT. */
    put: (definition, version, label) => record(label, version, () => api.put(path, definition)),
    undo: () => travel(undoStack, redoStack, "undo"),
    redo: () => travel(redoStack, undoStack, "redo"),
    get canUndo() { return !busy && undoStack.length > 0; },
    get canRedo() { return !busy && redoStack.length > 0; },
    get busy() { return busy; },
    peek: (which) => {
      const stack = which === "undo" ? undoStack : redoStack;
      return stack.length ? stack[stack.length - 1].label : null;
    },
    subscribe(fn) { listeners.add(fn); return () => listeners.delete(fn); },
  };
}
