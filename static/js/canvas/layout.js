// The canvas' layout, computed in the page from a definition alone: a top-down layered tidy
// tree. Subtree widths are summed bottom-up, parents are centred over their children top-down,
// so two branches never share horizontal space and never overlap (builder-notes item 1).
//
// The definition is a graph, not a tree: a step reachable from several parents is placed once,
// under the first parent a depth-first walk from the trigger reaches it by; the other parents
// get "cross" edges. An edge to a step placed at the same depth or above (a loop body leading
// back to its loop, a wait that cycles) is a "back" edge, routed around the side. Steps nothing
// reaches are laid out as extra trees to the right, so they are still visible (and flagged).
//
// Every node has the same fixed size, so nothing is measured in the DOM.

export const NODE_W = 190;
export const NODE_H = 58;
export const GAP_X = 36;
export const GAP_Y = 70;
const MARGIN = 30;
const LANE = 14;   // spacing between side lanes of back edges

// The server stores `next` maps with sorted keys; branches are drawn in their meaning's order
// instead (yes before no, a split's branches and an ai decision's options in their config's
// order, default and error last).
const LABEL_ORDER = ["yes", "no", "each", "done", "approved", "rejected", "expired", "completed",
                     "failed", "event", "timeout", "suppressed", "unavailable", "default", "error"];

function orderedLabels(step) {
  const config = step.config || {};
  const named = [...(Array.isArray(config.branches) ? config.branches : []),
                 ...(Array.isArray(config.random) ? config.random : [])]
    .map((b) => b && b.name)
    .concat(Array.isArray(config.options) ? config.options : [])
    .filter((n) => typeof n === "string");
  const rank = (label) => {
    const i = named.indexOf(label);
    if (i >= 0) return i;
    const j = LABEL_ORDER.indexOf(label);
    return j >= 0 ? named.length + j : named.length + LABEL_ORDER.indexOf("default") - 0.5;
  };
  return Object.keys(step.next).sort((a, b) => rank(a) - rank(b));
}

/** The outgoing edges of each step, by the contract's `next` rules: [{to, label}]. */
export function successors(steps) {
  const ids = new Set(steps.map((s) => s.id));
  const out = new Map();
  steps.forEach((step, i) => {
    const list = [];
    const following = i + 1 < steps.length ? steps[i + 1].id : null;
    if (!("next" in step)) {
      if (following) list.push({to: following, label: null});
    } else if (typeof step.next === "string") {
      list.push({to: step.next, label: null});
    } else if (step.next && typeof step.next === "object") {
      for (const label of orderedLabels(step)) {
        const to = step.next[label];
        if (typeof to === "string") list.push({to, label});
      }
    }
    // An edge to an unknown id is the server's issue to report; there is nothing to draw.
    out.set(step.id, list.filter((e) => ids.has(e.to)));
  });
  return out;
}

/**
 * Lays out {trigger, steps}. Returns {nodes: Map id → node, order: [ids, preorder], edges,
 * width, height}; node = {id, step (null for the trigger), depth, x, y, parent, children,
 * reachable}; edge = {from, to, label, kind: "tree" | "cross" | "back", path, labelAt}.
 */
