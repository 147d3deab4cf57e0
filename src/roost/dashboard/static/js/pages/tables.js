// Tables: the list, a new table, and one table's schema and records (the query builder's
// filters, sort and pages; add, edit and delete; a secure table's reason for each access).
// The schema editor (#/tables/<name>/schema) and import and export are their own modules,
// loaded when first opened, so the records page stays light.
import { allows, call, subscribe } from "../api.js";
import { button, empty, errorBox, field, grid, h, sequence, show, toast } from "../ui.js";

const TYPES = ["text", "integer", "bigint", "boolean", "timestamp", "timestamptz", "date",
  "uuid", "json", "varchar(255)", "decimal(12,2)"];
const OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "contains", "icontains", "startswith",
  "endswith", "in", "is_null"];
const PAGE_SIZE = 25;

export async function render(main, { me, args }) {
  if (args[0] && args[1] === "schema") return (await import("./schema.js")).render(main, me, args[0]);
  if (args[0]) return tablePage(main, me, args[0]);
  const list = h("div", {}, h("p", { role: "status" }, "Loading tables…"));
  const admin = allows(me.scopes, "schema:admin");
  const history = h("details", { class: "history" }, h("summary", {}, "Schema history (every table)"));
  history.addEventListener("toggle", async () => {
    if (history.open && history.children.length === 1) (await import("./schema.js")).migrations(history, null);
  });
  show(main, h("h1", {}, "Tables"), list, admin ? newTableForm() : null, admin ? history : null);
  try {
    const tables = await call("database.tables");
    show(list, tables.length
      ? h("ul", { class: "cards" }, tables.map((t) => h("li", {},
        h("a", { href: `#/tables/${encodeURIComponent(t.name)}` }, t.name),
        h("small", {}, `${t.columns.length} columns${t.secure ? " · secure" : ""}`))))
      : empty("No tables yet. Create one below (it needs the schema:admin scope)."));
  } catch (err) {
    show(list, errorBox(err));
  }
}

function newTableForm() {
  const name = h("input", { name: "table", required: true, pattern: "[A-Za-z_][A-Za-z0-9_]*" });
  const columns = h("div", { class: "columns" });
  const status = h("div", { "aria-live": "polite" });
  const addColumn = () => {
    const n = columns.children.length + 1;
    const row = h("fieldset", { class: "row" }, h("legend", {}, `Column ${n}`),
      field("Name", h("input", { name: "column", required: true })),
      field("Type", h("select", { name: "type" }, TYPES.map((t) => h("option", {}, t)))),
      field("Constraints", h("input", { name: "constraints", placeholder: "NOT NULL, UNIQUE" })));
    columns.append(row);
  };
  addColumn();
  const form = h("form", { class: "card", "aria-labelledby": "new-table" },
    h("h2", { id: "new-table" }, "New table"),
    field("Table name", name, "An id column (bigint, auto-increment) is added when no column is the primary key."),
    columns, button("Add column", addColumn), status, h("button", { type: "submit" }, "Create table"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const spec = [...columns.querySelectorAll("fieldset")].map((fs) => ({
      name: fs.querySelector("[name=column]").value.trim(),
      type: fs.querySelector("[name=type]").value,
      constraints: fs.querySelector("[name=constraints]").value.split(",")
        .map((c) => c.trim()).filter(Boolean),
    }));
    try {
      await call("schema.add_table", { name: name.value.trim(), columns: spec });
      window.location.hash = `#/tables/${encodeURIComponent(name.value.trim())}`;
    } catch (err) {
      show(status, errorBox(err));
    }
  });
  return form;
}

// A form (or CSV) value as the column's type wants it; "" is no value.
export function parse(column, raw) {
  if (raw === "") return undefined;
  const type = column.type.toLowerCase();
  if (/int/.test(type)) {
    const n = Number(raw);
    if (!Number.isInteger(n)) throw new Error(`${column.name} wants a whole number`);
    return n;
  }
  if (/bool/.test(type)) {
    if (raw === "true" || raw === "false") return raw === "true";
    throw new Error(`${column.name} wants true or false`);
  }
  if (/json/.test(type)) {
    try { return JSON.parse(raw); } catch { throw new Error(`${column.name} wants JSON`); }
  }
  if (/decimal|numeric|float|real|double/.test(type)) {
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n)) throw new Error(`${column.name} wants a number`);
    return n;
  }
  return raw;
}

export function editable(info) {
  const stamps = info.timestamps ? ["created_at", "updated_at"] : [];
  return info.columns.filter((c) => !stamps.includes(c.name) &&
    !(c.primary_key && /int/.test(c.type.toLowerCase())));
}

