// The Versions tab: every version (newest first), one drawn read-only on a graph
// (#/workflows/:id/versions/:n), and a diff of any two.

import {api} from "../api.js";
import {createGraph} from "../canvas/graph.js";
import {h, mount, time} from "../dom.js";
import {describeError, table} from "../ui.js";
import {diffVersions} from "./diff.js";

/** env = {workflow(), ctx, version (number or null)} → {update, cleanup} */
export function renderVersionsTab(container, env) {
  const id = env.workflow().id;
  const base = `/v1/workflows/${encodeURIComponent(id)}/versions`;
  const viewer = h("section", {class: "version-view"});
  const listBox = h("section", {class: "version-list"});
  const diffBox = h("section", {class: "version-diff", "aria-live": "polite"});
  container.append(viewer, listBox, diffBox);
  let graph = null;

  async function showVersion(n) {
    try {
      const version = await api.get(`${base}/${n}`);
      mount(viewer,
        h("h2", null, `Version ${n} (read-only)`, " ", h("a", {href: `#/workflows/${encodeURIComponent(id)}?tab=versions`}, "close")),
        h("p", {class: "muted"}, "Saved ", time(version.created_at), `. ${(version.issues || []).length} issue(s).`));
      const box = h("div", {class: "canvas-graph"});
      viewer.append(box);
      graph = createGraph(box, {readOnly: true});
      graph.draw(version);
      graph.setIssues(version.issues || []);
    } catch (error) {
      mount(viewer, h("p", {class: "error", role: "alert"}, describeError(error)));
    }
  }

  async function update() {
    let versions;
    try {
      versions = (await api.get(base)).data;
    } catch (error) {
      mount(listBox, h("p", {class: "error", role: "alert"}, describeError(error)));
      return;
    }
    const picked = new Set(versions.slice(0, 2).map((v) => v.version));
    const compare = h("button", {type: "button", dataset: {action: "compare"}, on: {click: () => diff([...picked])}},
                      "Compare selected");
    mount(listBox, h("h2", null, "Versions"),
      table([
        {title: "Compare", cell: (v) => {
          const box = h("input", {type: "checkbox", checked: picked.has(v.version),
                                  "aria-label": `Compare version ${v.version}`});
          box.addEventListener("change", () => {
            if (box.checked) picked.add(v.version); else picked.delete(v.version);
          });
          return box;
        }},
        {title: "Version", cell: (v) => h("a", {href: `#/workflows/${encodeURIComponent(id)}/versions/${v.version}`},
                                         `v${v.version}`, v.version === env.workflow().version ? " (current)" : "")},
        {title: "Saved", cell: (v) => time(v.created_at)},
        {title: "Issues", cell: (v) => String((v.issues || []).length)},
      ], versions, {caption: "Versions of this workflow"}),
      h("div", {class: "actions"}, compare));
  }

  async function diff(numbers) {
    if (numbers.length !== 2) {
      mount(diffBox, h("p", {class: "error", role: "alert"}, "Select exactly two versions."));
      return;
    }
    const [a, b] = numbers.sort((x, y) => x - y);
    try {
      const [older, newer] = await Promise.all([api.get(`${base}/${a}`), api.get(`${base}/${b}`)]);
      const d = diffVersions(older, newer);
      const line = (label, items) => h("li", null, h("strong", null, `${label}: `),
        items.length ? items.join(", ") : h("span", {class: "muted"}, "none"));
      mount(diffBox, h("h2", null, `Changes from v${a} to v${b}`),
        h("ul", {class: "diff"},
          line("Steps added", d.added), line("Steps removed", d.removed),
          h("li", null, h("strong", null, "Steps changed: "),
            d.changed.length ? h("ul", null, d.changed.map((c) =>
              h("li", null, h("code", null, c.id), ` (${c.fields.join(", ")})`)))
              : h("span", {class: "muted"}, "none")),
          line("Trigger", [d.trigger ? "changed" : "unchanged"]),
          line("Settings", [d.settings ? "changed" : "unchanged"]),
          d.reordered ? h("li", null, "Step order changed.") : null));
    } catch (error) {
      mount(diffBox, h("p", {class: "error", role: "alert"}, describeError(error)));
    }
  }

  if (env.version) showVersion(env.version);
  update();
  return {update, cleanup() { if (graph) graph.destroy(); }};
}
