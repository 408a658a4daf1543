// The workflows list: search by name (server-side, "contains"), a status filter, "More" pages
// through next_cursor, per-row lifecycle buttons, and the two ways to start a workflow.
// Filters live in the hash query (replaced, not pushed) so a reload shows the same list.

import {api} from "../api.js";
import {ago, badge, h, mount} from "../dom.js";
import {lifecycleButtons} from "../lifecycle.js";
import {describeError, field} from "../ui.js";

const PAGE = 100;
const STATUSES = ["draft", "active", "paused", "archived"];
const COLUMNS = ["Name", "Status", "Version", "Runs active / failed", "Last change", "Issues", "Lifecycle"];

export async function render(root, ctx) {
  const started = performance.now();
  let filters = {name: ctx.query.name || "", status: STATUSES.includes(ctx.query.status) ? ctx.query.status : ""};
  let cursor = null;
  let generation = 0;   // a newer search makes older answers stale
  let timer = null;

  const search = h("input", {type: "search", value: filters.name, placeholder: "Name contains…",
                             on: {input: () => { clearTimeout(timer); timer = setTimeout(applyFilters, 300); }}});
  const status = h("select", {on: {change: applyFilters}},
    h("option", {value: ""}, "All but archived"),
    STATUSES.map((s) => h("option", {value: s, selected: s === filters.status}, s)));
  const tbody = h("tbody");
  const list = h("table", {class: "list workflows", id: "workflow-list"},
    h("caption", {class: "visually-hidden"}, "Workflows"),
    h("thead", null, h("tr", null, COLUMNS.map((c) => h("th", {scope: "col"}, c)))), tbody);
  const empty = h("p", {class: "empty muted", hidden: true}, "No workflows match.");
  const status_line = h("p", {class: "muted count", "aria-live": "polite"});
  const more = h("button", {type: "button", hidden: true, on: {click: () => load(false)}}, "More");
  const creator = newWorkflowForm(ctx);
  const newButton = h("button", {type: "button", class: "primary", disabled: !ctx.canEdit,
                                 "aria-expanded": "false", "aria-controls": "new-workflow",
                                 title: ctx.canEdit ? null : "Your role can only view",
                                 on: {click: toggleNew}}, "New workflow");

  mount(root,
    h("div", {class: "list-head"},
      h("h1", null, "Workflows"),
      h("div", {class: "actions"}, newButton,
        h("a", {class: "button", href: "#/gallery"}, "From a blueprint"))),
    creator,
    h("form", {class: "filters", role: "search", on: {submit: (e) => { e.preventDefault(); applyFilters(); }}},
      field("Search by name", search), field("Status", status)),
    status_line, list, empty, h("div", {class: "actions"}, more));

  await load(true, started);
  return () => clearTimeout(timer);

  function toggleNew() {
    const open = creator.hidden;
    creator.hidden = !open;
    newButton.setAttribute("aria-expanded", String(open));
    if (open) creator.querySelector("input").focus();
  }

  function applyFilters() {
    clearTimeout(timer);
    filters = {name: search.value.trim(), status: status.value};
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
    history.replaceState(null, "", `#/workflows${query ? `?${query}` : ""}`);
    return load(true);
  }

  async function load(fresh, since = performance.now()) {
    const mine = fresh ? ++generation : generation;
    if (fresh) cursor = null;
    more.disabled = true;
    let page;
    try {
      page = await api.get("/v1/workflows", {...filters, limit: PAGE, cursor: fresh ? null : cursor});
    } catch (error) {
      if (mine === generation) status_line.textContent = describeError(error);
      more.disabled = false;
      if (since === started) throw error;   // the first load: app.js shows it in place of the view
      return;
    }
    if (mine !== generation || !ctx.isCurrent()) return;
    const rows = page.data.map(row);
    if (fresh) tbody.replaceChildren(...rows);
    else tbody.append(...rows);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    const count = tbody.childElementCount;
    empty.hidden = count > 0;
    list.hidden = count === 0;
    status_line.textContent = `${count} workflow${count === 1 ? "" : "s"} shown${cursor ? ", more available" : ""}`;
    list.dataset.count = String(count);
    // How long this draw took, from the start of the render (or the click on "More") to the
    // rows being in the document: the list's own performance budget, read by the tests.
    list.dataset.renderMs = (performance.now() - since).toFixed(1);
  }

  function row(workflow) {
    const tr = h("tr", {dataset: {id: workflow.id}},
      h("td", null, h("a", {href: `#/workflows/${encodeURIComponent(workflow.id)}`}, workflow.name || workflow.id)),
      h("td", null, badge(workflow.status)),
      h("td", {class: "num"}, String(workflow.version ?? "—")),
      h("td", {class: "num"}, runsText(workflow.runs)),
      h("td", null, h("time", {datetime: workflow.updated_at, title: exact(workflow.updated_at)}, ago(workflow.updated_at))),
      h("td", {class: "num"}, issuesCell(workflow.issues)),
      h("td", null, lifecycleButtons(workflow, ctx, (updated) => {
        if (!updated) {
          tr.remove();
          list.dataset.count = String(tbody.childElementCount);
        } else {
          // Action answers may lack the list-only fields (runs): keep the ones we had.
          tr.replaceWith(row({...workflow, ...updated, steps: undefined}));
        }
      })));
    return tr;
  }
}

