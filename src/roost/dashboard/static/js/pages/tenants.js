// Tenants (platform administrators only: users of the default tenant with tenants:admin):
// the list, a new tenant with its first administrator, and switching the page to a tenant.
// A dashboard session belongs to one tenant (the server refuses its cookie in any other), so
// switching signs this session out and opens the sign-in form for the chosen tenant.
import { call, signOut } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

export async function render(main, { me }) {
  const list = h("div", {}, "Loading tenants…");
  const status = h("div", { "aria-live": "polite" });

  async function switchTo(name) {
    if (!window.confirm(`Sign out of ${me.tenant} and sign in to ${name}?`)) return;
    try { await signOut(); } catch { /* the session is gone either way */ }
    window.location.hash = `#/tenant/${encodeURIComponent(name)}`;
    window.location.reload();
  }

  async function load() {
    try {
      const all = await call("tenants.list", {});
      show(list, all.length
        ? grid(["name", "display_name", "created"], all.map((t) => ({ ...t, created: new Date(t.created_at).toLocaleString() })), {
          caption: `${all.length} tenants`,
          actions: (t) => t.name === me.tenant ? h("span", { class: "current" }, "signed in here")
            : button("Switch", () => switchTo(t.name), { "aria-label": `Switch to ${t.name}` }),
        })
        : empty("No tenants."));
    } catch (err) { show(list, errorBox(err)); }
  }

  const name = h("input", { name: "tenant-name", required: true, autocomplete: "off" });
  const display = h("input", { name: "tenant-display" });
  const adminName = h("input", { name: "tenant-admin", autocomplete: "off" });
  const adminPassword = h("input", { name: "tenant-admin-password", type: "password", autocomplete: "new-password" });
  const form = h("form", { class: "card inline", "aria-label": "New tenant" },
    field("Tenant name", name, "lower-case letters, digits and hyphens"), field("Display name", display),
    field("First admin's username (optional)", adminName), field("First admin's password", adminPassword), status,
    h("button", { type: "submit" }, "Create tenant"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const params = { name: name.value.trim(), display_name: display.value };
      if (adminName.value.trim()) Object.assign(params, { admin_username: adminName.value.trim(), admin_password: adminPassword.value });
      const made = await call("tenants.create", params);
      toast(`Created ${made.name}`);
      show(status);
      form.reset();
      await load();
    } catch (err) { show(status, errorBox(err)); }
  });
  show(main, h("h1", {}, "Tenants"), form, list);
  await load();
}
