// The editor's Runs tab: the workflow's runs beside one run drawn on its graph.
//
// A run is drawn on the definition of the version it runs on (it may be older than the one
// being edited), with the path it took, each node's outcome and its current wait. Clicking a
// node (or a row of the trace table) shows that step's visits. Actions are the run endpoints;
// after each, and every 3 s while the run is active, the run is loaded again.

import {api} from "../api.js";
import {createGraph} from "../canvas/graph.js";
import {badge, h, mount, time} from "../dom.js";
import {describeError, field} from "../ui.js";
import {runList, statusSelect} from "../views/runs.js";
import {duration, entriesView, entryLabel, isActive, traceOverlay, waitText} from "./trace.js";

const REFRESH_MS = 3000;

export function renderRunsTab(container, env) {
  const {workflow, ctx} = env;
  const wfPath = `/v1/workflows/${encodeURIComponent(workflow.id)}`;
  const listBox = h("div", {class: "runs-tab-list"});
  const detail = h("section", {class: "run-detail", "aria-label": "Run"});
  let status = "";
  let list = null;
  let openId = env.runId || null;
  let token = 0;          // the open run's load generation: late answers for another run drop
  let closed = false;
  let timer = null;
  let view = null;        // the open run's widgets, see openRun

  function showList() {
    list = runList(listBox.querySelector(".runs-tab-rows"), {
      filter: {workflow_id: workflow.id, status}, compact: true, selected: openId,
      onOpen: (run) => openRun(run.id),
    });
  }
  mount(container, h("div", {class: "runs-tab"},
    h("aside", {class: "runs-tab-side", "aria-label": "Runs of this workflow"}, listBox),
    detail));
  mount(listBox,
    field("Status", statusSelect(status, (value) => { status = value; showList(); })),
    h("div", {class: "runs-tab-rows"}));
  showList();
  if (openId) openRun(openId);
  else mount(detail, h("p", {class: "muted"}, "Choose a run to see the path it took."));

  async function openRun(runId) {
    const mine = ++token;
    stopTimer();
    if (view) view.graph.destroy();
    view = null;
    openId = runId;
    list?.select(runId);
    // The address names the run (so a reload reopens it) without routing the editor again.
    const target = `#/workflows/${encodeURIComponent(workflow.id)}/runs/${encodeURIComponent(runId)}`;
    if (location.hash !== target) history.replaceState(null, "", target);
    mount(detail, h("p", {class: "muted", "aria-busy": "true"}, "Loading the run…"));
    let run, definition;
    try {
      run = await api.get(`/v1/runs/${encodeURIComponent(runId)}`);
      definition = await api.get(`${wfPath}/versions/${run.workflow_version}`);
    } catch (error) {
      if (mine === token && !closed) {
        mount(detail, h("p", {class: "error", role: "alert"}, describeError(error)));
      }
      return;
    }
    if (mine !== token || closed) return;
    const graphBox = h("div", {class: "run-graph", "aria-label": `Graph of run ${run.id}`});
    const head = h("div", {class: "run-head"});
    const steps = h("div", {class: "run-trace"});
    const panel = h("div", {class: "run-step", "aria-live": "polite"});
    mount(detail, head, graphBox, panel, steps);
    const graph = createGraph(graphBox, {readOnly: true, onSelect: (stepId) => showStep(stepId)});
    view = {run, definition, graph, head, steps, panel, stepId: null};
    graph.draw({trigger: definition.trigger, steps: definition.steps});
    show(run, true);
    graph.fit();
  }

  /** Draw `run` into the open view; the header and trace only when the run changed. */
  function show(run, changed) {
    view.run = run;
    if (changed) list?.update(run);
    view.graph.setOverlay(traceOverlay(run.steps || [], run));
    if (changed) {
      mount(view.head, header(run), actions(run));
      mount(view.steps, traceTable(run));
      if (view.stepId) showStep(view.stepId);
    }
    stopTimer();
    if (isActive(run.status)) timer = setTimeout(refresh, REFRESH_MS);
  }

  async function refresh() {
    const mine = token;
    let run;
    try {
      run = await api.get(`/v1/runs/${encodeURIComponent(openId)}`);
    } catch (error) {
      if (error.status === 404 && mine === token && !closed) {
        mount(detail, h("p", {class: "error", role: "alert"}, "This run no longer exists."));
        return;
      }
      run = null;   // a passing failure: try again at the next tick
    }
    if (mine !== token || closed || !view) return;
    if (!run) {
      timer = setTimeout(refresh, REFRESH_MS);
      return;
    }
    const changed = run.updated_at !== view.run.updated_at || run.status !== view.run.status ||
      (run.steps || []).length !== (view.run.steps || []).length;
    show(run, changed);
  }

  function stopTimer() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function showStep(stepId) {
    if (!view) return;
    view.stepId = stepId;
    const run = view.run;
    if (stepId === "trigger") {
      mount(view.panel, h("h3", null, "Trigger"),
            h("pre", {class: "json"}, JSON.stringify(run.trigger, null, 2)));
      return;
    }
    const step = view.definition.steps.find((s) => s.id === stepId);
    const entries = (run.steps || []).filter((e) => e.step_id === stepId);
    mount(view.panel,
      h("h3", null, `Step ${stepId}`, step ? h("span", {class: "muted"}, ` · ${step.name || step.type}`) : null),
      entriesView(stepId, entries));
  }

  function header(run) {
    const facts = [
      ["Status", badge(run.status)],
      ["Version", `v${run.workflow_version}` +
        (run.workflow_version !== workflow.version ? ` (the workflow is at v${workflow.version})` : "")],
      ["Contact", run.contact_id
        ? h("a", {href: `#/contacts/${encodeURIComponent(run.contact_id)}`}, run.contact_id) : "—"],
      ["Started", time(run.created_at)],
      ["Updated", time(run.updated_at)],
      run.completed_at ? ["Ended", time(run.completed_at)] : null,
      run.current_step_id ? ["Current step", run.current_step_id] : null,
      run.wait ? ["Waiting", h("span", {class: "run-wait"}, waitText(run.wait))] : null,
      run.wait?.until ? ["Wait ends", time(run.wait.until)] : null,
      run.error ? ["Error", h("span", {class: "error"},
        `${run.error.code}: ${run.error.message}${run.error.step_id ? ` (step ${run.error.step_id})` : ""}`)] : null,
      run.exit_reason ? ["Exit reason", run.exit_reason] : null,
      run.parent_run_id ? ["Parent run", run.parent_run_id] : null,
    ].filter(Boolean);
    return h("div", null,
      h("h2", null, "Run ", h("span", {class: "mono"}, run.id)),
      h("dl", {class: "facts run-facts"}, facts.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])));
  }

  function actions(run) {
    const disabled = !ctx.canEdit;
    const title = disabled ? "Your role can only view" : null;
    const button = (action, label, onClick, cls) =>
      h("button", {type: "button", class: cls, disabled, title, dataset: {action},
                   on: {click: onClick}}, label);
    const box = h("div", {class: "actions run-actions", role: "group", "aria-label": "Run actions"});
    const path = `/v1/runs/${encodeURIComponent(run.id)}`;
    if (run.wait?.kind === "approval" && run.status === "waiting") {
      box.append(
        button("approve", "Approve", () => act(`${path}/resume`, {decision: "approved"}, "approved"), "primary"),
        button("reject", "Reject", () => act(`${path}/resume`, {decision: "rejected"}, "rejected")));
    }
    if (run.status === "paused") {
      box.append(button("resume", "Resume", () => act(`${path}/resume`, {}, "resumed"), "primary"));
    }
    if (run.status === "failed") {
      const from = h("select", {name: "from_step", disabled},
        h("option", {value: ""}, "the failed step"),
        view.definition.steps.map((s) => h("option", {value: s.id}, s.name ? `${s.id} · ${s.name}` : s.id)));
      box.append(field("Retry from", from), button("retry", "Retry", () =>
        act(`${path}/retry`, from.value ? {from_step: from.value} : {}, "retried"), "primary"));
    }
    if (isActive(run.status)) {
      box.append(button("cancel", "Cancel run", () => {
        if (confirm(`Cancel run ${run.id}? This cannot be undone.`)) act(`${path}/cancel`, undefined, "cancelled");
      }, "danger"));
    }
    return box;
  }

  async function act(path, body, done) {
    const mine = token;
    for (const b of view.head.querySelectorAll(".run-actions button")) b.disabled = true;
    try {
      await api.post(path, body);
      ctx.toast(`Run ${done}`, "ok");
    } catch (error) {
      ctx.showError(error);
    }
    if (mine !== token || closed) return;
    // The action's answer has no trace; the full run does.
    stopTimer();
    try {
      show(await api.get(`/v1/runs/${encodeURIComponent(openId)}`), true);
    } catch (error) {
      ctx.showError(error);
    }
  }

  function traceTable(run) {
    const entries = run.steps || [];
    if (!entries.length) return h("p", {class: "muted"}, "No step has run yet.");
    return h("table", {class: "list run-trace-table"},
      h("caption", null, "Trace"),
      h("thead", null, h("tr", null, ["#", "Step", "Status", "Outcome", "Started", "Duration"]
        .map((t) => h("th", {scope: "col"}, t)))),
      h("tbody", null, entries.map((e) => h("tr", {dataset: {step: e.step_id, status: e.status}},
        h("td", null, String(e.seq)),
        h("td", null, h("button", {type: "button", class: "link mono", on: {click: () => {
          view.graph.select(e.step_id);
          showStep(e.step_id);
        }}}, e.step_id), " ", h("span", {class: "muted"}, e.type)),
        h("td", null, badge(e.status)),
        h("td", null, entryLabel(e)),
        h("td", null, time(e.started_at)),
        h("td", null, duration(e.duration_ms))))));
  }

  return () => {
    closed = true;
    stopTimer();
    if (view) view.graph.destroy();
    view = null;
  };
}
