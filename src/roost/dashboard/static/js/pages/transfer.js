// A table's records out and in. Export: every record matching the grid's current filters,
// streamed by database.export (a page at a time, in primary-key order) into a CSV or JSON file.
// Import: a CSV (a header row of column names) or JSON (an array of objects) file chosen here,
// checked in the page first (each error names its row and field), then created in batches
// with a progress bar.
import { stream, call } from "../api.js";
import { button, errorBox, field, h, show, toast } from "../ui.js";
import { editable, parse } from "./tables.js";

const BATCH = 500;
const MAX_FILE = 50 * 1024 * 1024;
const SHOWN_ERRORS = 20;

export function render(target, { table, info, canWrite, state, done }) {
  target.append(exportCard(table, info, state));
  if (canWrite) target.append(importCard(table, info, state, done));
}

// -- export -------------------------------------------------------------------------------

function exportCard(table, info, state) {
  const status = h("div", { "aria-live": "polite" });
  const names = info.columns.map((c) => c.name);
  async function run(format) {
    show(status, h("p", { role: "status" }, "Exporting…"));
    const rows = [];
    try {
      let count = 0;
      for await (const row of stream("database.export", { table, filters: state.filters, page_size: 500, ...state.access })) {
        rows.push(row);
        if (++count % 1000 === 0) show(status, h("p", { role: "status" }, `Exporting… ${count} records`));
      }
    } catch (err) { show(status, errorBox(err)); return; }
    const text = format === "csv" ? toCsv(names, rows) : JSON.stringify(rows, null, 1);
    const blob = new Blob([text], { type: format === "csv" ? "text/csv" : "application/json" });
    const link = h("a", { href: URL.createObjectURL(blob), download: `${table}.${format}`, class: "download" },
      `Download ${table}.${format}`);
    show(status, h("p", { role: "status" }, `${rows.length} records exported${state.filters.length ? " (the current filters)" : ""}. `, link));
    link.click();
  }
  return h("div", { class: "card inline", role: "group", "aria-label": "Export" },
    h("p", {}, state.filters.length ? "Export the records that match the current filters, in primary-key order:"
      : "Export every record, in primary-key order:"),
    button("Export CSV", () => run("csv")), button("Export JSON", () => run("json")), status);
}

// A text a spreadsheet would run as a formula (= + - @, a tab or a carriage return first) is
// exported after a quote, as OWASP advises; importing takes one quote off again (a text that
// began with quotes before such a character gains one more on export, so nothing is lost).
const FORMULA = /^'*[=+\-@\t\r]/;

function csvValue(value) {
  if (value === null || value === undefined) return "";
  let text = typeof value === "object" ? JSON.stringify(value) : String(value);
  if (typeof value === "string" && FORMULA.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) || /^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function toCsv(names, rows) {
  const lines = [names.map(csvValue).join(",")];
  for (const row of rows) lines.push(names.map((n) => csvValue(row[n])).join(","));
  return lines.join("\r\n") + "\r\n";
}

// -- import -------------------------------------------------------------------------------

// RFC 4180: fields split by commas, quoted fields may hold commas, quotes ("") and newlines.
export function parseCsv(text) {
  const rows = [];
  let row = [], value = "", quoted = false, i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // a byte-order mark
  for (; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { value += '"'; i++; }
      else if (ch === '"') quoted = false;
      else value += ch;
    } else if (ch === '"' && value === "") quoted = true;
    else if (ch === ",") { row.push(value); value = ""; }
    else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(value); value = "";
      rows.push(row); row = [];
    } else value += ch;
  }
  if (quoted) throw new Error("the file ends inside a quoted field");
  if (value !== "" || row.length) { row.push(value); rows.push(row); }
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}

// A CSV cell as it was before export guarded it against spreadsheets (`csvValue`).
function unguarded(cell) {
  return cell.startsWith("'") && FORMULA.test(cell) ? cell.slice(1) : cell;
}

