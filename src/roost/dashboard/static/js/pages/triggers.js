// Triggers: the tenant's triggers, create one (a database or cron source; a function or URL
// target), pause, resume and delete, and a trigger's deliveries (status, attempts, last error),
// live: the triggers.watch_deliveries subscription on the realtime WebSocket pushes each
// delivery as it is made and as it changes.
import { allows, call, subscribe } from "../api.js";
import { button, cell, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

const DELIVERY_COLUMNS = ["id", "status", "attempts", "status_code", "last_error", "duration_ms", "updated"];

function describe(part) {
  const { kind, ...rest } = part;
  return `${kind}: ${Object.values(rest).map((v) => (Array.isArray(v) ? v.join(",") : String(v))).filter(Boolean).join(" ")}`;
}

export async function render(main, { me }) {
  const canAdmin = allows(me.scopes, "triggers:admin");
  const list = h("div", {}, "Loading triggers…");
  const detail = h("div", { "aria-live": "polite" });

  let stopWatching = null;

  function deliveries(name) {
    if (stopWatching) stopWatching();
    const body = h("tbody", {});
    const caption = h("caption", {});
    const note = h("div", {});
    const live = h("p", { class: "live", role: "status" }, "Connecting the live feed…");
    const known = new Map(); // delivery id -> its row
    const row = (d) => h("tr", { "data-id": d.id }, DELIVERY_COLUMNS.map((c) =>
      h("td", {}, cell(c === "updated" ? new Date(d.updated_at).toLocaleString() : d[c]))));
    let total = 0;
    const counted = () => {
      caption.textContent = `${total} deliveries`;
      show(note, known.size ? null : empty("No deliveries yet: the trigger has not fired."));
    };
    // a delivery pushed live replaces its row, or is a new one at the top
    const put = (d, fresh) => {
      const old = known.get(d.id);
      const made = row(d);
      if (old) old.replaceWith(made); else { body.prepend(made); if (fresh) total += 1; }
      known.set(d.id, made);
      counted();
    };
    const status = h("div", { "aria-live": "polite" });
    async function load() {
      try {
        const page = await call("triggers.deliveries", { name, limit: 50 });
        body.replaceChildren();
        known.clear();
        total = page.count;
        for (const d of [...page.results].reverse()) put(d, false);
        counted();
      } catch (err) { show(status, errorBox(err)); }
    }
    show(detail, h("section", { class: "card", "aria-label": `Deliveries of ${name}` },
      h("h2", {}, `Deliveries of ${name}`), button("Refresh", () => load()), live, status, note,
      h("div", { class: "scroll" }, h("table", {}, caption,
        h("thead", {}, h("tr", {}, DELIVERY_COLUMNS.map((c) => h("th", { scope: "col" }, c)))), body))));
    // live first, then the list: a delivery that changes in between is in one or the other
    stopWatching = subscribe("triggers.watch_deliveries", { name }, {
      onReady: () => { show(live, "Live: deliveries update as they happen."); load(); },
      onEvent: (d) => put(d, true),
      onError: (err) => { stopWatching = null; show(live); show(status, errorBox(err)); load(); },
    });
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
              if (window.confirm(`Delete the trigger ${t.name}?`)) {
                if (stopWatching) stopWatching();
                stopWatching = null;
                show(detail);
                act("triggers.delete", t.name, `Deleted ${t.name}`);
              }
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
  return () => { if (stopWatching) stopWatching(); };
}
