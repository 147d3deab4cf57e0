// One table's schema editor (schema:admin): add a column with a portable type and its
// constraints, rename or drop a column (drop asks first), add an index, make the table secure,
// and the table's schema history (schema.migrations). Each change is one schema.* call; the
// server checks it and answers the table as it is now, which the page then shows.
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

// the portable types (services/tabledefs.py): varchar and decimal take their sizes
const TYPES = ["text", "varchar(255)", "integer", "bigint", "decimal(12,2)", "boolean",
  "timestamp", "timestamptz", "date", "uuid", "json", "bytes"];
const KEPT = ["id", "created_at", "updated_at"];

export async function render(main, me, table) {
  const back = h("p", {}, h("a", { href: `#/tables/${encodeURIComponent(table)}` }, `← Records of ${table}`));
  if (!allows(me.scopes, "schema:admin")) {
    show(main, back, h("h1", {}, `Schema of ${table}`),
      empty("Changing a table's schema needs the schema:admin scope, which your account does not hold."));
    return;
  }
  show(main, back, h("h1", {}, `Schema of ${table}`), h("p", { role: "status" }, "Loading the schema…"));
  let info;
  try {
    info = await call("database.describe", { table });
  } catch (err) {
    show(main, back, h("h1", {}, `Schema of ${table}`), errorBox(err));
    return;
  }
  const columns = h("div", {});
  const indexes = h("div", {});
  const secure = h("div", {});
  const history = h("section", { "aria-labelledby": "history" });
  const forms = h("div", {});

  // after each change: the table as the server answered it, and the history again
  function shown(next) {
    info = next;
    show(columns, grid(["name", "type", "nullable", "primary_key", "unique", "default", "check", "references"],
      info.columns.map((c) => ({ ...c, references: c.references ? `${c.references.table}(${c.references.column})` : null })),
      { caption: `Columns of ${table}`, actions: columnActions }));
    show(indexes, info.indexes.length
      ? grid(["name", "columns", "unique"], info.indexes.map((i) => ({ ...i, columns: i.columns.join(", ") })),
        { caption: `Indexes of ${table}` })
      : empty("No indexes yet (the primary key and UNIQUE columns have their own)."));
    show(secure, secureCard());
    show(forms, addColumnForm(), renameForm(), indexForm());
    migrations(history, table);
  }

  async function change(operation, params, done, status) {
    try {
      const next = await call(operation, { table, ...params });
      toast(done);
      shown(next);
      return true;
    } catch (err) {
      show(status, errorBox(err));
      return false;
    }
  }

  const actionStatus = h("div", { "aria-live": "polite" });
  function columnActions(c) {
    if (c.primary_key || KEPT.includes(c.name)) return null;
    return button("Drop", async () => {
      if (!window.confirm(`Drop the column ${c.name} of ${table}? Its values in every record are lost.`)) return;
      await change("schema.drop_column", { column: c.name }, `Dropped ${c.name}`, actionStatus);
    }, { class: "danger", "aria-label": `Drop column ${c.name}` });
  }

  function secureCard() {
    const status = h("div", { "aria-live": "polite" });
    const text = info.secure
      ? "This table is secure: each access needs a reason and an actor, and is written to the audit log."
      : "Make the table secure to require a reason and an actor for each access of its records, and to audit them.";
    return h("div", { class: "card" }, h("h2", {}, "Secure table"), h("p", {}, text), status,
      button(info.secure ? "Make not secure" : "Make secure", async () => {
        if (info.secure && !window.confirm(`Stop auditing ${table}? Accesses will no longer need a reason.`)) return;
        await change("schema.set_secure", { secure: !info.secure },
          info.secure ? `${table} is no longer secure` : `${table} is secure`, status);
      }));
  }

  function addColumnForm() {
    const name = h("input", { name: "column-name", required: true, pattern: "[a-z_][a-z0-9_]*", autocomplete: "off" });
    const type = h("input", { name: "column-type", required: true, list: "portable-types", value: "text", autocomplete: "off" });
    const types = h("datalist", { id: "portable-types" }, TYPES.map((t) => h("option", { value: t })));
    const notNull = h("input", { type: "checkbox", name: "not-null" });
    const fallback = h("input", { name: "column-default" });
    const check = h("input", { name: "column-check", placeholder: "price >= 0" });
    const references = h("input", { name: "column-references", placeholder: "customers(id) ON DELETE CASCADE" });
    const status = h("div", { "aria-live": "polite" });
    const form = h("form", { class: "card", "aria-labelledby": "add-column" },
      h("h2", { id: "add-column" }, "Add a column"),
      field("Column name", name, "lower-case letters, digits and _"),
      field("Column type", type, "text, varchar(n), integer, bigint, decimal(p,s), boolean, timestamp, timestamptz, date, uuid, json or bytes"),
      types,
      h("div", { class: "field check" }, notNull, h("label", { for: (notNull.id = "column-not-null") }, "NOT NULL")),
      field("Default", fallback, "needed for NOT NULL when the table has records"),
      field("CHECK", check, "an expression over this table's columns"),
      field("REFERENCES", references, "table(column), a primary key or unique column"),
      status, h("button", { type: "submit" }, "Add column"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const constraints = [];
      if (notNull.checked) constraints.push("NOT NULL");
      if (check.value.trim()) constraints.push(`CHECK (${check.value.trim()})`);
      if (references.value.trim()) constraints.push(`REFERENCES ${references.value.trim()}`);
      const column = { name: name.value.trim(), type: type.value.trim(), constraints };
      if (fallback.value !== "") column.default = defaultValue(type.value, fallback.value);
      await change("schema.add_column", { column }, `Added ${column.name}`, status);
    });
    return form;
  }

  function renameForm() {
    const renamable = info.columns.filter((c) => c.name === "id" || !KEPT.includes(c.name));
    const column = h("select", { name: "rename-column" }, renamable.map((c) => h("option", {}, c.name)));
    const to = h("input", { name: "rename-to", required: true, pattern: "[a-z_][a-z0-9_]*", autocomplete: "off" });
    const status = h("div", { "aria-live": "polite" });
    const form = h("form", { class: "card inline", "aria-label": "Rename a column" },
      field("Column to rename", column), field("New name", to), status, h("button", { type: "submit" }, "Rename"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      await change("schema.rename_column", { column: column.value, new_name: to.value.trim() },
        `Renamed ${column.value} to ${to.value.trim()}`, status);
    });
    return form;
  }

  function indexForm() {
    const boxes = info.columns.map((c) => h("label", { class: "pick" },
      h("input", { type: "checkbox", name: "index-column", value: c.name }), ` ${c.name}`));
    const unique = h("input", { type: "checkbox", name: "index-unique" });
    const name = h("input", { name: "index-name", pattern: "[a-z_][a-z0-9_]*", autocomplete: "off" });
    const status = h("div", { "aria-live": "polite" });
    const form = h("form", { class: "card", "aria-labelledby": "add-index" },
      h("h2", { id: "add-index" }, "Add an index"),
      h("fieldset", { class: "row" }, h("legend", {}, "Columns, in order"), boxes),
      h("div", { class: "field check" }, unique, h("label", { for: (unique.id = "index-unique") }, "Unique (refuses duplicates)")),
      field("Index name (optional)", name), status, h("button", { type: "submit" }, "Add index"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const chosen = [...form.querySelectorAll("[name=index-column]:checked")].map((b) => b.value);
      if (!chosen.length) { show(status, errorBox(new Error("choose at least one column"))); return; }
      const params = { columns: chosen, unique: unique.checked };
      if (name.value.trim()) params.name = name.value.trim();
      await change("schema.add_index", params, "Index added", status);
    });
    return form;
  }

  show(main, back, h("h1", {}, `Schema of ${table}`),
    h("section", { "aria-label": "Columns" }, h("h2", {}, "Columns"), actionStatus, columns),
    h("section", { "aria-label": "Indexes" }, h("h2", {}, "Indexes"), indexes),
    secure, forms, history);
  shown(info);
}

// A default as the column's type wants it (a number for numeric types, true/false for boolean).
function defaultValue(type, raw) {
  const t = type.toLowerCase();
  if (/^(int|integer|bigint|decimal|numeric)/.test(t) && raw.trim() !== "" && Number.isFinite(Number(raw))) return Number(raw);
  if (/^bool/.test(t) && (raw === "true" || raw === "false")) return raw === "true";
  return raw;
}

// The schema history, newest first: of one table, or (table null) of every table.
export async function migrations(target, table) {
  const body = h("div", {}, h("p", { role: "status" }, "Loading the history…"));
  const heading = table ? h("h2", { id: "history" }, "Schema history") : null;
  show(target, table ? heading : target.querySelector("summary"), body);
  try {
    const entries = await call("schema.migrations", table ? { table, limit: 200 } : { limit: 200 });
    show(body, entries.length
      ? grid(["applied_at", "operation", "table", "applied_by", "change"], entries.map((m) => ({
        ...m, applied_at: new Date(m.applied_at).toLocaleString(),
      })), { caption: `${entries.length} changes, newest first` })
      : empty("No schema change recorded yet."));
  } catch (err) {
    show(body, errorBox(err));
  }
}
