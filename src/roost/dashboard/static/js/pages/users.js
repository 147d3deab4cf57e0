// Users, roles, scopes and API keys: each section shows only when the principal's scopes
// allow it.
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, grid, h, sequence, show, toast } from "../ui.js";

const csv = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

export async function render(main, { me }) {
  const can = (scope) => allows(me.scopes, scope);
  show(main, h("h1", {}, "Users & keys"),
    can("users:read") ? usersSection(can("users:write")) : null,
    can("roles:read") ? rolesSection(can("roles:write")) : null,
    can("roles:read") ? scopesSection(can("roles:write")) : null,
    can("api_keys:read") ? keysSection(can("api_keys:write")) : null);
}

function section(id, title, ...children) {
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function form(label, inputs, submitText, onSubmit) {
  const status = h("div", { "aria-live": "polite" });
  const el = h("form", { class: "card inline", "aria-label": label }, inputs, status,
    h("button", { type: "submit" }, submitText));
  el.addEventListener("submit", async (e) => {
    e.preventDefault();
    show(status);
    try {
      await onSubmit(status);
      el.reset();
    } catch (err) {
      show(status, errorBox(err));
    }
  });
  return el;
}

function usersSection(canWrite) {
  const list = h("div", {}, "Loading users…");
  const search = h("input", { type: "search", name: "search" });
  const loads = sequence();  // a search typed letter by letter: the newest answer shows
  const load = async () => {
    const mine = loads.next();
    try {
      const page = await call("users.list_users", search.value ? { search: search.value } : {});
      if (!loads.isLatest(mine)) return;
      show(list, page.items.length
        ? grid(["username", "email", "roles", "is_active", "last_login"], page.items.map((u) => ({
          ...u, roles: u.roles.join(", "),
        })), { caption: `${page.total} users` })
        : empty("No user matches."));
    } catch (err) { if (loads.isLatest(mine)) show(list, errorBox(err)); }
  };
  search.addEventListener("input", load);
  load();
  const username = h("input", { name: "username", required: true, autocomplete: "off" });
  const email = h("input", { name: "email", type: "email", autocomplete: "off" });
  const password = h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" });
  const roles = h("input", { name: "roles", placeholder: "member" });
  return section("users", "Users", field("Search users", search), list,
    canWrite ? form("New user", [field("Username", username), field("Email", email),
      field("Password", password), field("Roles (comma-separated)", roles)], "Create user",
    async () => {
      const params = { username: username.value, password: password.value, roles: csv(roles.value) };
      if (email.value) params.email = email.value;
      const user = await call("users.create_user", params);
      toast(`User ${user.username} created`);
      load();
    }) : null);
}

function rolesSection(canWrite) {
  const list = h("div", {}, "Loading roles…");
  const status = h("div", { "aria-live": "polite" });
  const load = () => call("roles.list").then((roles) => show(list, grid(
    ["name", "scopes", "description", "builtin"],
    roles.map((r) => ({ ...r, scopes: r.scopes.join(" ") })), {
      caption: "Roles",
      actions: canWrite ? (r) => r.builtin ? null : button("Delete", async () => {
        if (!window.confirm(`Delete the role ${r.name}? Users holding it lose its scopes.`)) return;
        try { await call("roles.delete", { name: r.name }); toast(`Role ${r.name} deleted`); load(); } catch (err) { show(status, errorBox(err)); }
      }, { class: "danger", "aria-label": `Delete role ${r.name}` }) : null,
    })))
    .catch((err) => show(list, errorBox(err)));
  load();
  const name = h("input", { name: "role-name", required: true, autocomplete: "off" });
  const scopes = h("input", { name: "role-scopes", placeholder: "database:read, kv:*" });
  const description = h("input", { name: "role-description", autocomplete: "off" });
  return section("roles", "Roles", list, status,
    canWrite ? form("New role", [field("Role name", name), field("Role scopes (comma-separated)", scopes,
      "At most the scopes you hold yourself."), field("Role description", description)], "Create role",
    async () => {
      const created = await call("roles.create", { name: name.value.trim(), scopes: csv(scopes.value), description: description.value });
      toast(`Role ${created.name} created`);
      load();
    }) : null);
}

// The scopes there are to give: the platform's (built in, not deletable) and the tenant's own.
function scopesSection(canWrite) {
  const list = h("div", {}, "Loading scopes…");
  const status = h("div", { "aria-live": "polite" });
  const load = async () => {
    try {
      const scopes = await call("scopes.list");
      show(list, grid(["name", "description", "kind"], scopes.map((s) => ({
        ...s, kind: s.builtin ? "built in" : "this tenant's",
      })), {
        caption: `${scopes.length} scopes`,
        actions: canWrite ? (s) => s.builtin ? null : button("Delete", async () => {
          if (!window.confirm(`Delete the scope ${s.name}? Roles that name it keep the name.`)) return;
          try { await call("scopes.delete", { name: s.name }); toast(`Scope ${s.name} deleted`); load(); } catch (err) { show(status, errorBox(err)); }
        }, { class: "danger", "aria-label": `Delete scope ${s.name}` }) : null,
      }));
    } catch (err) { show(list, errorBox(err)); }
  };
  load();
  const name = h("input", { name: "scope-name", required: true, placeholder: "reports:read", autocomplete: "off" });
  const description = h("input", { name: "scope-description", autocomplete: "off" });
  return section("scopes", "Scopes", list, status,
    canWrite ? form("New scope", [field("Scope name", name, "app:action, lowercase letters and _"),
      field("Description", description)], "Create scope", async () => {
      const created = await call("scopes.create", { name: name.value.trim(), description: description.value });
      toast(`Scope ${created.name} created`);
      load();
    }) : null);
}

function keysSection(canWrite) {
  const list = h("div", {}, "Loading API keys…");
  const secret = h("div", { "aria-live": "polite" });
  const load = async () => {
    try {
      const keys = await call("api_keys.list");
      show(list, keys.length
        ? grid(["name", "prefix", "scopes", "expires_at", "last_used_at", "revoked"],
          keys.map((k) => ({ ...k, scopes: k.scopes.join(" ") })), {
            caption: "Your API keys",
            actions: canWrite ? (k) => k.revoked ? null : button("Revoke", async () => {
              if (!window.confirm(`Revoke the key ${k.name}?`)) return;
              try { await call("api_keys.revoke", { id: k.id }); load(); } catch (err) { show(secret, errorBox(err)); }
            }, { class: "danger", "aria-label": `Revoke key ${k.name}` }) : null,
          })
        : empty("You have no API keys yet."));
    } catch (err) { show(list, errorBox(err)); }
  };
  load();
  const name = h("input", { name: "key-name", required: true });
  const scopes = h("input", { name: "key-scopes", placeholder: "database:read, kv:*" });
  return section("keys", "API keys", list, secret,
    canWrite ? form("New API key", [field("Key name", name), field("Scopes (comma-separated)", scopes,
      "At most the scopes you hold yourself.")], "Create key", async () => {
      const created = await call("api_keys.create", { name: name.value, scopes: csv(scopes.value) });
      show(secret, h("div", { class: "secret", role: "status" },
        h("p", {}, "Copy this key now: it is shown once."),
        h("code", { class: "key" }, created.key)));
      load();
    }) : null);
}
