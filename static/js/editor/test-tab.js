// The editor's Test tab: a time-travel dry run (POST /v1/workflows/{id}/test-run) of the saved
// workflow for one made-up contact. The server runs the real engine on a throwaway store with
// a virtual clock, so days of waits pass at once and nothing is written, sent or called; this
// panel only gathers the request and shows the answer: a timeline in days from the start, the
// effects that would have happened, and the path drawn on the graph.

import {api} from "../api.js";
import {createGraph} from "../canvas/graph.js";
import {badge, h, mount, time} from "../dom.js";
import {describeError, field} from "../ui.js";
import {dayTime, entriesView, span, traceOverlay} from "./trace.js";

// An ISO 8601 duration (the server has the last word; this catches typos before sending).
const DURATION = /^P(?!$)(\d+(\.\d+)?[YMWD])*(T(?=\d)(\d+(\.\d+)?[HMS])+)?$/;
const CALLS_OUT = new Set(["webhook", "http_request"]);

export function renderTestTab(container, env) {
  const {workflow} = env;
  const steps = workflow.steps || [];
  const trigger = workflow.trigger || {};
  let graph = null;
  let closed = false;

  // A field whose value must parse as JSON (an object unless `any`); the error shows beside it.
  function jsonInput(name, value, {rows = 3, any = false} = {}) {
    const area = h("textarea", {name, rows, spellcheck: "false", class: "json-input"},
                   JSON.stringify(value, null, 2));
    const error = h("small", {class: "field-error", role: "alert"});
    area.readJson = () => {
      error.textContent = "";
      area.removeAttribute("aria-invalid");
      let parsed;
      try {
        parsed = JSON.parse(area.value.trim() || (any ? "null" : "{}"));
      } catch (e) {
        return fail(`not valid JSON: ${e.message}`);
      }
      if (!any && (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))) {
        return fail("must be a JSON object");
      }
      return {ok: true, value: parsed};
    };
    function fail(message) {
      error.textContent = message;
      area.setAttribute("aria-invalid", "true");
      return {ok: false, field: area};
    }
    area.errorBox = error;
    return area;
  }

  function durationInput(name, value, label) {
    const input = h("input", {name, value, size: 8, "aria-label": label, class: "mono"});
    input.readDuration = () => {
      const text = input.value.trim();
      if (DURATION.test(text)) {
        input.removeAttribute("aria-invalid");
        return {ok: true, value: text};
      }
      input.setAttribute("aria-invalid", "true");
      return {ok: false, field: input, message: `${label}: “${text}” is not an ISO 8601 duration such as P3D or PT2H`};
    };
    return input;
  }

  const plainName = (pattern) => (pattern && !pattern.includes("*") ? pattern : "");
  const eventName = h("input", {name: "event_name", placeholder: "test.run",
                                value: trigger.type === "event" ? plainName(trigger.event) : ""});
  const eventProps = jsonInput("event_properties", {});
  const contact = jsonInput("contact", {id: "test-contact", email: "test@example.com", traits: {}},
                            {rows: 4});
  const horizon = durationInput("horizon", "P30D", "Horizon");

  // Events that arrive later: a row each.
  const laterEvents = h("ol", {class: "test-events"});
  const waitedFor = steps.find((s) => s.type === "wait_for_event" && plainName(s.config?.event));
  let rowsMade = 0;   // numbers in the rows' labels stay unique when rows are removed
  function addEventRow() {
    const n = ++rowsMade;
    const after = durationInput("after", "PT1H", `Event ${n} arrives after`);
    const name = h("input", {name: "name", "aria-label": `Event ${n} name`,
                             value: waitedFor ? waitedFor.config.event : ""});
    const props = jsonInput("properties", {}, {rows: 2});
    props.setAttribute("aria-label", `Event ${n} properties`);
    const row = h("li", {class: "test-event"},
      h("div", {class: "row"}, h("label", null, "after ", after), h("label", null, "name ", name),
        h("button", {type: "button", class: "link", "aria-label": `Remove event ${n}`,
                     on: {click: () => row.remove()}}, "Remove")),
      props, props.errorBox);
    row.read = () => ({after: after.readDuration(), name: name.value.trim(), props: props.readJson()});
    laterEvents.append(row);
    name.focus();
  }

  // A canned answer per step that calls out.
  const responses = steps.filter((s) => CALLS_OUT.has(s.type)).map((step) => {
    const status = h("input", {type: "number", min: 100, max: 599, value: 200, name: "status",
                               "aria-label": `${step.id} response status`});
    const body = jsonInput("body", {}, {rows: 2, any: true});
    body.setAttribute("aria-label", `${step.id} response body`);
    return {step, status, body};
  });

  const run = h("button", {type: "submit", class: "primary"}, "Run test");
  const problems = h("div", {class: "test-problems", role: "alert"});
  const results = h("section", {class: "test-results", "aria-label": "Test result", "aria-live": "polite"});
  const form = h("form", {class: "test-form", "aria-label": "Test run", novalidate: true,
                          on: {submit: (e) => { e.preventDefault(); submit(); }}},
    h("p", {class: "muted"}, "A dry run of the saved workflow: the real engine on a virtual clock, " +
      "so waits of days pass at once. Nothing is written, sent or called."),
    h("fieldset", null, h("legend", null, "Trigger event"),
      field("Event name", eventName, "Empty: test.run"),
      field("Event properties (JSON)", eventProps), eventProps.errorBox),
    h("fieldset", null, h("legend", null, "Contact"),
      field("Contact (JSON)", contact, "Exists only inside the test run."), contact.errorBox),
    h("fieldset", null, h("legend", null, "Events arriving later"), laterEvents,
      h("button", {type: "button", on: {click: addEventRow}}, "Add event")),
    responses.length ? h("fieldset", null, h("legend", null, "Responses of calling steps"),
      responses.map(({step, status, body}) => h("div", {class: "test-response"},
        h("p", null, h("strong", {class: "mono"}, step.id), " ", h("span", {class: "muted"}, step.type)),
        h("label", null, "status ", status), body, body.errorBox))) : null,
    field("Horizon", horizon, "How far virtual time may go (at most P366D)."),
    h("div", {class: "actions"}, run), problems);
  mount(container, h("div", {class: "test-tab"}, form, results));

  function gather() {
    const bad = [];
    const check = (result) => { if (!result.ok) bad.push(result); return result.value; };
    const body = {
      event: {properties: check(eventProps.readJson())},
      contact: check(contact.readJson()),
      events: [...laterEvents.children].map((row) => {
        const r = row.read();
        if (!r.name) bad.push({field: row.querySelector("input[name=name]"), message: "a later event needs a name"});
        return {after: check(r.after), name: r.name, properties: check(r.props)};
      }),
      responses: Object.fromEntries(responses.map(({step, status, body: bodyInput}) =>
        [step.id, {status: Number(status.value) || 200, body: check(bodyInput.readJson())}])),
      horizon: check(horizon.readDuration()),
    };
    if (eventName.value.trim()) body.event.name = eventName.value.trim();
    return {body, bad};
  }

  async function submit() {
    const {body, bad} = gather();
    if (bad.length) {
      mount(problems, h("p", {class: "error"}, "Fix these fields first:"),
        h("ul", null, bad.map((b) => h("li", null, b.message || `${b.field.getAttribute("aria-label") || b.field.name}: see the field`))));
      bad[0].field?.focus();
      return;
    }
    mount(problems);
    run.disabled = true;
    run.setAttribute("aria-busy", "true");
    try {
      const result = await api.post(`/v1/workflows/${encodeURIComponent(workflow.id)}/test-run`, body);
      if (!closed) showResult(result);
    } catch (error) {
      if (closed) return;
      // A 422 lists every problem with its path (e.g. events[0].after), not only the first five.
      const details = error.details || [];
      mount(problems, h("p", {class: "error"}, details.length ? error.message : describeError(error)),
        details.length ? h("ul", null, details.map((d) =>
          h("li", null, d.path ? `${d.path}: ${d.message}` : d.message))) : null);
    } finally {
      run.disabled = false;
      run.removeAttribute("aria-busy");
    }
  }

  function showResult(result) {
    const trace = result.trace || [];
    const start = trace.length ? trace[0].at : result.ends_at;
    const detail = h("div", {class: "test-step", "aria-live": "polite"});
    const select = (stepId) => {
      mount(detail, h("h3", null, `Step ${stepId}`),
            entriesView(stepId, trace.filter((e) => e.step_id === stepId), {start}));
    };
    const graphBox = h("div", {class: "run-graph test-graph", "aria-label": "Graph of the test run"});
    mount(results,
      h("h2", null, "Result"),
      h("dl", {class: "facts test-summary"},
        h("dt", null, "Status"), h("dd", null, badge(result.status)),
        h("dt", null, "Ends"), h("dd", {class: "test-ends"}, endsText(result.ends_at, start), " · ",
          time(result.ends_at)),
        result.run?.exit_reason ? [h("dt", null, "Exit reason"), h("dd", null, result.run.exit_reason)] : null,
        result.run?.error ? [h("dt", null, "Error"), h("dd", {class: "error"},
          `${result.run.error.code}: ${result.run.error.message}`)] : null,
        result.stopped ? [h("dt", null, "Stopped early"), h("dd", {class: "error"}, result.stopped)] : null),
      h("h3", null, "Timeline"), timeline(trace, start, select),
      h("h3", null, "Effects"), effectsList(result.effects || [], start),
      h("h3", null, "Path"), graphBox, detail);
    if (graph) graph.destroy();
    graph = createGraph(graphBox, {readOnly: true, onSelect: select});
    graph.draw({trigger: workflow.trigger, steps});
    // The overlay's wait texts count from the end of virtual time, not from now.
    graph.setOverlay(traceOverlay(trace, {...(result.run || {}), status: result.status},
                                  new Date(result.ends_at).getTime()));
    graph.fit();
  }

  function endsText(endsAt, start) {
    const after = new Date(endsAt) - new Date(start);
    return `${dayTime(endsAt, start)} (${after > 0 ? `${span(after)} after the start` : "at the start"})`;
  }

  function timeline(trace, start, select) {
    if (!trace.length) return h("p", {class: "muted"}, "No step ran.");
    return h("ol", {class: "test-timeline"}, trace.map((entry, i) => {
      const next = trace[i + 1];
      const outcome = entry.outcome || entry.status;
      const lasted = entry.finished_at && new Date(entry.finished_at) - new Date(entry.at) >= 60_000;
      const text = `${dayTime(entry.at, start)}: ${entry.type} ${entry.step_id} — ${outcome}` +
        (entry.branch && entry.branch !== outcome ? ` (${entry.branch})` : "") +
        (entry.branch && next ? ` → ${next.step_id}` : "") +
        (lasted ? ` (until ${dayTime(entry.finished_at, start)})` : "");
      return h("li", {dataset: {step: entry.step_id, status: entry.status}},
        h("button", {type: "button", class: "link", on: {click: () => {
          graph?.select(entry.step_id);
          select(entry.step_id);
        }}}, text));
    }));
  }

  function effectsList(effects, start) {
    if (!effects.length) return h("p", {class: "muted"}, "Nothing would be sent or called.");
    return h("ol", {class: "test-effects"}, effects.map((effect) => {
      const lines = Object.entries(effect)
        .filter(([k, v]) => !["kind", "step_id", "at"].includes(k) && v !== null && v !== undefined)
        .map(([k, v]) => `${k}: ${text(v)}`);
      return h("li", {dataset: {kind: effect.kind, step: effect.step_id}},
        h("p", null, h("strong", null, effect.kind), ` · ${effect.step_id} · ${dayTime(effect.at, start)}`),
        h("pre", {class: "effect-body"}, lines.join("\n")));
    }));
  }

  /** A value of an effect as plain text: strings as they are, lists of strings joined. */
  function text(value) {
    if (typeof value === "string") return value;
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value.join(", ");
    return JSON.stringify(value, null, 2);
  }

  return () => {
    closed = true;
    if (graph) graph.destroy();
  };
}