export function layout(definition) {
  const steps = (definition && definition.steps) || [];
  const next = successors(steps);
  const byId = new Map(steps.map((s) => [s.id, s]));
  const nodes = new Map();
  const edges = [];
  const order = [];

  const make = (id, step, depth, parent, reachable) => {
    const node = {id, step, depth, x: 0, y: 0, parent, children: [], reachable, width: 0};
    nodes.set(id, node);
    order.push(id);
    return node;
  };

  // Depth-first from each root, iteratively (a long chain must not exhaust the call stack).
  // Children are taken in `next` order, so a condition's `yes` lies left of its `no`.
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const frame = stack[stack.length - 1];
      const [node, index] = frame;
      const out = node.id === "trigger"
        ? (steps.length ? [{to: steps[0].id, label: null}] : [])
        : next.get(node.id) || [];
      if (index >= out.length) { stack.pop(); continue; }
      frame[1] = index + 1;
      const {to, label} = out[index];
      const placed = nodes.get(to);
      if (!placed) {
        const child = make(to, byId.get(to), node.depth + 1, node.id, root.reachable);
        node.children.push(child);
        edges.push({from: node.id, to, label, kind: "tree"});
        stack.push([child, 0]);
      } else {
        edges.push({from: node.id, to, label, kind: placed.depth <= node.depth ? "back" : "cross"});
      }
    }
  };

  const roots = [make("trigger", null, 0, null, true)];
  walk(roots[0]);
  for (const step of steps) {
    if (nodes.has(step.id)) continue;
    const root = make(step.id, step, 1, null, false);
    roots.push(root);
    walk(root);
  }

  // Bottom-up widths: reverse preorder visits children before parents.
  for (let i = order.length - 1; i >= 0; i--) {
    const node = nodes.get(order[i]);
    const sum = node.children.reduce((acc, c) => acc + c.width, 0) +
                GAP_X * Math.max(0, node.children.length - 1);
    node.width = Math.max(NODE_W, sum);
  }
  // Top-down positions: each node centred over the span its subtree owns.
  let left = MARGIN;
  for (const root of roots) {
    root.left = left;
    left += root.width + GAP_X * 2;
  }
  for (const id of order) {
    const node = nodes.get(id);
    node.x = node.left + (node.width - NODE_W) / 2;
    node.y = MARGIN + node.depth * (NODE_H + GAP_Y);
    const sum = node.children.reduce((acc, c) => acc + c.width, 0) +
                GAP_X * Math.max(0, node.children.length - 1);
    let childLeft = node.left + (node.width - sum) / 2;
    for (const child of node.children) {
      child.left = childLeft;
      childLeft += child.width + GAP_X;
    }
  }

  let width = left - GAP_X * 2 + MARGIN;
  let maxDepth = 0;
  // The rightmost node edge per depth, for routing back edges around everything between.
  const rightAt = [];
  for (const node of nodes.values()) {
    maxDepth = Math.max(maxDepth, node.depth);
    rightAt[node.depth] = Math.max(rightAt[node.depth] || 0, node.x + NODE_W);
  }
  let lanes = 0;
  for (const edge of edges) route(edge, nodes.get(edge.from), nodes.get(edge.to));

  function route(edge, a, b) {
    const ax = a.x + NODE_W / 2;
    const bx = b.x + NODE_W / 2;
    if (edge.kind === "tree") {
      // Elbow: down from the parent, across in the gap between levels, down into the child.
      const mid = a.y + NODE_H + GAP_Y / 2;
      edge.path = `M${ax} ${a.y + NODE_H}V${mid}H${bx}V${b.y}`;
      edge.labelAt = {x: bx + 6, y: mid + 16};
    } else if (edge.kind === "cross") {
      // Across in the gap under the source, then down a lane beside the target into its side.
      const mid = a.y + NODE_H + GAP_Y / 2;
      const fromLeft = ax < bx;
      const laneX = fromLeft ? b.x - GAP_X / 2 : b.x + NODE_W + GAP_X / 2;
      const endX = fromLeft ? b.x : b.x + NODE_W;
      const midY = b.y + NODE_H / 2;
      edge.path = `M${ax} ${a.y + NODE_H}V${mid}H${laneX}V${midY}H${endX}`;
      edge.labelAt = {x: (ax + laneX) / 2, y: mid - 6};
    } else {
      // Back edge: out of the source's right side to a lane right of every node on the levels
      // in between, up, and into the target's right side — it reads as a loop.
      let lane = 0;
      for (let d = b.depth; d <= a.depth; d++) lane = Math.max(lane, rightAt[d] || 0);
      lanes += 1;
      lane += GAP_X / 2 + lanes * LANE;
      width = Math.max(width, lane + MARGIN);
      const ay = a.y + NODE_H / 2 + 8;
      const by = b.y + NODE_H / 2 - 8;
      edge.path = `M${a.x + NODE_W} ${ay}H${lane}V${by}H${b.x + NODE_W}`;
      edge.labelAt = {x: lane + 4, y: (ay + by) / 2};
    }
  }

  const height = MARGIN * 2 + (maxDepth + 1) * NODE_H + maxDepth * GAP_Y;
  return {nodes, order, edges, width, height};
}
