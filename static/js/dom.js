// Building DOM nodes. Every value is inserted as text or as an attribute value, never parsed
// as HTML: nothing in the builder assigns innerHTML, so a workflow named
// `<img src=x onerror=alert(1)>` shows as those characters.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") {
      for (const [type, handler] of Object.entries(value)) el.addEventListener(type, handler);
    } else if (name === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "style") {
      // The page's CSP forbids style attributes; the CSSOM is allowed.
      Object.assign(el.style, value);
    } else if (name === "value" || name === "checked" || name === "selected") {
      el[name] = value;
    } else if (name.startsWith("on")) {
      throw new Error(`event handlers go in {on: {...}}, not as attribute ${name}`);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("button", {class: "primary", on: {click}}, "Save"). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  return append(el, children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, props);
  return append(el, children);
}

/** Replace everything inside `el` with `children`. */
export function mount(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A <time> with the local rendering of an RFC 3339 string (the raw value in its title). */
export function time(value) {
  if (!value) return h("span", {class: "muted"}, "—");
  const date = new Date(value);
  return h("time", {datetime: value, title: value}, date.toLocaleString());
}

/** "3 h ago"-style text for lists. */
export function ago(value) {
  if (!value) return "—";
  const seconds = (Date.now() - new Date(value).getTime()) / 1000;
  const units = [[86400, "d"], [3600, "h"], [60, "min"]];
  for (const [size, unit] of units) {
    if (Math.abs(seconds) >= size) return `${Math.round(seconds / size)} ${unit} ago`;
  }
  return "just now";
}

/** A status badge: the class carries the colour, the text the meaning. */
export function badge(status) {
  return h("span", {class: ["badge", `status-${status}`]}, status);
}

/** Pretty-printed JSON in a <pre>, as text. */
export function jsonBlock(value) {
  return h("pre", {class: "json"}, JSON.stringify(value, null, 2));
}
