// Settings and pages: the tenant's site settings (one JSON object, settings.get/update: read
// by every signed-in caller, changed with settings:write) and the pages of the tenant's app
// with the scopes each needs (pages.list/create/delete).
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

async function settingsCard(canWrite) {
  const status = h("div", { "aria-live": "polite" });
  const source = h("textarea", { name: "settings", rows: 10, class: "code", readonly: !canWrite, spellcheck: "false" });
  const form = h("form", { class: "card", "aria-label": "Site settings" }, h("h2", {}, "Site settings"),
    field("Settings (JSON object)", source, canWrite
      ? "Saved as written: a key you remove here is removed. Secrets belong in Secrets, not here."
      : "Every signed-in user reads these; changing them needs settings:write."),
    status, canWrite ? h("button", { type: "submit" }, "Save settings") : null);
  const load = async () => {
    try {
      source.value = JSON.stringify(await call("settings.get"), null, 2);
    } catch (err) { show(status, errorBox(err)); }
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    show(status);
    try {
      let settings;
      try { settings = JSON.parse(source.value); } catch { throw new Error("the settings are not JSON"); }
      if (!settings || typeof settings !== "object" || Array.isArray(settings)) throw new Error("the settings must be a JSON object");
      source.value = JSON.stringify(await call("settings.update", { settings, replace: true }), null, 2);
      toast("Settings saved");
    } catch (err) { show(status, errorBox(err)); }
  });
  await load();
  return form;
}

async function pagesSection(canWrite) {
  const list = h("div", {}, "Loading pages…");
  const status = h("div", { "aria-live": "polite" });
  const load = async () => {
    try {
      const pages = await call("pages.list");
      show(list, pages.length
        ? grid(["path", "title", "parent", "scopes", "position"], pages.map((p) => ({ ...p, scopes: p.scopes.join(" ") })), {
          caption: `${pages.length} pages`,
          actions: canWrite ? (p) => button("Delete", async () => {
            if (!window.confirm(`Delete the page ${p.path}?`)) return;
            try { await call("pages.delete", { path: p.path }); toast(`Deleted ${p.path}`); await load(); } catch (err) { show(status, errorBox(err)); }
          }, { class: "danger", "aria-label": `Delete page ${p.path}` }) : null,
        })
        : empty(canWrite ? "No pages yet: declare one above." : "No pages yet."));
    } catch (err) { show(list, errorBox(err)); }
  };
  const path = h("input", { name: "page-path", required: true, placeholder: "/reports", autocomplete: "off" });
  const title = h("input", { name: "page-title", required: true });
  const parent = h("input", { name: "page-parent", placeholder: "/" });
  const scopes = h("input", { name: "page-scopes", placeholder: "reports:read" });
  const position = h("input", { name: "page-position", type: "number", min: "0", value: "0" });
  const form = h("form", { class: "card inline", "aria-label": "New page" },
    field("Path", path), field("Title", title), field("Parent (optional)", parent),
    field("Scopes needed (comma-separated)", scopes), field("Position", position), status,
    h("button", { type: "submit" }, "Add page"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    show(status);
    try {
      const made = await call("pages.create", {
        path: path.value.trim(), title: title.value.trim(),
        parent: parent.value.trim() || null,
        scopes: scopes.value.split(",").map((s) => s.trim()).filter(Boolean),
        position: Number(position.value || 0),
      });
      toast(`Added ${made.path}`);
      form.reset();
      await load();
    } catch (err) { show(status, errorBox(err)); }
  });
  await load();
  return h("section", { "aria-label": "Pages" }, h("h2", {}, "Pages"),
    h("p", { class: "current" }, "The pages of your app and the scopes each needs: a user's navigation (auth.get_navigation) holds those they may open."),
    canWrite ? form : null, list);
}

export async function render(main, { me }) {
  show(main, h("h1", {}, "Settings & pages"), h("p", {}, "Loading…"));
  const parts = await Promise.all([
    settingsCard(allows(me.scopes, "settings:write")),
    allows(me.scopes, "pages:read") ? pagesSection(allows(me.scopes, "pages:write")) : null,
  ]);
  show(main, h("h1", {}, "Settings & pages"), parts);
}
