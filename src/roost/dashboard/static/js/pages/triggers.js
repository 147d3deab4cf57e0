// Triggers: the tenant's triggers, create one (a database or cron source; a function or URL
// target), pause, resume and delete, and a trigger's deliveries (status, attempts, last error).
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

function describe(part) {
  const { kind, ...rest } = part;
  return `${kind}: ${Object.values(rest).map((v) => (Array.isArray(v) ? v.join(",") : String(v))).filter(Boolean).join(" ")}`;
}

export async function render(main, { me }) {
  const canAdmin = allows(me.scopes, "triggers:admin");
  const list = h("div", {}, "Loading triggers…");
  const detail = h("div", { "aria-live": "polite" });

  async function deliveries(name) {
    try {
      const page = await call("triggers.deliveries", { name, limit: 50 });
      show(detail, h("section", { class: "card", "aria-label": `Deliveries of ${name}` },
        h("h2", {}, `Deliveries of ${name}`), button("Refresh", () => deliveries(name)),
        page.results.length
          ? grid(["id", "status", "attempts", "status_code", "last_error", "duration_ms", "updated"],
            page.results.map((d) => ({ ...d, updated: new Date(d.updated_at).toLocaleString() })),
            { caption: `${page.count} deliveries` })
          : empty("No deliveries yet: the trigger has not fired.")));
    } catch (err) { show(detail, errorBox(err)); }
  }

  async function act(operation, name, done) {
    try { await call(operation, { name }); toast(done); await load(); } catch (err) { show(detail, errorBox(err)); }
  }

  async function load() {
    try {
      const all = await call("triggers.list", {});
      show(list, all.length
        ? grid(["name", "source", "target", "state", "owner"], all.map((t) => ({
          ...t, source: describe(t.source), target: describe(t.target), state: t.enabled ? "active" : "paused",
        })), {
          caption: `${all.length} triggers`,
          actions: (t) => [
            button("Deliveries", () => deliveries(t.name), { "aria-label": `Deliveries of ${t.name}` }),
            canAdmin ? (t.enabled
              ? button("Pause", () => act("triggers.pause", t.name, `Paused ${t.name}`), { "aria-label": `Pause ${t.name}` })
              : button("Resume", () => act("triggers.resume", t.name, `Resumed ${t.name}`), { "aria-label": `Resume ${t.name}` })) : null,
            canAdmin ? button("Delete", () => {
              if (window.confirm(`Delete the trigger ${t.name}?`)) { show(detail); act("triggers.delete", t.name, `Deleted ${t.name}`); }
            }, { class: "danger", "aria-label": `Delete ${t.name}` }) : null,
          ],
        })
        : empty(canAdmin ? "No triggers yet: create one above." : "No triggers yet."));
    } catch (err) { show(list, errorBox(err)); }
  }

  const name = h("input", { name: "trigger-name", required: true, autocomplete: "off" });
  const sourceKind = h("select", { name: "source-kind" },
    h("option", { value: "database" }, "Database changes"), h("option", { value: "cron" }, "Schedule (cron)"));
  const table = h("input", { name: "source-table" });
  const events = ["insert", "update", "delete"].map((e) => h("input", { type: "checkbox", name: `event-${e}`, checked: true }));
  const schedule = h("input", { name: "source-schedule", placeholder: "*/5 * * * *" });
  const timezone = h("input", { name: "source-timezone", value: "UTC" });
  const databaseFields = h("div", {}, field("Table", table), h("fieldset", { class: "row" }, h("legend", {}, "Events"),
    events.map((box, i) => field(["insert", "update", "delete"][i], box))));
  const cronFields = h("div", { hidden: true }, field("Schedule", schedule, "Five fields or @hourly, @daily…"), field("Time zone", timezone));
  sourceKind.addEventListener("change", () => {
    databaseFields.hidden = sourceKind.value !== "database";
    cronFields.hidden = sourceKind.value !== "cron";
  });
  const targetKind = h("select", { name: "target-kind" },
    h("option", { value: "function" }, "Function"), h("option", { value: "url" }, "URL (webhook)"));
  const targetValue = h("input", { name: "target-value", required: true });
  const targetLabel = h("label", { for: "trigger-target" }, "Function name");
  targetValue.id = "trigger-target";
  targetKind.addEventListener("change", () => {
    targetLabel.textContent = targetKind.value === "url" ? "URL" : "Function name";
  });
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", "aria-label": "New trigger" }, h("h2", {}, "New trigger"),
    field("Trigger name", name), field("Source", sourceKind), databaseFields, cronFields,
    field("Target", targetKind), h("div", { class: "field" }, targetLabel, targetValue), status,
    h("button", { type: "submit" }, "Create trigger"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const source = sourceKind.value === "cron"
      ? { kind: "cron", schedule: schedule.value.trim(), timezone: timezone.value.trim() || "UTC" }
      : { kind: "database", table: table.value.trim(), events: ["insert", "update", "delete"].filter((_, i) => events[i].checked) };
    const target = targetKind.value === "url" ? { kind: "url", url: targetValue.value.trim() }
      : { kind: "function", name: targetValue.value.trim() };
    try {
      const made = await call("triggers.create", { name: name.value.trim(), source, target });
      show(status, made.secret ? h("p", {}, "Signing secret (shown once): ", h("code", { class: "key" }, made.secret)) : null);
      toast(`Created ${made.name}`);
      await load();
    } catch (err) { show(status, errorBox(err)); }
  });
  show(main, h("h1", {}, "Triggers"), canAdmin ? form : null, list, detail);
  await load();
}
