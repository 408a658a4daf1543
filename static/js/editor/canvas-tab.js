// The Canvas tab: the graph, the side panel of the selected node (beside the canvas, never over
// it), undo/redo, and per-step counts from GET /v1/workflows/{id}/stats every 5 s.

import {api} from "../api.js";
import {createGraph} from "../canvas/graph.js";
import {h} from "../dom.js";
import {describeError} from "../ui.js";
import {renderPanel} from "./step-panel.js";

const STATS_EVERY_MS = 5000;

/** env = {workflow(), ctx, edits, stepTypes, triggerTypes, readOnly, onWorkflowChanged(wf)} → cleanup */
export function renderCanvasTab(container, env) {
  let selected = null;
  const readOnly = env.readOnly;
  const panel = h("aside", {class: "step-panel", "aria-label": "Selected step"});
  const graphBox = h("div", {class: "canvas-graph"});
  const graph = createGraph(graphBox, {readOnly, onSelect: (id) => select(id)});
  // The editor's history, not the tab's: it outlives a switch to another tab and back.
  const edits = env.edits;

  const undoButton = h("button", {type: "button", dataset: {action: "undo"}, on: {click: () => travel("undo")}}, "Undo");
  const redoButton = h("button", {type: "button", dataset: {action: "redo"}, on: {click: () => travel("redo")}}, "Redo");
  const note = h("span", {class: "muted small", "aria-live": "polite"});
  const bar = h("div", {class: "actions canvas-bar", role: "toolbar", "aria-label": "Edit history"},
                undoButton, redoButton, note);
  container.append(bar, h("div", {class: "canvas-layout"}, graphBox, panel));

  function refreshButtons() {
    undoButton.disabled = readOnly || !edits.canUndo;
    redoButton.disabled = readOnly || !edits.canRedo;
    undoButton.title = edits.peek("undo") ? `Undo ${edits.peek("undo")} (Ctrl+Z)` : "Nothing to undo";
    redoButton.title = edits.peek("redo") ? `Redo ${edits.peek("redo")} (Ctrl+Shift+Z)` : "Nothing to redo";
  }
  const unsubscribe = edits.subscribe(refreshButtons);
  refreshButtons();

  async function travel(direction) {
    if (readOnly) return;
    try {
      const label = edits.peek(direction);
      const done = await edits[direction]();
      if (done) note.textContent = `${direction === "undo" ? "Undid" : "Redid"} ${label}.`;
    } catch (error) {
      note.textContent = describeError(error);
      env.ctx.showError(error);
    }
  }

  function select(id) {
    selected = id;
    graph.select(id);
    drawPanel();
  }

  function drawPanel() {
    renderPanel(panel, {
      workflow: env.workflow(), id: selected, stepTypes: env.stepTypes,
      triggerTypes: env.triggerTypes, readOnly,
      onOps: (ops, label) => edits.patch(ops, env.workflow().version, label),
      onSelect: (id) => select(id),
    });
  }

  /** Called by the editor whenever the workflow changed (here or elsewhere). */
  function update() {
    const workflow = env.workflow();
    graph.draw(workflow);
    graph.setIssues(workflow.issues || []);
    if (selected && selected !== "trigger" && !workflow.steps.some((s) => s.id === selected)) selected = null;
    graph.select(selected);
    drawPanel();
  }

  function onKey(event) {
    if (readOnly || !(event.ctrlKey || event.metaKey) || event.key.toLowerCase() !== "z") return;
    const target = event.target;
    // While typing, Ctrl+Z belongs to the text field.
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    event.preventDefault();
    travel(event.shiftKey ? "redo" : "undo");
  }
  document.addEventListener("keydown", onKey);

  let timer = null;
  let stopped = false;
  async function loadStats() {
    try {
      const path = `/v1/workflows/${encodeURIComponent(env.workflow().id)}`;
      const stats = await api.get(`${path}/stats`);
      if (stopped) return;
      // A newer version saved elsewhere (a script, another tab): draw the server's, unless an
      // edit of ours is on its way (its answer will be drawn anyway).
      if (stats.version > env.workflow().version && !edits.busy) {
        const fresh = await api.get(path);
        if (stopped) return;
        if (fresh.version > env.workflow().version && !edits.busy) env.onWorkflowChanged(fresh);
      }
      // Counts belong to the current version's steps (an older version's would mislead);
      // a version no run has entered shows none rather than a "0" on every node.
      if (stats.version === env.workflow().version && stats.steps.some((s) => s.entered > 0)) {
        const counts = {};
        for (const step of stats.steps) {
          counts[step.step_id] = {entered: step.entered, waiting: step.waiting, branches: step.branches};
        }
        graph.setCounts(counts);
      } else {
        graph.setCounts(null);
      }
    } catch (error) {
      if (!stopped) graph.setCounts(null);
    }
    if (!stopped) timer = setTimeout(loadStats, STATS_EVERY_MS);
  }

  update();
  loadStats();

  return {
    update,
    graph,
    cleanup() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("keydown", onKey);
      unsubscribe();
      graph.destroy();
    },
  };
}
