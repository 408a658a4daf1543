// Moving a step up or down its path, expressed with the contract's PATCH operations.
//
// The operations have no "move": a step's place in the flow is its predecessors' `next`, and
// its place in the list matters only for steps without `next`. Moving X up past its
// predecessor P is the same as moving P down past X: `remove_step P` (whatever led to P now
// leads to X) then `add_step P after X` (P takes X's old default path, X leads to P), in one
// batch, so it is one version and one undo entry, and P keeps its id, config and retry.
// Only a plain chain can be reordered this way: both steps on a single path (no branch map)
// and the one moved past having no other predecessor; otherwise the buttons are disabled
// (the JSON tab can still do anything).

import {successors} from "../canvas/layout.js";

function predecessorsOf(steps, id) {
  const out = successors(steps);
  const found = [];
  for (const [from, edges] of out) {
    for (const edge of edges) if (edge.to === id) found.push({from, label: edge.label});
  }
  return found;
}

const linear = (step) => !(step.next && typeof step.next === "object");

function stepWithoutNext(step) {
  const copy = {...step};
  delete copy.next;
  return copy;
}

function swap(steps, first, second) {
  // `first` precedes `second`; the batch moves `first` below `second`.
  return [{op: "remove_step", id: first.id},
          {op: "add_step", step: stepWithoutNext(first), after: second.id}];
}

/** Operations that move step `id` one place up its path, or null (with why) if they can't. */
export function moveUp(steps, id) {
  const step = steps.find((s) => s.id === id);
  const preds = predecessorsOf(steps, id);
  if (!step || preds.length !== 1 || preds[0].label) return {ops: null, why: "its predecessor is not a single plain step"};
  const pred = steps.find((s) => s.id === preds[0].from);
  if (!linear(pred) || !linear(step)) return {ops: null, why: "branching steps can't be reordered here; use the JSON tab"};
  return {ops: swap(steps, pred, step), why: null};
}

/** Operations that move step `id` one place down its path, or null (with why). */
export function moveDown(steps, id) {
  const step = steps.find((s) => s.id === id);
  if (!step || !linear(step)) return {ops: null, why: "branching steps can't be reordered here; use the JSON tab"};
  const out = successors(steps).get(id) || [];
  if (out.length !== 1) return {ops: null, why: "it is the last step of its path"};
  const next = steps.find((s) => s.id === out[0].to);
  if (!linear(next) || predecessorsOf(steps, next.id).length !== 1) {
    return {ops: null, why: "the next step branches or has other predecessors"};
  }
  return {ops: swap(steps, step, next), why: null};
}
