// The audit log of secure tables (audit:read): who read or changed which records, for whom
// (the actor) and why, newest first, filtered by table, actor, operation and time.
import { call } from "../api.js";
import { empty, errorBox, field, grid, h, show } from "../ui.js";

const OPERATIONS = ["query", "get", "create", "update", "delete", "analytics"];

export async function render(main) {
  const table = h("input", { name: "audit-table", autocomplete: "off" });
  const actor = h("input", { name: "audit-actor", autocomplete: "off" });
  const operation = h("select", { name: "audit-operation" }, h("option", { value: "" }, "any"),
    OPERATIONS.map((o) => h("option", {}, o)));
  const since = h("input", { type: "datetime-local", name: "audit-since" });
  const until = h("input", { type: "datetime-local", name: "audit-until" });
  const list = h("div", {}, h("p", { role: "status" }, "Loading the audit log…"));
  const form = h("form", { class: "builder", "aria-label": "Audit filters" },
    field("Table", table), field("Actor", actor), field("Operation", operation),
    field("Since", since), field("Until", until), h("button", { type: "submit" }, "Apply"));

  async function load() {
    const q = { limit: 200 };
    if (table.value.trim()) q.table = table.value.trim();
    if (actor.value.trim()) q.actor = actor.value.trim();
    if (operation.value) q.operation = operation.value;
    try {
      // datetime-local is the browser's local time: sent as an instant (UTC)
      if (since.value) q.since = new Date(since.value).toISOString();
      if (until.value) q.until = new Date(until.value).toISOString();
      const entries = await call("audit.query", q);
      const filtered = Object.keys(q).length > 1;
      show(list, entries.length
        ? grid(["at", "table", "operation", "actor", "reason", "username", "principal", "records"],
          entries.map((e) => ({ ...e, at: new Date(e.at).toLocaleString(), records: e.record_ids.join(", ") })),
          { caption: `${entries.length} entries, newest first${entries.length === q.limit ? " (the latest 200)" : ""}` })
        : empty(filtered ? "No audit entry matches these filters."
          : "No audit entries yet. Accesses to secure tables are written here, with their reason."));
    } catch (err) { show(list, errorBox(err)); }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  show(main, h("h1", {}, "Audit log"),
    h("p", {}, "Every read and change of a secure table's records, with who did it, for whom and why. Entries cannot be changed or deleted."),
    form, list);
  await load();
}
