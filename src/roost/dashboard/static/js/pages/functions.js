// Functions: the tenant's functions, deploy a code string, invoke one with JSON params and see
// its answer, and the recent invocations with their logs (fetched when asked for).
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

const EXAMPLE = "def main(params, user_data):\n    return {\"hello\": params.get(\"name\", \"world\")}\n";

function when(value) {
  return value ? new Date(value).toLocaleString() : null;
}

export async function render(main, { me }) {
  const canDeploy = allows(me.scopes, "functions:deploy");
  const canRun = allows(me.scopes, "functions:execute");
  const list = h("div", {}, "Loading functions…");
  const runs = h("div", {});
  const detail = h("div", { "aria-live": "polite" });

  async function logsOf(id) {
    try {
      const got = (await call("functions.get_result", { id })).data;
      show(detail, h("section", { class: "card", "aria-label": `Invocation ${id}` },
        h("h2", {}, `Invocation of ${got.function} (v${got.version}): ${got.status}`),
        got.error ? h("div", { class: "error" }, h("strong", {}, "Error: "), got.error) : null,
        got.traceback ? h("pre", {}, got.traceback) : null,
        h("h3", {}, "Result"), h("pre", { class: "result" }, JSON.stringify(got.result, null, 2)),
        h("h3", {}, "Logs"), got.logs.length ? h("pre", { class: "logs" }, got.logs.join("\n"))
          : empty("This run printed nothing.")));
    } catch (err) { show(detail, errorBox(err)); }
  }

  async function loadRuns() {
    try {
      const page = await call("functions.invocations", { limit: 20 });
      show(runs, h("h2", {}, "Recent invocations"), page.results.length
        ? grid(["function", "version", "status", "mode", "duration_ms", "created"],
          page.results.map((r) => ({ ...r, created: when(r.created_at) })), {
            caption: `${page.count} invocations`,
            actions: canRun ? (r) => button("Logs", () => logsOf(r.id), { "aria-label": `Logs of ${r.id}` }) : null,
          })
        : empty("No invocations yet."));
    } catch (err) { show(runs, errorBox(err)); }
  }

  const target = h("select", { name: "invoke-name", required: true });
  const params = h("textarea", { name: "invoke-params", rows: 3, value: "{}" });
  const answer = h("div", { "aria-live": "polite" });
  const invoke = h("form", { class: "card", "aria-label": "Invoke a function" },
    h("h2", {}, "Invoke"), field("Function", target), field("Params (JSON)", params), answer,
    h("button", { type: "submit" }, "Invoke"));
  invoke.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      let parsed;
      try { parsed = params.value.trim() ? JSON.parse(params.value) : null; } catch {
        throw new Error("the params are not JSON: write an object, as {\"name\": \"ann\"}");
      }
      show(answer, h("p", { role: "status" }, "Running…"));
      const got = await call("functions.execute", { name: target.value, params: parsed });
      show(answer, h("h3", {}, `Answer (${got.invocation.status}, ${got.invocation.duration_ms ?? "?"} ms)`),
        h("pre", { class: "result" }, JSON.stringify(got.data, null, 2)));
      loadRuns();
    } catch (err) { show(answer, errorBox(err)); }
  });

  async function load() {
    try {
      const page = await call("functions.list", { limit: 100 });
      target.replaceChildren(...page.results.map((f) => h("option", { value: f.name }, f.name)));
      invoke.hidden = !canRun || !page.results.length;
      show(list, page.results.length
        ? grid(["name", "version", "kind", "execution_mode", "timeout", "description", "updated"],
          page.results.map((f) => ({ ...f, updated: when(f.updated_at) })), { caption: `${page.count} functions` })
        : empty(canDeploy ? "No functions yet: deploy one above." : "No functions yet."));
    } catch (err) { show(list, errorBox(err)); }
  }

  const name = h("input", { name: "function-name", required: true, autocomplete: "off" });
  const code = h("textarea", { name: "function-code", rows: 8, required: true, spellcheck: "false", value: EXAMPLE, class: "code" });
  const description = h("input", { name: "function-description" });
  const status = h("div", { "aria-live": "polite" });
  const deploy = h("form", { class: "card", "aria-label": "Deploy a function" },
    h("h2", {}, "Deploy"), field("Function name", name), field("Code (Python)", code,
      "A main(params, user_data) function; deploying a name again makes a new version."),
    field("Description", description), status, h("button", { type: "submit" }, "Deploy"));
  deploy.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const got = await call("functions.deploy", { name: name.value.trim(), code: code.value, description: description.value });
      toast(`Deployed ${got.name} v${got.version}`);
      show(status);
      await load();
      target.value = got.name;
    } catch (err) { show(status, errorBox(err)); }
  });
  show(main, h("h1", {}, "Functions"), canDeploy ? deploy : null, list, canRun ? invoke : null, runs, detail);
  await load();
  await loadRuns();
}
