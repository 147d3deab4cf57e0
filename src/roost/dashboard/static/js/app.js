// The dashboard's shell: who is signed in, the navigation their scopes allow, and a router
// over location.hash (#/tables, #/tables/<name>, #/users, #/files/<bucket>, #/logs, #/kv,
// #/queues/<name>, #/secrets, #/functions, #/triggers, #/policies, #/tenants, #/usage). Each page
// is its own module, loaded when first opened.
import { ApiError, allows, call, signOut } from "./api.js";
import { button, errorBox, h, show } from "./ui.js";
import { signInPage } from "./pages/signin.js";

const PAGES = [
  { path: "tables", label: "Tables", scope: "database:read", load: () => import("./pages/tables.js") },
  { path: "audit", label: "Audit log", scope: "audit:read", load: () => import("./pages/audit.js") },
  { path: "users", label: "Users & keys", scope: "users:read", also: ["roles:read", "api_keys:read"],
    load: () => import("./pages/users.js") },
  { path: "files", label: "Files", scope: "storage:read", load: () => import("./pages/files.js") },
  { path: "logs", label: "Logs", scope: "logs:read", load: () => import("./pages/logs.js") },
  { path: "kv", label: "KV store", scope: "kv:read", load: () => import("./pages/kv.js") },
  { path: "queues", label: "Queues", scope: "queue:read", load: () => import("./pages/queues.js") },
  { path: "secrets", label: "Secrets", scope: "secrets:read", load: () => import("./pages/secrets.js") },
  { path: "functions", label: "Functions", scope: "functions:read", load: () => import("./pages/functions.js") },
  { path: "triggers", label: "Triggers", scope: "triggers:read", load: () => import("./pages/triggers.js") },
  { path: "policies", label: "Policies", scope: "policies:read", also: ["policy:check"],
    load: () => import("./pages/policies.js") },
  // platform administrators: users of the default tenant with tenants:admin (docs/security.md)
  { path: "tenants", label: "Tenants", scope: "tenants:admin", home: true, load: () => import("./pages/tenants.js") },
  { path: "usage", label: "Usage", scope: "usage:read", load: () => import("./pages/usage.js") },
  // messaging and administration: #/streams/<room>, #/pubsub, #/mail, #/settings
  { path: "streams", label: "Streams", scope: "stream:read", load: () => import("./pages/streams.js") },
  { path: "pubsub", label: "Pub/sub", scope: "pubsub:read", also: ["pubsub:write"], load: () => import("./pages/pubsub.js") },
  { path: "mail", label: "Mail", scope: "mail:read", load: () => import("./pages/mail.js") },
  { path: "settings", label: "Settings & pages", scope: "settings:write", also: ["pages:read"],
    load: () => import("./pages/settings.js") },
];

const root = document.getElementById("app");
let me = null;
let leave = null; // the open page's clean-up (a live tail's timer, ...)

function visible(page) {
  if (page.home && me.tenant !== "default") return false;
  return [page.scope, ...(page.also || [])].some((s) => allows(me.scopes, s));
}

async function start() {
  try {
    me = await call("auth.whoami");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      me = null;
      show(root, signInPage(() => start()));
      return;
    }
    show(root, h("main", { id: "main" }, errorBox(err)));
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}

function shell(pages, current) {
  // the tenants this person may switch to (users.memberships), once the header is drawn
  const switcher = h("span", { class: "tenant-switch" });
  import("./switcher.js").then((m) => m.mount(switcher, me)).catch(() => {});
  const main = h("main", { id: "main", tabindex: "-1" });
  const nav = h("nav", { "aria-label": "Dashboard" }, h("ul", {},
    pages.map((p) => h("li", {}, h("a", {
      href: `#/${p.path}`, "aria-current": p.path === current ? "page" : false,
    }, p.label)))));
  const header = h("header", {},
    h("span", { class: "brand" }, "Roost"),
    h("span", { class: "who" }, `${me.username} · ${me.tenant}`),
    switcher,
    button("Sign out", async () => {
      try { await signOut(); } finally { window.location.hash = ""; window.location.reload(); }
    }));
  show(root, header, h("div", { class: "layout" }, nav, main));
  return main;
}

async function route() {
  if (leave) { leave(); leave = null; }
  const [path, ...rest] = window.location.hash.replace(/^#\/?/, "").split("/");
  const pages = PAGES.filter(visible);
  if (!pages.length) {
    const main = shell(pages, "");
    show(main, h("h1", {}, "Nothing to show"), h("p", { class: "empty" },
      "Your account holds no scope that any page of the dashboard needs. Ask an " +
      "administrator to give you a role (for example one with database:read)."));
    return;
  }
  const page = pages.find((p) => p.path === path) || pages[0];
  const main = shell(pages, page.path);
  try {
    const module = await page.load();
    leave = (await module.render(main, { me, args: rest.map(decodeURIComponent) })) || null;
  } catch (err) {
    show(main, errorBox(err));
  }
}

start();