// The records of a file, as the table's columns want them, or the errors (row and field).
export function check(info, format, text) {
  const columns = new Map(editable(info).map((c) => [c.name, c]));
  const known = new Set(info.columns.map((c) => c.name));
  const errors = [], records = [], ignored = new Set();
  let items;
  if (format === "csv") {
    const rows = parseCsv(text);
    if (!rows.length) return { errors: ["the file is empty"], records, ignored };
    const header = rows[0].map((n) => n.trim());
    header.forEach((n, i) => {
      if (!known.has(n)) errors.push(`header, column ${i + 1}: ${JSON.stringify(n)} is not a column of ${info.name}`);
      else if (header.indexOf(n) !== i) errors.push(`header, column ${i + 1}: ${n} is named twice`);
    });
    items = rows.slice(1).map((cells, r) => {
      if (cells.length !== header.length) errors.push(`row ${r + 1}: ${cells.length} fields, the header has ${header.length}`);
      return Object.fromEntries(header.map((n, i) => [n, unguarded(cells[i] ?? "")]));
    });
  } else {
    let parsed;
    try { parsed = JSON.parse(text); } catch (err) { return { errors: [`the file is not JSON: ${err.message}`], records, ignored }; }
    if (!Array.isArray(parsed)) return { errors: ["the JSON file must hold an array of records (objects)"], records, ignored };
    items = parsed;
  }
  items.forEach((item, r) => {
    const at = `row ${r + 1}`;
    if (item === null || typeof item !== "object" || Array.isArray(item)) { errors.push(`${at}: not an object`); return; }
    const record = {};
    for (const [name, raw] of Object.entries(item)) {
      const column = columns.get(name);
      if (!column) {
        if (known.has(name)) ignored.add(name); else if (format === "json") errors.push(`${at}, field ${name}: not a column of ${info.name}`);
        continue;
      }
      try {
        // CSV: text, as a form's field (an empty field is no value); JSON: typed values, checked
        const value = format === "csv" ? parse(column, raw) : typed(column, raw);
        if (value !== undefined) record[name] = value;
      } catch (err) { errors.push(`${at}, field ${name}: ${err.message}`); }
    }
    for (const c of columns.values()) {
      if (!c.nullable && c.default === null && record[c.name] == null) errors.push(`${at}, field ${c.name}: a value is required`);
    }
    records.push(record);
  });
  if (!records.length && !errors.length) errors.push("the file holds no record");
  return { errors, records, ignored };
}

function typed(column, value) {
  if (value === null || value === undefined) return undefined;
  const type = column.type.toLowerCase();
  if (/int/.test(type) && !Number.isInteger(value)) throw new Error(`${column.name} wants a whole number`);
  if (/bool/.test(type) && typeof value !== "boolean") throw new Error(`${column.name} wants true or false`);
  if (/^(text|varchar)/.test(type) && typeof value !== "string") return String(value);
  return value;
}

function importCard(table, info, state, done) {
  const input = h("input", { type: "file", name: "import-file", accept: ".csv,.json,text/csv,application/json" });
  const report = h("div", { "aria-live": "polite" });
  const progress = h("progress", { max: "1", value: "0", "aria-label": "Import progress", hidden: true });
  let checked = null;
  const go = h("button", { type: "submit", disabled: true }, "Import");
  const form = h("form", { class: "card", "aria-labelledby": "import-heading" },
    h("h2", { id: "import-heading" }, "Import records"),
    field("CSV or JSON file", input, "CSV: a header row of column names. JSON: an array of objects. An empty CSV field is no value."),
    button("Check file", checkFile), report, progress, go);

  async function checkFile() {
    checked = null;
    go.disabled = true;
    progress.hidden = true;
    const file = input.files[0];
    if (!file) { show(report, errorBox(new Error("choose a file first"))); return; }
    if (file.size > MAX_FILE) { show(report, errorBox(new Error("the file is larger than 50 MB: split it"))); return; }
    const format = /\.json$/i.test(file.name) || file.type === "application/json" ? "json" : "csv";
    let result;
    try { result = check(info, format, await file.text()); } catch (err) { show(report, errorBox(err)); return; }
    const note = result.ignored.size ? h("p", {}, `Ignored (kept by the table): ${[...result.ignored].join(", ")}.`) : null;
    if (result.errors.length) {
      show(report, h("div", { class: "error", role: "alert" },
        h("strong", {}, `${result.errors.length} problem${result.errors.length > 1 ? "s" : ""} in ${file.name}; nothing was imported:`),
        h("ul", { "aria-label": "Import problems" }, result.errors.slice(0, SHOWN_ERRORS).map((e) => h("li", {}, e))),
        result.errors.length > SHOWN_ERRORS ? h("p", {}, `… and ${result.errors.length - SHOWN_ERRORS} more.`) : null), note);
      return;
    }
    checked = result.records;
    go.disabled = false;
    show(report, h("p", { role: "status" }, `${checked.length} records in ${file.name} are ready to import.`), note);
  }

  input.addEventListener("change", () => { checked = null; go.disabled = true; show(report); });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!checked) return;
    const records = checked;
    checked = null;
    go.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    let created = 0;
    for (let start = 0; start < records.length; start += BATCH) {
      const batch = records.slice(start, start + BATCH);
      try {
        await call("database.create", { table, rows: batch, ...state.access });
      } catch (err) {
        const field = err.details && err.details.field;
        show(report, h("div", { class: "error", role: "alert" }, h("strong", {}, "Error: "),
          `rows ${start + 1}–${start + batch.length}: ${err.message}${field ? ` (field: ${field})` : ""}. `,
          `${created} records were imported before it.`));
        done();
        return;
      }
      created += batch.length;
      progress.value = created / records.length;
      show(report, h("p", { role: "status" }, `Imported ${created} of ${records.length} records…`));
    }
    show(report, h("p", { role: "status" }, `Imported ${created} records.`));
    toast(`Imported ${created} records`);
    form.reset();
    done();
  });
  return form;
}