function runsText(runs) {
  if (!runs || typeof runs !== "object") return "—";
  return `${runs.active ?? "—"} / ${runs.failed ?? "—"}`;
}

function issuesCell(issues) {
  if (!Array.isArray(issues)) return "—";
  const errors = issues.filter((i) => i.severity === "error").length;
  if (!issues.length) return "0";
  return h("span", {class: errors ? "error" : "muted",
                    title: `${errors} error${errors === 1 ? "" : "s"}, ${issues.length - errors} warning${issues.length - errors === 1 ? "" : "s"}`},
           String(issues.length));
}

function exact(value) {
  return value ? `${new Date(value).toLocaleString()} (${value})` : "";
}

/** The "New workflow" form: name and trigger, saved as a draft with no steps yet. */
function newWorkflowForm(ctx) {
  const name = h("input", {name: "name", required: true, maxlength: "200", autocomplete: "off"});
  const type = h("select", {name: "trigger"}, h("option", {value: "event"}, "event"),
                 h("option", {value: "manual"}, "manual"));
  const event = h("input", {name: "event", placeholder: "e.g. user.signed_up or auth.*", autocomplete: "off"});
  const eventField = field("Event name", event, "* matches any run of characters.");
  const error = h("p", {class: "error", role: "alert"});
  const submit = h("button", {type: "submit", class: "primary"}, "Create draft");
  type.addEventListener("change", () => { eventField.hidden = type.value !== "event"; });

  const form = h("form", {id: "new-workflow", class: "panel new-workflow", hidden: true,
                          "aria-label": "New workflow", on: {submit: create}},
    h("h2", null, "New workflow"), field("Name", name), field("Trigger", type), eventField, error,
    h("div", {class: "actions"}, submit));
  return form;

  async function create(e) {
    e.preventDefault();
    error.textContent = "";
    const trigger = type.value === "event" ? {type: "event", event: event.value.trim()} : {type: "manual"};
    if (trigger.type === "event" && !trigger.event) {
      error.textContent = "An event trigger needs an event name.";
      event.focus();
      return;
    }
    submit.disabled = true;
    try {
      const workflow = await api.post("/v1/workflows", {name: name.value.trim(), trigger, steps: []});
      ctx.toast(`Created “${workflow.name}”`, "ok");
      ctx.navigate(`#/workflows/${encodeURIComponent(workflow.id)}`);
    } catch (problem) {
      error.textContent = describeError(problem);
      submit.disabled = false;
    }
  }
}
