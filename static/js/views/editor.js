// One workflow (#/workflows/:id, also …/versions/:n and …/runs/:run): its header (name edited
// in place, status, version, lifecycle) and its tabs. Each tab is a module of its own; the Runs
// and Test tabs load only when opened. The open tab is in the address (`?tab=`), so a reload
// returns to it.

import {api} from "../api.js";
import {badge, h, mount} from "../dom.js";
import {lifecycleButtons} from "../lifecycle.js";
import {describeError, tabs} from "../ui.js";
import {renderCanvasTab} from "../editor/canvas-tab.js";
import {createEdits} from "../editor/edits.js";
import {renderJsonTab} from "../editor/json-tab.js";
import {renderVersionsTab} from "../editor/versions-tab.js";

const TABS = [
  {id: "canvas", label: "Canvas"},
  {id: "json", label: "JSON"},
  {id: "versions", label: "Versions"},
  {id: "runs", label: "Runs"},
  {id: "test", label: "Test"},
];

// The catalogues change only when the server does: fetched once per page load.
let catalogues = null;

async function loadCatalogues() {
  if (!catalogues) {
    catalogues = Promise.all([api.get("/v1/step-types"), api.get("/v1/trigger-types")])
      .then(([steps, triggers]) => ({
        stepTypes: new Map(steps.data.map((t) => [t.name, t])),
        triggerTypes: new Map(triggers.data.map((t) => [t.name, t])),
      }));
    catalogues.catch(() => { catalogues = null; });
  }
  return catalogues;
}

function initialTab(ctx) {
  if (ctx.params.version) return "versions";
  if (ctx.params.run) return "runs";
  return TABS.some((t) => t.id === ctx.query.tab) ? ctx.query.tab : "canvas";
}

export async function render(root, ctx) {
  const id = ctx.params.id;
  const path = `/v1/workflows/${encodeURIComponent(id)}`;
  const [loaded, {stepTypes, triggerTypes}] = await Promise.all([api.get(path), loadCatalogues()]);
  if (!ctx.isCurrent()) return undefined;
  let workflow = loaded;
  let selected = initialTab(ctx);
  let current = null;   // the open tab: {update?, cleanup?}
  // One history of edits for the page, whichever tab made them (undo restores a version).
  const edits = createEdits(id, () => workflow, (updated) => changed(updated));

  const header = h("header", {class: "editor-header"});
  const tabBar = h("div");
  const panel = h("section", {role: "tabpanel", class: "editor-panel"});
  mount(root, h("p", {class: "crumbs"}, h("a", {href: "#/workflows"}, "Workflows"), " / "),
        header, tabBar, panel);

  function changed(updated) {
    if (updated === null) {   // deleted
      ctx.navigate("#/workflows");
      return;
    }
    workflow = updated;
    drawHeader();
    if (current && current.update) current.update();
  }

  function drawHeader() {
    const name = h("input", {
      id: "workflow-name", class: "title-input", value: workflow.name, "aria-label": "Workflow name",
      maxlength: "200", disabled: !ctx.canEdit, on: {change: () => rename(name)},
    });
    const errors = (workflow.issues || []).filter((i) => i.severity === "error").length;
    mount(header,
      h("h1", null, name),
      h("div", {class: "editor-meta"},
        badge(workflow.status),
        h("span", {dataset: {version: String(workflow.version)}}, `version ${workflow.version}`),
        errors ? h("span", {class: "error"}, `${errors} error${errors > 1 ? "s" : ""}`) : null,
        lifecycleButtons(workflow, ctx, changed)));
  }

  async function rename(input) {
    const name = input.value.trim();
    if (!name || name === workflow.name) {
      input.value = workflow.name;
      return;
    }
    try {
      changed(await api.patch(path, {name}));
      ctx.toast("Renamed", "ok");
    } catch (error) {
      input.value = workflow.name;
      ctx.toast(describeError(error), "error");
    }
  }

  async function open(tabId) {
    if (current && current.cleanup) current.cleanup();
    current = null;
    selected = tabId;
    mount(tabBar, tabs(TABS, selected, (next) => {
      if (next === selected) return;
      const query = next === "canvas" ? "?tab=canvas" : `?tab=${next}`;
      history.replaceState(null, "", `#/workflows/${encodeURIComponent(id)}${query}`);
      open(next);
      document.getElementById(`tab-${next}`)?.focus();
    }));
    panel.id = `panel-${tabId}`;
    panel.setAttribute("aria-labelledby", `tab-${tabId}`);
    panel.replaceChildren();
    const env = {
      workflow: () => workflow, ctx, edits, stepTypes, triggerTypes, readOnly: !ctx.canEdit,
      onWorkflowChanged: changed, version: ctx.params.version ? Number(ctx.params.version) : null,
    };
    try {
      current = await openTab(tabId, env);
    } catch (error) {
      mount(panel, h("p", {class: "error", role: "alert"}, describeError(error)));
    }
  }

  async function openTab(tabId, env) {
    if (tabId === "canvas") return renderCanvasTab(panel, env);
    if (tabId === "json") return renderJsonTab(panel, env);
    if (tabId === "versions") return renderVersionsTab(panel, env);
    // The run and test panels take the workflow itself (a run is drawn on its own version).
    const later = {workflow, ctx, runId: ctx.params.run || null, onWorkflowChanged: changed};
    if (tabId === "runs") {
      const {renderRunsTab} = await import("../editor/runs-tab.js");
      return asTab(await renderRunsTab(panel, later));
    }
    const {renderTestTab} = await import("../editor/test-tab.js");
    return asTab(await renderTestTab(panel, later));
  }

  drawHeader();
  await open(selected);
  return () => {
    if (current && current.cleanup) current.cleanup();
  };
}

/** A tab that returned a bare cleanup function (or nothing) as {cleanup}. */
function asTab(result) {
  return typeof result === "function" ? {cleanup: result} : result || null;
}
