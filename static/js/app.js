// The builder's shell: session check, hash routing, one view module per route.
//
// A view module exports `render(root, ctx)`; it may return a cleanup function that runs when
// the page leaves the view (timers, listeners). Routes are hash URLs so that every view has an
// address that reloads to the same place without server-side routing.

import {canEdit, currentSession, restoreSession, signOut} from "./api.js";
import {h, mount} from "./dom.js";
import {showError, toast} from "./ui.js";

const ROUTES = [
  // [pattern, module, section]
  [/^\/signin$/, "./views/signin.js", null],
  [/^\/workflows$/, "./views/workflows.js", "workflows"],
  [/^\/gallery$/, "./views/gallery.js", "workflows"],
  [/^\/workflows\/(?<id>[^/]+)\/runs\/(?<run>[^/]+)$/, "./views/editor.js", "workflows"],
  [/^\/workflows\/(?<id>[^/]+)\/versions\/(?<version>\d+)$/, "./views/editor.js", "workflows"],
  [/^\/workflows\/(?<id>[^/]+)$/, "./views/editor.js", "workflows"],
  [/^\/runs$/, "./views/runs.js", "runs"],
  [/^\/contacts$/, "./views/contacts.js", "contacts"],
  [/^\/contacts\/(?<id>.+)$/, "./views/contact.js", "contacts"],
  [/^\/events$/, "./views/events.js", "events"],
  [/^\/messages$/, "./views/messages.js", "messages"],
  [/^\/messages\/(?<id>[^/]+)$/, "./views/message.js", "messages"],
];

const main = document.getElementById("main");
let cleanup = null;
let renderCount = 0;

/** The hash as {path, params from its pattern, query}. */
function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/workflows";
  const [path, search = ""] = raw.split("?");
  const query = Object.fromEntries(new URLSearchParams(search));
  for (const [pattern, module, section] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      const params = Object.fromEntries(
        Object.entries(match.groups || {}).map(([k, v]) => [k, decodeURIComponent(v)]));
      return {path, params, query, module, section};
    }
  }
  return {path, params: {}, query, module: null, section: null};
}

export function navigate(hash, {replace = false} = {}) {
  const target = hash.startsWith("#") ? hash : `#${hash}`;
  if (location.hash === target) return route();
  if (replace) history.replaceState(null, "", target);
  else location.hash = target;
  if (replace) return route();
  return undefined;
}

function updateChrome(section) {
  const session = currentSession();
  document.getElementById("nav").hidden = !session;
  document.getElementById("sign-out").hidden = !session;
  document.getElementById("who").textContent =
    session ? `${session.project} · ${session.role}` : "";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const current = ++renderCount;
  if (cleanup) {
    try { cleanup(); } catch (error) { console.error(error); }
    cleanup = null;
  }
  const target = parseHash();
  if (!currentSession() && target.path !== "/signin") {
    const back = encodeURIComponent(location.hash || "#/workflows");
    history.replaceState(null, "", `#/signin?next=${back}`);
    return route();
  }
  updateChrome(target.section);
  if (!target.module) {
    mount(main, h("h1", null, "Not found"), h("p", null, "No view at ", h("code", null, target.path), "."));
    return;
  }
  const ctx = {
    params: target.params, query: target.query, session: currentSession(), canEdit: canEdit(),
    navigate, toast, showError,
    // A view that awaits must check this before drawing: the user may have moved on.
    isCurrent: () => current === renderCount,
  };
  try {
    const view = await import(target.module);
    if (current !== renderCount) return;
    main.replaceChildren();
    main.dataset.view = target.module.replace(/^.*\/|\.js$/g, "");
    const result = await view.render(main, ctx);
    if (typeof result === "function") {
      if (current === renderCount) cleanup = result;
      else result();
    }
    main.dataset.ready = String(current);
  } catch (error) {
    if (current === renderCount) {
      mount(main, h("p", {class: "error", role: "alert"}, error.message));
      showError(error);
    }
  }
}

async function start() {
  document.getElementById("sign-out").addEventListener("click", async () => {
    try { await signOut(); } catch (error) { showError(error); }
    navigate("#/signin");
  });
  window.addEventListener("flowd:signed-out", () => {
    if (parseHash().path !== "/signin") navigate("#/signin");
  });
  window.addEventListener("hashchange", route);
  try {
    await restoreSession();
  } catch (error) {
    showError(error);
  }
  await route();
}

start();
