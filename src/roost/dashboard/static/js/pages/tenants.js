// Tenants (platform administrators only: users of the default tenant with tenants:admin):
// the list, a new tenant with its first administrator, tenant categories (templates of tables
// a new tenant starts with), and switching the page to a tenant. Where the administrator has
// a member account, switching trades the session in place (auth.switch_tenant); elsewhere a
// dashboard session belongs to one tenant (the server refuses its cookie in any other), so
// switching signs this session out and opens the sign-in form for the chosen tenant.
import { call } from "../api.js";
import { memberships, signInAt, switchTo } from "../switcher.js";
import { empty, errorBox, field, grid, h, show, toast, button } from "../ui.js";

const EXAMPLE = JSON.stringify([{ name: "notes", columns: [{ name: "text", type: "text", constraints: ["NOT NULL"] }] }], null, 1);

export async function render(main, { me }) {
  const list = h("div", {}, "Loading tenants…");
  const status = h("div", { "aria-live": "polite" });
  const categoryList = h("div", {}, "Loading categories…");
  let categoryNames = [];

  async function switchOver(name, member) {
    if (member) {
      const error = await switchTo(me, name, false);
      if (error) show(status, errorBox(error));
      return;
    }
    if (window.confirm(`Sign out of ${me.tenant} and sign in to ${name}?`)) await signInAt(name);
  }

  async function load() {
    try {
      const [all, mine] = await Promise.all([call("tenants.list", {}), memberships(me)]);
      const member = new Set(mine.filter((m) => !m.home).map((m) => m.tenant));
      show(list, all.length
        ? grid(["name", "display_name", "created", "access"], all.map((t) => ({
          ...t, created: new Date(t.created_at).toLocaleString(),
          access: t.name === me.tenant ? "here" : member.has(t.name) ? "member: switch in place" : "sign in there",
        })), {
          caption: `${all.length} tenants`,
          actions: (t) => t.name === me.tenant ? h("span", { class: "current" }, "signed in here")
            : button("Switch", () => switchOver(t.name, member.has(t.name)), { "aria-label": `Switch to ${t.name}` }),
        })
        : empty("No tenants."));
    } catch (err) { show(list, errorBox(err)); }
  }

  async function loadCategories() {
    try {
      const all = await call("tenants.categories", {});
      categoryNames = all.map((c) => c.name);
      show(categoryList, all.length
        ? grid(["name", "description", "tables"], all.map((c) => ({ ...c, tables: c.tables.join(", ") })),
          { caption: `${all.length} categories` })
        : empty("No categories yet. A category is a set of tables a new tenant starts with."));
      show(fromCategory.querySelector("select"), categoryNames.map((n) => h("option", {}, n)));
      fromCategory.hidden = !all.length;
    } catch (err) { show(categoryList, errorBox(err)); }
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

  // a new category: its tables as schema.add_table takes them (the server checks each)
  const categoryName = h("input", { name: "category-name", required: true, autocomplete: "off" });
  const description = h("input", { name: "category-description" });
  const tables = h("textarea", { name: "category-tables", class: "code", rows: "6", required: true }, EXAMPLE);
  const categoryStatus = h("div", { "aria-live": "polite" });
  const categoryForm = h("form", { class: "card", "aria-label": "New category" },
    h("h3", {}, "New category"),
    field("Category name", categoryName, "lower-case letters, digits and _"), field("Description", description),
    field("Tables (JSON)", tables, "a list of tables, each as schema.add_table takes it: name, columns (name, type, constraints)"),
    categoryStatus, h("button", { type: "submit" }, "Create category"));
  categoryForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    let parsed;
    try { parsed = JSON.parse(tables.value); } catch (err) {
      show(categoryStatus, errorBox(Object.assign(new Error(`the tables are not JSON: ${err.message}`), { details: { field: "tables" } })));
      return;
    }
    try {
      const made = await call("tenants.create_category", { name: categoryName.value.trim(), description: description.value, tables: parsed });
      toast(`Created category ${made.name}`);
      show(categoryStatus);
      categoryName.value = "";
      description.value = "";
      await loadCategories();
    } catch (err) { show(categoryStatus, errorBox(err)); }
  });

  // a new tenant that starts with a category's tables (schema.provision_tenant)
  const provisionStatus = h("div", { "aria-live": "polite" });
  const provisionName = h("input", { name: "provision-name", required: true, autocomplete: "off" });
  const fromCategory = h("form", { class: "card inline", "aria-label": "Start a tenant from a category", hidden: true },
    field("Tenant name", provisionName), field("Category", h("select", { name: "provision-category" })),
    provisionStatus, h("button", { type: "submit" }, "Create from category"));
  fromCategory.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const made = await call("schema.provision_tenant", {
        tenant: provisionName.value.trim(), category: fromCategory.querySelector("select").value,
      });
      toast(`Created ${made.name}`);
      show(provisionStatus);
      fromCategory.reset();
      await load();
    } catch (err) { show(provisionStatus, errorBox(err)); }
  });

  show(main, h("h1", {}, "Tenants"), form, list,
    h("section", { "aria-labelledby": "categories" }, h("h2", { id: "categories" }, "Categories"),
      categoryList, fromCategory, categoryForm));
  await Promise.all([load(), loadCategories()]);
}
