// What changed between two versions of a definition: steps added, removed and changed (same id,
// different JSON — with the fields that differ), and whether trigger or settings changed.

const same = (a, b) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

// Key order carries no meaning in JSON objects: compare with sorted keys.
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
  }
  return value;
}

export function diffVersions(older, newer) {
  const before = new Map((older.steps || []).map((s) => [s.id, s]));
  const after = new Map((newer.steps || []).map((s) => [s.id, s]));
  const added = [...after.keys()].filter((id) => !before.has(id));
  const removed = [...before.keys()].filter((id) => !after.has(id));
  const changed = [];
  for (const [id, step] of after) {
    const old = before.get(id);
    if (!old || same(old, step)) continue;
    const fields = [...new Set([...Object.keys(old), ...Object.keys(step)])]
      .filter((key) => !same(old[key], step[key]));
    changed.push({id, fields});
  }
  const order = (older.steps || []).map((s) => s.id).filter((id) => after.has(id));
  const newOrder = (newer.steps || []).map((s) => s.id).filter((id) => before.has(id));
  return {
    added, removed, changed,
    reordered: !same(order, newOrder),
    trigger: !same(older.trigger, newer.trigger),
    settings: !same(older.settings, newer.settings),
  };
}
