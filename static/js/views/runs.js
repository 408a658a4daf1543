// #/runs: every run of the project, newest first, filtered by workflow, status and contact.
// The filters live in the hash query so that a filtered list reloads (and links) as it is.
// The list itself (`runList`) is shared with the editor's Runs tab.

import {api} from "../api.js";
import {ago, badge, h, mount, time} from "../dom.js";
import {field, pagedList} from "../ui.js";

export const RUN_STATUSES = ["pending", "running", "waiting", "paused", "completed", "failed",
                             "cancelled"];

/** A status <select> ("any status" first). */
export function statusSelect(value, onChange) {
  const select = h("select", {name: "status", on: {change: () => onChange(select.value)}},
    h("option", {value: ""}, "any status"),
    RUN_STATUSES.map((s) => h("option", {value: s, selected: s === value}, s)));
  return select;
}

/**
 * A paginated run table in `container`: `filter` is the GET /v1/runs query; a row opens by
 * `href(run)` (a link) or `onOpen(run)` (a button); `names` maps workflow ids to names (the
 * workflow column is shown only with it); `compact` keeps four columns for a side list.
 * "More" follows next_cursor.
 */
export function runList(container, {filter = {}, href, onOpen, names, selected, compact} = {}) {
  const columns = [
    {title: "Run", cell: (run) => opener(run)},
    names ? {title: "Workflow", cell: (run) => names.get(run.workflow_id) || run.workflow_id} : null,
    {title: "Status", cell: (run) => badge(run.status)},
    {title: "Contact", cell: (run) => run.contact_id || h("span", {class: "muted"}, "—")},
    compact ? null : {title: "Step", cell: (run) => run.current_step_id || "—"},
    compact ? null : {title: "Version", cell: (run) => `v${run.workflow_version}`},
    {title: "Started", cell: (run) => compact ? h("span", {title: run.created_at}, ago(run.created_at))
      : h("span", null, time(run.created_at), " ", h("small", {class: "muted"}, ago(run.created_at)))},
  ].filter(Boolean);

  function opener(run) {
    if (href) return h("a", {href: href(run), class: "mono"}, run.id);
    return h("button", {type: "button", class: "link mono", dataset: {run: run.id},
                        "aria-current": run.id === selected ? "true" : null,
                        on: {click: () => onOpen(run)}}, run.id);
  }

  function row(run) {
    return h("tr", {dataset: {run: run.id, status: run.status}},
      columns.map((c) => h("td", null, c.cell(run))));
  }

  const list = pagedList("/v1/runs", filter, columns, {
    label: "Runs", empty: "No runs match.", limit: 25, strict: false, row,
    tableClass: "list runs-list"});
  mount(container, list.element);
  return {
    ready: list.ready,
    /** Show a run's new state in its row (after an action or a refresh). */
    update(run) {
      const old = [...list.tbody.children].find((tr) => tr.dataset.run === run.id);
      if (old) old.replaceWith(row(run));
    },
    /** Mark the open run's row (the Runs tab's list). */
    select(runId) {
      selected = runId;
      for (const button of list.tbody.querySelectorAll("button[data-run]")) {
        if (button.dataset.run === runId) button.setAttribute("aria-current", "true");
        else button.removeAttribute("aria-current");
      }
    },
  };
}

export async function render(root, ctx) {
  const query = {
    workflow_id: ctx.query.workflow_id || "", status: ctx.query.status || "",
    contact_id: ctx.query.contact_id || "",
  };
  let workflows = [];
  try {
    workflows = await api.all("/v1/workflows");
  } catch (error) {
    ctx.showError(error);
  }
  if (!ctx.isCurrent()) return;
  const names = new Map(workflows.map((w) => [w.id, w.name]));

  const apply = (changes) => {
    const next = {...query, ...changes};
    const params = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
    const text = params.toString();
    ctx.navigate(`#/runs${text ? `?${text}` : ""}`);
  };

  const workflowSelect = h("select", {name: "workflow_id",
                                      on: {change: () => apply({workflow_id: workflowSelect.value})}},
    h("option", {value: ""}, "any workflow"),
    workflows.map((w) => h("option", {value: w.id, selected: w.id === query.workflow_id}, w.name)),
    // A filter on a workflow the list no longer shows (archived, deleted) stays visible.
    query.workflow_id && !names.has(query.workflow_id)
      ? h("option", {value: query.workflow_id, selected: true}, query.workflow_id) : null);
  const contact = h("input", {type: "search", name: "contact_id", value: query.contact_id,
                              placeholder: "contact id"});
  const form = h("form", {class: "filters", role: "search", "aria-label": "Filter runs",
                          on: {submit: (event) => {
                            event.preventDefault();
                            apply({contact_id: contact.value.trim()});
                          }}},
    field("Workflow", workflowSelect),
    field("Status", statusSelect(query.status, (status) => apply({status}))),
    field("Contact", contact),
    h("div", {class: "actions"},
      h("button", {type: "submit"}, "Filter"),
      h("button", {type: "button", on: {click: () => ctx.navigate("#/runs")}}, "Clear")));

  const list = h("div", {class: "runs-list-box"});
  mount(root, h("h1", null, "Runs"), form, list);
  const filter = Object.fromEntries(Object.entries(query).filter(([, v]) => v));
  await runList(list, {
    filter, names,
    href: (run) => `#/workflows/${encodeURIComponent(run.workflow_id)}/runs/${encodeURIComponent(run.id)}`,
  }).ready;
}
