// Sign-in: trade an API key for the session cookie (POST /v1/session). The key lives only in
// the password field and in this handler's local variable for the length of one request: it is
// never written to storage, a global or the URL, and the field is cleared at once.

import {currentSession, signIn} from "../api.js";
import {h, mount} from "../dom.js";
import {describeError, field} from "../ui.js";

/** Only a hash inside the page may be a destination (never another site). */
function destination(next) {
  return typeof next === "string" && next.startsWith("#/") && !next.startsWith("#/signin")
    ? next : "#/workflows";
}

export async function render(root, ctx) {
  const input = h("input", {type: "password", name: "key", autocomplete: "off", required: true,
                            spellcheck: "false", "aria-describedby": "signin-error"});
  const error = h("p", {id: "signin-error", class: "error", role: "alert"});
  const submit = h("button", {type: "submit", class: "primary"}, "Sign in");
  const session = currentSession();

  const form = h("form", {class: "signin", "aria-labelledby": "signin-title", on: {submit: onSubmit}},
    h("h1", {id: "signin-title"}, "Sign in to flowd"),
    session ? h("p", {class: "muted"}, `Signed in to ${session.project} as ${session.role}; ` +
                                       "another key switches the session.") : null,
    field("API key", input, h("span", null, "Keys come from ", h("code", null, "admin.key"),
                              " beside the database, or from ",
                              h("code", null, "python -m flowd keys create --role editor"), ".")),
    error,
    h("div", {class: "actions"}, submit));
  mount(root, form);
  input.focus();

  async function onSubmit(event) {
    event.preventDefault();
    const key = input.value.trim();
    input.value = "";
    error.textContent = "";
    if (!key) {
      error.textContent = "Enter an API key.";
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await signIn(key);
    } catch (problem) {
      error.textContent = problem.status === 401
        ? "That key was not accepted: it is unknown or was revoked."
        : describeError(problem);
      submit.disabled = false;
      input.focus();
      return;
    }
    ctx.navigate(destination(ctx.query.next));
  }
}
