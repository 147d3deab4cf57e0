// Small DOM helpers. Everything the server sends is put in the page as text (never as HTML),
// so a record, a file name or a log line cannot run script here.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let fieldCount = 0;

// A labelled control: label text, then the input (its id tied to the label).
export function field(label, input, hint) {
  const id = input.id || `f${++fieldCount}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("small", {}, hint) : null);
}

export function button(text, onclick, attrs = {}) {
  return h("button", { type: "button", onclick, ...attrs }, text);
}

export function errorBox(err) {
  const text = err && err.message ? err.message : String(err);
  const field = err && err.details && err.details.field;
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, "Error: "), text, field ? ` (field: ${field})` : "");
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

export function show(target, ...children) {
  target.replaceChildren();
  append(target, children);
}

export function cell(value) {
  if (value === null || value === undefined) return h("span", { class: "null" }, "null");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// A table of rows (plain objects) under the given columns.
export function grid(columns, rows, { caption, actions } = {}) {
  return h("div", { class: "scroll" }, h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)),
      actions ? h("th", { scope: "col", class: "actions" }, h("span", { class: "sr" }, "Actions")) : null)),
    h("tbody", {}, rows.map((row) => h("tr", {},
      columns.map((c) => h("td", {}, cell(row[c]))),
      actions ? h("td", { class: "actions" }, actions(row)) : null)))));
}

export function toast(text) {
  const el = h("div", { class: "toast", role: "status" }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), 3000);
}

// Requests that may overlap (a search typed letter by letter, a sort field then its direction,
// a page asked for while the last one loads) answer in any order: each takes a number from
// `next()`, and its answer is shown only if `isLatest(number)` (no later request began).
export function sequence() {
  let latest = 0;
  return { next: () => ++latest, isLatest: (number) => number === latest };
}
