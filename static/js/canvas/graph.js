// The workflow canvas: nodes are <button>s absolutely positioned over one SVG edge layer, both
// inside a "stage" that pans and zooms with a CSS transform set through the CSSOM (the page's
// CSP forbids style attributes). Layout comes from layout.js with fixed node sizes, so a draw
// builds everything off-DOM and measures nothing per node.
//
//   const graph = createGraph(container, {onSelect(stepId) {}, readOnly});
//   graph.draw({trigger, steps}) → ms; graph.setIssues(issues); graph.setOverlay(overlay|null);
//   graph.setCounts(counts|null); graph.select(id); graph.fit(); graph.destroy(); lastRenderMs

import {h, s} from "../dom.js";
import {NODE_H, NODE_W, layout} from "./layout.js";

const MIN_ZOOM = 0.1;
const MAX_ZOOM = 2;
let instances = 0;

export function createGraph(container, {onSelect = () => {}, readOnly = false} = {}) {
  const uid = `g${++instances}`;
  const view = {x: 0, y: 0, k: 1, placed: false};
  let current = null;          // the last layout
  let buttons = new Map();     // id → node button
  let edgeEls = [];            // [{edge, path, text}]
  let selected = null;
  let issues = [];
  let overlay = null;
  let counts = null;

  const stage = h("div", {class: "graph-stage"});
  const viewport = h("div", {class: "graph-viewport", tabindex: "-1"}, stage);
  const zoomText = h("span", {class: "graph-zoom muted", "aria-live": "polite"}, "100%");
  const toolbar = h("div", {class: "graph-toolbar", role: "toolbar", "aria-label": "Canvas view"},
    h("button", {type: "button", "aria-label": "Zoom in", title: "Zoom in (+)",
                 on: {click: () => zoomBy(1.25)}}, "+"),
    h("button", {type: "button", "aria-label": "Zoom out", title: "Zoom out (−)",
                 on: {click: () => zoomBy(0.8)}}, "−"),
    h("button", {type: "button", dataset: {action: "fit"}, on: {click: () => fit()}}, "Fit"),
    zoomText);
  const root = h("div", {
    class: ["graph", readOnly && "graph-readonly"], role: "group",
    "aria-label": "Workflow canvas. Arrow keys move between steps, + and − zoom.",
  }, toolbar, viewport);
  container.append(root);

  // ------------------------------------------------------------------ view transform

  function apply() {
    stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.k})`;
    zoomText.textContent = `${Math.round(view.k * 100)}%`;
  }

  function size() {
    return {w: viewport.clientWidth || 800, h: viewport.clientHeight || 600};
  }

  function zoomAt(k, px, py) {
    const next = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, k));
    view.x = px - (px - view.x) * (next / view.k);
    view.y = py - (py - view.y) * (next / view.k);
    view.k = next;
    apply();
  }

  function zoomBy(factor) {
    const {w, h: hh} = size();
    zoomAt(view.k * factor, w / 2, hh / 2);
  }

  function fit() {
    if (!current) return;
    const {w, h: hh} = size();
    const k = Math.min(1, Math.max(MIN_ZOOM, Math.min(w / current.width, hh / current.height)));
    view.k = k;
    view.x = (w - current.width * k) / 2;
    view.y = Math.max(0, (hh - current.height * k) / 2);
    apply();
  }

  /** First view of a graph: readable size, trigger at the top, centred when it fits. */
  function initialView(vw, vh) {
    const k = Math.min(1, Math.max(0.6, Math.min(vw / current.width, vh / current.height)));
    view.k = k;
    if (current.width * k <= vw) view.x = (vw - current.width * k) / 2;
    else view.x = vw / 2 - (current.nodes.get("trigger").x + NODE_W / 2) * k;
    view.y = 0;
    view.placed = true;
    apply();
  }

  function ensureVisible(id) {
    const node = current && current.nodes.get(id);
    if (!node) return;
    const {w, h: hh} = size();
    const left = view.x + node.x * view.k;
    const top = view.y + node.y * view.k;
    const right = left + NODE_W * view.k;
    const bottom = top + NODE_H * view.k;
    if (left >= 0 && top >= 0 && right <= w && bottom <= hh) return;
    view.x = w / 2 - (node.x + NODE_W / 2) * view.k;
    view.y = hh / 2 - (node.y + NODE_H / 2) * view.k;
    apply();
  }

  // ------------------------------------------------------------------ pointer and keys

  let drag = null;
  viewport.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || event.target.closest("button")) return;
    drag = {x: event.clientX - view.x, y: event.clientY - view.y, id: event.pointerId};
    viewport.setPointerCapture(event.pointerId);
    viewport.classList.add("panning");
  });
  viewport.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    view.x = event.clientX - drag.x;
    view.y = event.clientY - drag.y;
    apply();
  });
  const endDrag = () => { drag = null; viewport.classList.remove("panning"); };
  viewport.addEventListener("pointerup", endDrag);
  viewport.addEventListener("pointercancel", endDrag);
  viewport.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = viewport.getBoundingClientRect();
    const factor = Math.exp(-event.deltaY * (event.ctrlKey ? 0.01 : 0.002));
    zoomAt(view.k * factor, event.clientX - rect.left, event.clientY - rect.top);
  }, {passive: false});

  root.addEventListener("keydown", (event) => {
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "+" || event.key === "=") { zoomBy(1.25); event.preventDefault(); return; }
    if (event.key === "-" || event.key === "_") { zoomBy(0.8); event.preventDefault(); return; }
    const move = {ArrowDown: "down", ArrowUp: "up", ArrowLeft: "left", ArrowRight: "right"}[event.key];
    if (!move || !current || !event.target.closest(".graph-node")) return;
    event.preventDefault();
    const target = neighbour(event.target.closest(".graph-node").dataset.stepId, move);
    if (target) choose(target, true);
  });

  /** The node an arrow key leads to: along tree edges vertically, along the level sideways. */
  function neighbour(id, move) {
    const node = current.nodes.get(id);
    if (!node) return null;
    if (move === "down") {
      if (node.children.length) return node.children[0].id;
      const out = current.edges.find((e) => e.from === id);
      return out ? out.to : null;
    }
    if (move === "up") return node.parent;
    const level = [...current.nodes.values()].filter((n) => n.depth === node.depth)
      .sort((a, b) => a.x - b.x);
    const i = level.indexOf(node) + (move === "right" ? 1 : -1);
    return level[i] ? level[i].id : null;
  }

  function choose(id, focus) {
    select(id);
    if (focus) {
      ensureVisible(id);
      const button = buttons.get(id);
      if (button) button.focus({preventScroll: true});
    }
    onSelect(id);
  }

  // ------------------------------------------------------------------ drawing

  function draw(definition) {
    const t0 = performance.now();
    const first = !view.placed;
    const {w: vw, h: vh} = first ? size() : {w: 0, h: 0};   // read before any DOM write
    current = layout(definition || {});
    const trigger = (definition && definition.trigger) || {};

    const svg = s("svg", {class: "graph-edges", width: current.width, height: current.height,
                          "aria-hidden": "true", focusable: "false"},
      s("defs", null,
        marker(`${uid}-arrow`, "arrow"), marker(`${uid}-arrow-taken`, "arrow arrow-taken")));
    edgeEls = [];
    for (const edge of current.edges) {
      const taken = `url(#${uid}-arrow)`;
      const path = s("path", {d: edge.path, class: ["edge", `edge-${edge.kind}`],
                              "marker-end": taken, dataset: {from: edge.from, to: edge.to}});
      const text = s("text", {x: edge.labelAt.x, y: edge.labelAt.y, class: "edge-label",
                              "text-anchor": edge.kind === "cross" ? "middle" : "start"},
                     edge.label || "");
      svg.append(path, text);
      edgeEls.push({edge, path, text});
    }

    const layer = h("div", {class: "graph-nodes"});
    buttons = new Map();
    for (const id of current.order) {
      const node = current.nodes.get(id);
      const button = nodeButton(node, trigger);
      buttons.set(id, button);
      layer.append(button);
    }
    stage.style.width = `${current.width}px`;
    stage.style.height = `${current.height}px`;
    stage.replaceChildren(svg, layer);
    if (selected && !buttons.has(selected)) selected = null;
    decorate();
    if (first) initialView(vw, vh);
    else apply();
    graph.lastRenderMs = performance.now() - t0;
    root.dataset.renderMs = graph.lastRenderMs.toFixed(1);
    return graph.lastRenderMs;
  }

  function marker(id, cls) {
    return s("marker", {id, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "9",
                        markerHeight: "9", markerUnits: "userSpaceOnUse", orient: "auto-start-reverse", class: cls},
      s("path", {d: "M0 0L10 5L0 10z"}));
  }

  function nodeButton(node, trigger) {
    const isTrigger = node.id === "trigger";
    const step = node.step || {};
    const type = isTrigger ? `trigger: ${trigger.type || "?"}` : step.type;
    const title = isTrigger ? triggerSummary(trigger) : (step.name || step.id);
    const button = h("button", {
      type: "button", class: ["graph-node", isTrigger && "graph-trigger",
                              !node.reachable && "unreachable"],
      dataset: {stepId: node.id}, tabindex: "-1",
      "aria-describedby": `${uid}-d-${cssId(node.id)}`,
      on: {click: () => choose(node.id, false)},
    },
    h("span", {class: "node-type"}, type),
    h("span", {class: "node-name"}, title),
    h("span", {class: "node-badges"}),
    h("span", {class: "node-label"}),
    h("span", {class: "visually-hidden node-desc", id: `${uid}-d-${cssId(node.id)}`}));
    button.style.left = `${node.x}px`;
    button.style.top = `${node.y}px`;
    return button;
  }

  // Node decorations (issues, overlay, counts, selection) are re-applied after every draw,
  // so each setter only stores its input and calls this.
  function decorate() {
    const byStep = new Map();
    for (const issue of issues) {
      const id = issue.step_id && buttons.has(issue.step_id) ? issue.step_id : "trigger";
      if (!byStep.has(id)) byStep.set(id, []);
      byStep.get(id).push(issue);
    }
    let tabbable = selected && buttons.has(selected) ? selected : "trigger";
    for (const [id, button] of buttons) {
      const node = current.nodes.get(id);
      const list = byStep.get(id) || [];
      const errors = list.filter((i) => i.severity === "error").length;
      const warnings = list.length - errors;
      const state = overlay && overlay.nodes && overlay.nodes[id];
      const count = counts && counts[id];
      button.classList.toggle("has-error", errors > 0);
      button.classList.toggle("has-warning", !errors && warnings > 0);
      button.className = button.className.replace(/\bstate-\S+/g, "").trim();
      if (state && state.state) button.classList.add(`state-${state.state}`);
      button.setAttribute("aria-pressed", String(id === selected));
      button.tabIndex = id === tabbable ? 0 : -1;
      button.title = list.map((i) => `${i.severity}: ${i.message}`).join("\n");

      const badges = button.querySelector(".node-badges");
      badges.replaceChildren();
      if (errors || warnings) {
        badges.append(h("span", {class: errors ? "badge-error" : "badge-warning"},
                        errors ? `! ${errors}` : `⚠ ${warnings}`));
      }
      if (count) {
        badges.append(h("span", {class: "badge-count", title: "runs that entered this step"},
                        `${count.entered || 0} in`));
        if (count.waiting) badges.append(h("span", {class: "badge-wait"}, `${count.waiting} waiting`));
      }
      button.querySelector(".node-label").textContent = state && state.label ? state.label : "";

      const parts = [];
      if (id === "trigger") parts.push(`Trigger, ${button.querySelector(".node-name").textContent}`);
      else {
        const step = node.step;
        parts.push(`Step ${step.id}, ${step.type}${step.name ? `: ${step.name}` : ""}`);
      }
      if (errors) parts.push(`${errors} error${errors > 1 ? "s" : ""}`);
      if (warnings) parts.push(`${warnings} warning${warnings > 1 ? "s" : ""}`);
      if (state && state.state) parts.push(state.state);
      if (count) parts.push(`${count.entered || 0} entered`);
      if (count && count.waiting) parts.push(`${count.waiting} waiting`);
      if (!node.reachable) parts.push("not reachable from the trigger");
      button.setAttribute("aria-label", parts.join(", "));
      button.querySelector(".node-desc").textContent =
        [...list.map((i) => `${i.severity}: ${i.message}`), state && state.label].filter(Boolean).join(". ");
    }

    const taken = new Set(((overlay && overlay.edges) || []).map(([a, b]) => `${a}\u0000${b}`));
    if (overlay && overlay.nodes && current.order[1] && overlay.nodes[current.order[1]]) {
      taken.add(`trigger\u0000${current.order[1]}`);
    }
    root.classList.toggle("has-overlay", !!overlay);
    for (const {edge, path, text} of edgeEls) {
      const isTaken = taken.has(`${edge.from}\u0000${edge.to}`);
      path.classList.toggle("taken", isTaken);
      path.setAttribute("marker-end", `url(#${uid}-${isTaken ? "arrow-taken" : "arrow"})`);
      const branchCounts = counts && counts[edge.from] && counts[edge.from].branches;
      const n = branchCounts ? branchCounts[edge.label || "default"] : undefined;
      text.textContent = [edge.label, n !== undefined ? `(${n})` : ""].filter(Boolean).join(" ");
    }
  }

  function select(id) {
    selected = id && buttons.has(id) ? id : null;
    if (current) decorate();
  }

  const graph = {
    lastRenderMs: 0,
    element: root,
    draw,
    setIssues(list) { issues = Array.isArray(list) ? list : []; if (current) decorate(); },
    setOverlay(value) { overlay = value || null; if (current) decorate(); },
    setCounts(value) { counts = value || null; if (current) decorate(); },
    select,
    fit,
    destroy() { root.remove(); current = null; buttons = new Map(); edgeEls = []; },
    get selected() { return selected; },
  };
  return graph;
}

function triggerSummary(trigger) {
  if (trigger.type === "event") return trigger.event || "any event";
  if (trigger.type === "schedule") return `${trigger.cron || ""} ${trigger.timezone || ""}`.trim();
  if (trigger.type === "webhook") return trigger.url || "webhook";
  return trigger.type || "trigger";
}

// Step ids are [A-Za-z0-9_-], already safe in element ids; this guards anything else.
function cssId(id) {
  return String(id).replace(/[^A-Za-z0-9_-]/g, "_");
}
