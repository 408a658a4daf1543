// A run's trace as the graph sees it, the small time texts the run views share, and one
// step's visits as text.
//
// One function turns a trace (GET /v1/runs/{id} `steps`, or a test run's `trace`) into the
// graph's overlay, so a real run and a dry run are drawn the same way.

import {badge, h, jsonBlock, time} from "../dom.js";

const ACTIVE = new Set(["pending", "running", "waiting", "paused"]);

export function isActive(status) {
  return ACTIVE.has(status);
}

/**
 * The overlay for graph.setOverlay: each visited node's state and label, and the path taken
 * (trigger → first step → …, one edge per pair of consecutive visits).
 * `run` is {status, current_step_id, wait} (a run, or a test run's `run` plus its status).
 */
export function traceOverlay(trace, run, now = Date.now()) {
  const nodes = {};
  const edges = [];
  const seen = new Set();
  const addEdge = (from, to) => {
    const key = `${from}\u0000${to}`;
    if (from === to || seen.has(key)) return;
    seen.add(key);
    edges.push([from, to]);
  };
  if (trace.length) nodes.trigger = {state: "ok", label: "started"};
  let previous = "trigger";
  const visits = {};
  for (const entry of trace) {
    addEdge(previous, entry.step_id);
    previous = entry.step_id;
    visits[entry.step_id] = (visits[entry.step_id] || 0) + 1;
    nodes[entry.step_id] = {
      state: stateOf(entry),
      label: entryLabel(entry, visits[entry.step_id]),
    };
  }
  // The step the run stands on: its wait, or "current" while it runs or is paused there.
  const here = run && run.current_step_id;
  if (here && isActive(run.status)) {
    const node = nodes[here] || (nodes[here] = {state: "current", label: ""});
    if (run.status === "waiting") {
      node.state = "waiting";
      node.label = waitText(run.wait, now) || node.label;
    } else if (run.status !== "pending") {
      node.state = node.state === "waiting" ? "waiting" : "current";
      if (run.status === "paused") node.label = `paused${node.label ? ` · ${node.label}` : ""}`;
    }
  }
  return {nodes, edges};
}

function stateOf(entry) {
  if (entry.status === "failed") return "failed";
  if (entry.status === "waiting") return "waiting";
  if (entry.status === "skipped") return "skipped";
  return "ok";
}

/** "sent", "no", "timeout · ×3" (attempts), "2 visits". */
export function entryLabel(entry, visit = 1) {
  const parts = [];
  const outcome = entry.outcome || entry.status;
  parts.push(entry.branch && entry.branch !== outcome ? `${outcome} → ${entry.branch}` : outcome);
  if ((entry.attempt || 1) > 1) parts.push(`attempt ${entry.attempt}`);
  if (visit > 1) parts.push(`visit ${visit}`);
  return parts.filter(Boolean).join(" · ");
}

/** "ends in 2 d 3 h", "waits for email.clicked (ends in 3 d)", "awaits approval". */
export function waitText(wait, now = Date.now()) {
  if (!wait) return "";
  const ends = wait.until ? `ends in ${span(new Date(wait.until).getTime() - now)}` : "";
  if (wait.kind === "event") {
    return `waits for ${wait.event || "an event"}${ends ? ` (${ends})` : ""}`;
  }
  if (wait.kind === "approval") return `awaits approval${ends ? ` (${ends})` : ""}`;
  if (wait.kind === "child") return `waits for its child run${ends ? ` (${ends})` : ""}`;
  if (wait.retry) return `retries${ends ? ` — ${ends.replace("ends", "next attempt")}` : ""}`;
  return ends || "waits";
}

/** A length of time as "2 d 3 h", "5 min", "12 s": the largest unit and the one below it. */
export function span(ms) {
  if (ms <= 0) return "now";
  const units = [[86_400_000, "d"], [3_600_000, "h"], [60_000, "min"], [1000, "s"]];
  const first = units.findIndex(([size]) => ms >= size);
  if (first < 0) return "1 s";
  const parts = [];
  let rest = ms;
  for (const [size, unit] of units.slice(first, first + 2)) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0) parts.push(`${count} ${unit}`);
  }
  return parts.join(" ");
}

/** Virtual time relative to `start` as "day 3, 14:05" (day 0 is the start's day). */
export function dayTime(at, start) {
  const offset = new Date(at).getTime() - new Date(start).getTime();
  const day = Math.floor(offset / 86_400_000);
  const within = offset - day * 86_400_000;
  const hours = Math.floor(within / 3_600_000);
  const minutes = Math.floor((within % 3_600_000) / 60_000);
  return `day ${day}, ${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}`;
}

/** Milliseconds as "12 ms", "1.4 s", or a span. */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return span(ms);
}

/**
 * One step's visits (trace entries) as text: status, outcome, times, duration, and its input,
 * output and error as pretty JSON. `start` (a time) adds "day N, hh:mm" for dry runs.
 */
export function entriesView(stepId, entries, {start} = {}) {
  if (!entries.length) {
    return h("p", {class: "muted"}, `The run did not reach ${stepId}.`);
  }
  return h("ol", {class: "trace-entries"}, entries.map((entry, i) => {
    const started = entry.started_at || entry.at;
    const took = entry.duration_ms ?? (entry.finished_at && started
      ? new Date(entry.finished_at) - new Date(started) : null);
    return h("li", {class: "trace-entry", dataset: {seq: entry.seq ?? i + 1}},
      h("p", {class: "entry-head"},
        badge(entry.status), " ", h("strong", null, entryLabel(entry)),
        " ", h("span", {class: "muted"}, entry.type)),
      h("dl", {class: "facts"},
        h("dt", null, "Started"), h("dd", null, start ? dayTime(started, start) : time(started)),
        h("dt", null, "Finished"),
        h("dd", null, entry.finished_at
          ? (start ? dayTime(entry.finished_at, start) : time(entry.finished_at)) : "—"),
        h("dt", null, "Duration"), h("dd", null, took === null ? "—" : duration(took))),
      section("Input", entry.input),
      section("Output", entry.output),
      entry.error ? section("Error", entry.error) : null);
  }));
}

function section(title, value) {
  if (value === undefined || value === null) return null;
  return h("div", {class: "entry-json"}, h("h4", null, title), jsonBlock(value));
}
