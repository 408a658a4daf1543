// A form drawn from a JSON Schema the server sends (GET /v1/step-types, /v1/trigger-types), so
// a step type the server adds gets a form with no change to the page.
//
// Strings, numbers, booleans, enums and arrays of strings get their own inputs; anything else
// (conditions, nested objects such as a webhook's `body`, a trigger's `filter`) is a JSON
// textarea, checked as JSON before anything is sent. An empty input means "absent": a draft may
// lack a required value — the server then reports it as an issue on the node.

import {h} from "../dom.js";
import {field} from "../ui.js";

let forms = 0;

/**
 * schemaForm(schema, value, {disabled, skip: [names]}) → {element, read()}.
 * read() returns the object the inputs describe (keys the schema does not list are kept as
 * they were) or throws an Error naming the first field that is not valid.
 */
export function schemaForm(schema, value, {disabled = false, skip = []} = {}) {
  const prefix = `sf${++forms}`;
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const current = value && typeof value === "object" ? value : {};
  const readers = [];
  const element = h("div", {class: "schema-form"});

  for (const [name, prop] of Object.entries(properties)) {
    if (skip.includes(name)) continue;
    const {input, read} = control(prop || {}, current[name], disabled);
    input.id = `${prefix}-${name}`;
    input.name = name;
    const error = h("small", {class: "field-error", id: `${prefix}-${name}-err`, "aria-live": "polite"});
    input.setAttribute("aria-describedby", error.id);
    const label = `${name}${required.has(name) ? " *" : ""}`;
    const hint = [prop.description, kindHint(prop)].filter(Boolean).join(" ");
    const box = field(label, input, hint || null);
    box.append(error);
    element.append(box);
    readers.push({name, read, input, error});
  }

  function read() {
    const out = {};
    for (const [key, v] of Object.entries(current)) {
      if (!(key in properties) || skip.includes(key)) out[key] = v;
    }
    let firstError = null;
    for (const {name, read: get, input, error} of readers) {
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      try {
        const v = get();
        if (v !== undefined) out[name] = v;
      } catch (problem) {
        error.textContent = problem.message;
        input.setAttribute("aria-invalid", "true");
        if (!firstError) firstError = new Error(`${name}: ${problem.message}`);
      }
    }
    if (firstError) throw firstError;
    return out;
  }

  return {element, read};
}

function kindHint(prop) {
  if (isStringArray(prop)) return "One per line.";
  if (!simpleType(prop) && !isStringArray(prop)) return "JSON.";
  return "";
}

function simpleType(prop) {
  if (Array.isArray(prop.enum)) return "enum";
  if (["string", "integer", "number", "boolean"].includes(prop.type)) return prop.type;
  return null;
}

function isStringArray(prop) {
  return prop.type === "array" && prop.items && prop.items.type === "string" && !prop.items.enum;
}

/** One input and how to read it back (undefined = leave the key out). */
function control(prop, value, disabled) {
  const kind = simpleType(prop);
  if (kind === "enum") {
    const select = h("select", {disabled},
      h("option", {value: ""}, "—"),
      prop.enum.map((option) => h("option", {value: JSON.stringify(option)}, String(option))));
    select.value = value === undefined ? "" : JSON.stringify(value);
    if (value !== undefined && select.value === "") {
      // A value the schema does not list: keep it selectable, the server will judge it.
      select.append(h("option", {value: JSON.stringify(value)}, String(value)));
      select.value = JSON.stringify(value);
    }
    return {input: select, read: () => (select.value === "" ? undefined : JSON.parse(select.value))};
  }
  if (kind === "boolean") {
    const select = h("select", {disabled},
      h("option", {value: ""}, "—"), h("option", {value: "true"}, "true"),
      h("option", {value: "false"}, "false"));
    select.value = value === true ? "true" : value === false ? "false" : "";
    return {input: select, read: () => (select.value === "" ? undefined : select.value === "true")};
  }
  if ((kind === "integer" || kind === "number") && (value === undefined || typeof value === "number")) {
    const input = h("input", {type: "number", disabled, step: kind === "integer" ? "1" : "any",
                              value: value === undefined ? "" : String(value)});
    return {input, read: () => {
      if (input.value.trim() === "") return undefined;
      const n = Number(input.value);
      if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) {
        throw new Error(`must be ${kind === "integer" ? "a whole number" : "a number"}`);
      }
      return n;
    }};
  }
  if (kind === "string" && (value === undefined || typeof value === "string")) {
    const long = (prop.maxLength || 0) > 2000;
    const input = long
      ? h("textarea", {disabled, rows: "4", class: "plain"}, value || "")
      : h("input", {type: "text", disabled, value: value || ""});
    return {input, read: () => (input.value === "" ? undefined : input.value)};
  }
  if (isStringArray(prop) && (value === undefined || Array.isArray(value))) {
    const area = h("textarea", {disabled, rows: "3", class: "plain"},
                   (value || []).map(String).join("\n"));
    return {input: area, read: () => {
      const lines = area.value.split("\n").map((l) => l.trim()).filter(Boolean);
      return lines.length ? lines : undefined;
    }};
  }
  // Anything else, or a value of another shape than the schema's (a template in place of a
  // number, say): raw JSON, parsed before sending.
  const area = h("textarea", {disabled, rows: "4", spellcheck: "false"},
                 value === undefined ? "" : JSON.stringify(value, null, 2));
  return {input: area, read: () => {
    if (area.value.trim() === "") return undefined;
    try {
      return JSON.parse(area.value);
    } catch (error) {
      throw new Error(`not valid JSON (${error.message})`);
    }
  }};
}