function inputFor(column, value) {
  const type = column.type.toLowerCase();
  const shown = value === null || value === undefined ? ""
    : typeof value === "object" ? JSON.stringify(value) : String(value);
  if (/bool/.test(type)) {
    return h("select", { name: column.name }, h("option", { value: "" }, "—"),
      ["true", "false"].map((v) => h("option", { value: v, selected: shown === v }, v)));
  }
  return h("input", { name: column.name, value: shown, inputmode: /int|decimal/.test(type) ? "decimal" : false });
}

async function tablePage(main, me, table) {
  const canWrite = allows(me.scopes, "database:write");
  // access: a secure table's { reason, actor }, asked for before any read (the audit log's)
  const state = { filters: [], sort: [], page: 1, access: {} };
  const ask = () => call("database.query", {
    table, filters: state.filters, sort: state.sort, page: state.page,
    page_size: PAGE_SIZE, count: "with", ...state.access,
  });
  // the first page is asked for with the schema, not after it (one round trip less)
  let first = ask();
  first.catch(() => {}); // its error is shown by load(), or the schema's instead
  let info;
  try {
    info = await call("database.describe", { table });
  } catch (err) {
    show(main, h("h1", {}, table), errorBox(err), h("p", {}, h("a", { href: "#/tables" }, "Back to tables")));
    return;
  }
  if (info.secure) first = null; // refused without a reason: asked again with one
  const pk = (info.columns.find((c) => c.primary_key) || { name: "id" }).name;
  const records = h("section", { "aria-labelledby": "records" });
  const status = h("div", { "aria-live": "polite" });

  const schema = h("details", {}, h("summary", {}, `Schema (${info.columns.length} columns)`),
    grid(["name", "type", "nullable", "primary_key", "unique", "default"], info.columns,
      { caption: `Columns of ${table}` }));

  // the query builder: one filter row at a time, applied in order (AND)
  const fField = h("select", { name: "filter-field" }, info.columns.map((c) => h("option", {}, c.name)));
  const fOp = h("select", { name: "filter-op" }, OPS.map((o) => h("option", {}, o)));
  const fValue = h("input", { name: "filter-value" });
  const chips = h("ul", { class: "chips", "aria-label": "Filters" });
  const sField = h("select", { name: "sort-field" }, h("option", { value: "" }, "(none)"),
    info.columns.map((c) => h("option", {}, c.name)));
  const sDir = h("select", { name: "sort-dir" }, h("option", {}, "asc"), h("option", {}, "desc"));
  const builder = h("form", { class: "builder", "aria-label": "Filter and sort" },
    field("Field", fField), field("Operator", fOp), field("Value", fValue),
    h("button", { type: "submit" }, "Add filter"),
    field("Sort by", sField), field("Direction", sDir));
  builder.addEventListener("submit", (e) => {
    e.preventDefault();
    const column = info.columns.find((c) => c.name === fField.value);
    let value;
    try {
      value = fOp.value === "is_null" ? fValue.value !== "false"
        : fOp.value === "in" ? fValue.value.split(",").map((v) => parse(column, v.trim()))
        : /contains|with/.test(fOp.value) ? fValue.value : parse(column, fValue.value);
    } catch (err) { show(status, errorBox(err)); return; }
    state.filters.push([fField.value, fOp.value, value === undefined ? null : value]);
    state.page = 1;
    fValue.value = "";
    load();
  });
  const resort = () => { state.sort = sField.value ? [[sField.value, sDir.value]] : []; state.page = 1; load(); };
  sField.addEventListener("change", resort);
  sDir.addEventListener("change", resort);

  const loads = sequence();  // a sort field then its direction, a live reload: the newest shows
  async function load() {
    const mine = loads.next();
    show(chips, state.filters.map((f, i) => h("li", {}, `${f[0]} ${f[1]} ${JSON.stringify(f[2])} `,
      button("×", () => { state.filters.splice(i, 1); state.page = 1; load(); },
        { "aria-label": `Remove filter ${f[0]} ${f[1]}` }))));
    show(status);
    try {
      const result = await (first || ask());
      first = null;
      if (!loads.isLatest(mine)) return;
      const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
      const names = info.columns.map((c) => c.name);
      show(records, h("h2", { id: "records" }, "Records"),
        result.rows.length
          ? grid(names, result.rows, {
            caption: `${result.total} records`,
            actions: canWrite ? (row) => [
              button("Edit", () => editRow(row), { "aria-label": `Edit record ${row[pk]}` }),
              button("Delete", () => deleteRow(row), { class: "danger", "aria-label": `Delete record ${row[pk]}` }),
            ] : null,
          })
          : empty(state.filters.length ? "No record matches these filters. Remove a filter to see more."
            : "This table has no records yet."),
        h("nav", { class: "pager", "aria-label": "Pages" },
          button("Previous", () => { state.page -= 1; load(); }, { disabled: state.page <= 1 }),
          h("span", {}, `Page ${state.page} of ${pages}`),
          button("Next", () => { state.page += 1; load(); }, { disabled: state.page >= pages })));
    } catch (err) {
      if (loads.isLatest(mine)) show(records, h("h2", { id: "records" }, "Records"), errorBox(err));
    }
  }

  function recordForm(title, row, submit) {
    const inputs = editable(info).map((c) => field(`${c.name} (${c.type})`, inputFor(c, row ? row[c.name] : undefined)));
    const formStatus = h("div", { "aria-live": "polite" });
    const form = h("form", { class: "card", "aria-label": title }, h("h2", {}, title), inputs, formStatus,
      h("button", { type: "submit" }, "Save"), row ? button("Cancel", () => form.remove()) : null);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = {};
      try {
        for (const c of editable(info)) {
          const value = parse(c, form.elements[c.name].value);
          if (value !== undefined) data[c.name] = value;
          else if (row) data[c.name] = null;
        }
        await submit(data);
        if (row) form.remove(); else form.reset();
        load();
      } catch (err) {
        show(formStatus, errorBox(err));
      }
    });
    return form;
  }

  function editRow(row) {
    const form = recordForm(`Edit record ${row[pk]}`, row,
      (data) => call("database.update", { table, id: row[pk], data, ...state.access }).then(() => toast("Saved")));
    records.prepend(form);
    form.querySelector("input, select").focus();
  }

  async function deleteRow(row) {
    if (!window.confirm(`Delete record ${row[pk]} of ${table}?`)) return;
    try {
      await call("database.delete", { table, id: row[pk], ...state.access });
      toast("Deleted");
      load();
    } catch (err) {
      show(status, errorBox(err));
    }
  }

  // live: the grid reloads its page when the table changes (a burst of changes, once)
  const live = h("p", { class: "live", role: "status" });
  let reload = null;
  const stop = info.secure ? null : subscribe("database.subscribe", { table }, {
    onReady: () => show(live, "Live: changes by others appear here."),
    onEvent: () => {
      clearTimeout(reload);
      reload = setTimeout(load, 200);
    },
    onError: () => show(live),
  });

  // import and export: their module is loaded when the section is first opened
  const transfer = h("details", { class: "transfer" }, h("summary", {}, canWrite ? "Import and export" : "Export"));
  transfer.addEventListener("toggle", async () => {
    if (!transfer.open || transfer.children.length > 1) return;
    try {
      (await import("./transfer.js")).render(transfer, { table, info, canWrite, state, done: load });
    } catch (err) { transfer.append(errorBox(err)); }
  });

  const parts = [live, schema,
    allows(me.scopes, "schema:admin") ? h("p", {}, h("a", { href: `#/tables/${encodeURIComponent(table)}/schema` },
      "Edit the schema and see its history")) : null,
    canWrite ? h("details", { class: "add" }, h("summary", {}, "Add record"),
      recordForm("New record", null, (data) => call("database.create", { table, rows: [data], ...state.access }).then(() => toast("Added")))) : null,
    transfer, builder, chips, status, records];
  const heading = [h("p", {}, h("a", { href: "#/tables" }, "← Tables")), h("h1", {}, table)];
  if (!info.secure) {
    show(main, heading, parts);
    await load();
  } else {
    show(main, heading, reasonForm(me, (access) => {
      state.access = access;
      show(main, heading, h("p", { class: "secure-note", role: "status" },
        `Secure table: each access is audited with the reason “${access.reason}” for ${access.actor}. `,
        button("Change the reason", () => { state.access = {}; tablePage(main, me, table); })), parts);
      load();
    }));
  }
  return () => { clearTimeout(reload); if (stop) stop(); };
}

// A secure table is read only with a reason and the person it is for (the actor); both go to
// its audit log with each access.
function reasonForm(me, onReady) {
  const reason = h("input", { name: "reason", required: true, maxlength: "1000", autocomplete: "off" });
  const actor = h("input", { name: "actor", required: true, maxlength: "200", value: me.username });
  const form = h("form", { class: "card", "aria-labelledby": "secure-heading" },
    h("h2", { id: "secure-heading" }, "This table is secure"),
    h("p", {}, "Every read and change of its records is written to the audit log with a reason and the person it is for."),
    field("Reason for this access", reason, "For example: support ticket 4512"),
    field("On behalf of (actor)", actor),
    h("button", { type: "submit" }, "Show records"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    onReady({ reason: reason.value.trim(), actor: actor.value.trim() });
  });
  setTimeout(() => reason.focus());
  return form;
}
