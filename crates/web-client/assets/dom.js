// Small DOM helpers. Every piece of text that came from the server or from a person
// goes into the page as a text node (textContent, append of a string): nothing here
// ever parses a string as HTML, and the page's Trusted Types policy would refuse it.

/** The element with this id. */
export const byId = (id) => document.getElementById(id);

/**
 * Makes an element. `props`: `class`, `text` (its textContent), `on<event>` handlers,
 * `dataset` (an object) and any other attribute. Children are nodes or strings (strings
 * become text nodes).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) element.append(child);
  }
  return element;
}

/** Shows an API error in an alert region: its message, then one line per field error. */
export function showError(region, error) {
  if (!error) {
    region.hidden = true;
    region.replaceChildren();
    return;
  }
  const message = h("p", { text: error.message });
  if (error.fieldErrors?.length) {
    region.replaceChildren(message, h("ul", {}, error.fieldErrors.map((e) => h("li", { text: e }))));
  } else {
    region.replaceChildren(message);
  }
  region.hidden = false;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

/** "14:05" today, "Nov 24" before. */
export function shortTime(iso) {
  const date = new Date(iso);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? timeFormat.format(date)
    : dateFormat.format(date);
}

/** "14:05", and the full date for a tooltip. */
export function messageTime(iso) {
  const date = new Date(iso);
  return { short: timeFormat.format(date), full: fullFormat.format(date) };
}

let toastTimer = 0;

/** A short message at the bottom of the screen, read out by screen readers. */
export function toast(text) {
  const element = byId("toast");
  element.textContent = text;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    element.hidden = true;
  }, 5000);
}

/** A random UUID (v4) also outside secure contexts, where crypto.randomUUID is missing. */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
