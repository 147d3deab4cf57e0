// Policies: the tenant's stored policies, an editor for a policy set in YAML (or JSON) whose
// problems the server names one by one, a check of a principal's actions on a resource, and
// Cerbos test suites run by the server against the stored policies (nothing stored).
// An opened policy is shown as JSON (YAML is a superset of JSON): the page carries no YAML
// writer, to stay small; the server parses either.
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

const EXAMPLE = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: document
  version: default
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
`;

const EXAMPLE_SUITE = `name: document suite
principals:
  ann: {id: ann, roles: [user]}
resources:
  doc: {kind: document, id: "1"}
tests:
  - name: users view documents and edit none
    input: {principals: [ann], resources: [doc], actions: [view, edit]}
    expected:
      - principal: ann
        resource: doc
        actions: {view: EFFECT_ALLOW, edit: EFFECT_DENY}
`;

const MARKS = { passed: "✓ passed", failed: "✗ failed", skipped: "– skipped" };
const effect = (value) => ({ EFFECT_ALLOW: "allow", EFFECT_DENY: "deny" })[value] || value;

function testsCard() {
  const suite = h("textarea", { name: "test-suite", rows: 14, spellcheck: "false", class: "code", value: EXAMPLE_SUITE });
  const outcome = h("div", { "aria-live": "polite" });
  const card = h("form", { class: "card", "aria-label": "Run policy tests" }, h("h2", {}, "Run tests"),
    field("Test suite (one *_test.yaml document)", suite), outcome, h("button", { type: "submit" }, "Run tests"));
  card.addEventListener("submit", async (e) => {
    e.preventDefault();
    show(outcome, h("p", {}, "Running…"));
    try {
      const got = await call("policies.test", { suite: suite.value });
      const rows = got.cases.map((c) => ({
        ...c, expected: effect(c.expected), actual: effect(c.actual),
        result: MARKS[c.status] + (c.problems.length ? ` (${c.problems.join("; ")})` : ""),
      }));
      show(outcome,
        h("p", { role: "status" }, `${got.passed} passed, ${got.failed} failed, ${got.skipped} skipped, ${got.errors.length} could not run`),
        got.errors.length ? h("ul", { class: "error", "aria-label": "Tests that could not run" },
          got.errors.map((err) => h("li", {}, h("code", {}, err.where), ": ", err.message))) : null,
        rows.length ? grid(["suite", "test", "principal", "resource", "action", "expected", "actual", "result"], rows,
          { caption: "Test cases" }) : null);
    } catch (err) { show(outcome, errorBox(err)); }
  });
  return card;
}

function problems(err) {
  const issues = (err && err.details && err.details.issues) || [];
  if (!issues.length) return errorBox(err);
  return h("div", { class: "error", role: "alert" }, h("strong", {}, "The server refused the policies:"),
    h("ul", { "aria-label": "Policy problems" }, issues.map((i) =>
      h("li", {}, h("code", {}, i.policy), i.path ? [" at ", h("code", {}, i.path)] : null, ": ", i.message))));
}

export async function render(main, { me }) {
  const canAdmin = allows(me.scopes, "policies:admin");
  const canCheck = allows(me.scopes, "policy:check");
  const canRead = allows(me.scopes, "policies:read");
  const list = h("div", {}, "Loading policies…");
  const source = h("textarea", { name: "policy-source", rows: 14, spellcheck: "false", class: "code", value: EXAMPLE });
  const status = h("div", { "aria-live": "polite" });

  async function open(key) {
    try {
      const policy = await call("policies.get", { key });
      source.value = JSON.stringify(policy.document, null, 2);
      show(status, h("p", {}, `Editing ${key} (shown as JSON; YAML works too).`));
      source.focus();
    } catch (err) { show(status, errorBox(err)); }
  }

  async function load() {
    try {
      const all = await call("policies.list", {});
      show(list, h("h2", {}, `Stored policies (revision ${all.revision})`), all.policies.length
        ? grid(["key", "kind", "name", "version"], all.policies, {
          caption: `${all.policies.length} policies`,
          actions: (p) => [
            button("Open", () => open(p.key), { "aria-label": `Open ${p.key}` }),
            canAdmin ? button("Delete", async () => {
              if (!window.confirm(`Delete the policy ${p.key}?`)) return;
              try { await call("policies.delete", { keys: [p.key] }); toast(`Deleted ${p.key}`); await load(); } catch (err) { show(status, problems(err)); }
            }, { class: "danger", "aria-label": `Delete ${p.key}` }) : null,
          ],
        })
        : empty("No policies yet: every policy check is denied until one allows it."));
    } catch (err) { show(list, errorBox(err)); }
  }

  const editor = h("form", { class: "card", "aria-label": "Edit policies" }, h("h2", {}, "Edit"),
    field("Policy (YAML or JSON; several documents split by ---)", source), status,
    h("button", { type: "submit" }, "Save policies"));
  editor.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const got = await call("policies.put", { policies: [source.value] });
      const changed = [...got.created, ...got.updated];
      show(status, h("p", { role: "status" }, changed.length
        ? `Saved (revision ${got.revision}): ${changed.join(", ")}` : "Nothing changed: the server holds these policies already."));
      await load();
    } catch (err) { show(status, problems(err)); }
  });

  const principalId = h("input", { name: "principal-id", value: me.username });
  const roles = h("input", { name: "principal-roles", value: "user" });
  const kind = h("input", { name: "resource-kind", required: true, value: "document" });
  const resourceId = h("input", { name: "resource-id", value: "1" });
  const attr = h("textarea", { name: "resource-attr", rows: 2, value: "{}" });
  const actions = h("input", { name: "check-actions", required: true, value: "view, edit" });
  const outcome = h("div", { "aria-live": "polite" });
  const check = h("form", { class: "card", "aria-label": "Check a policy" }, h("h2", {}, "Run a check"),
    field("Principal id", principalId), field("Principal roles (comma-separated)", roles),
    field("Resource kind", kind), field("Resource id", resourceId), field("Resource attributes (JSON)", attr),
    field("Actions (comma-separated)", actions), outcome, h("button", { type: "submit" }, "Check"));
  const split = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
  check.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      let parsed;
      try { parsed = attr.value.trim() ? JSON.parse(attr.value) : {}; } catch { throw new Error("the resource attributes are not JSON: write an object"); }
      const got = await call("policy.check", {
        principal: { id: principalId.value.trim(), roles: split(roles.value) },
        resources: [{ resource: { kind: kind.value.trim(), id: resourceId.value.trim(), attr: parsed }, actions: split(actions.value) }],
      });
      const result = got.results[0];
      show(outcome, grid(["action", "effect", "policy"], Object.entries(result.actions).map(([action, effect]) => ({
        action, effect: effect === "EFFECT_ALLOW" ? "allow" : "deny",
        policy: ((result.meta && result.meta.actions && result.meta.actions[action]) || {}).matchedPolicy || "",
      })), { caption: `Check of ${result.resource.kind} ${result.resource.id}` }));
    } catch (err) { show(outcome, errorBox(err)); }
  });
  show(main, h("h1", {}, "Policies"), canAdmin ? editor : null, list, canCheck ? check : null,
    canRead ? testsCard() : null);
  await load();
}
