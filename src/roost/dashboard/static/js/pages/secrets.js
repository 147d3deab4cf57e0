// Secrets: names, types and versions; set a value; a value is fetched and shown only when
// asked for, and hidden again on the next click.
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

export async function render(main, { me }) {
  const canWrite = allows(me.scopes, "secrets:write");
  const list = h("div", {}, "Loading secrets…");
  const detail = h("div", { "aria-live": "polite" });

  async function reveal(key, where) {
    try {
      const secret = await call("secrets.get", { key });
      show(where, h("code", { class: "key" }, secret.value), " ",
        button("Hide", () => show(where, button("Show value", () => reveal(key, where), { "aria-label": `Show value of ${key}` }))));
    } catch (err) { show(where, errorBox(err)); }
  }

  async function versions(key) {
    try {
      const all = await call("secrets.versions", { key });
      show(detail, h("section", { class: "card", "aria-label": `Versions of ${key}` }, h("h2", {}, `Versions of ${key}`),
        grid(["version", "comment", "created_at", "created_by"], all)));
    } catch (err) { show(detail, errorBox(err)); }
  }

  async function load() {
    try {
      const page = await call("secrets.list", { page_size: 100 });
      show(list, page.results.length
        ? grid(["key", "secret_type", "version", "tags", "comment"], page.results.map((s) => ({ ...s, tags: s.tags.join(" ") })), {
          caption: "Secrets (values hidden)",
          actions: (s) => {
            const where = h("span", {});
            show(where, button("Show value", () => reveal(s.key, where), { "aria-label": `Show value of ${s.key}` }));
            return [where, button("Versions", () => versions(s.key), { "aria-label": `Versions of ${s.key}` })];
          },
        })
        : empty("No secrets yet."));
    } catch (err) { show(list, errorBox(err)); }
  }

  const key = h("input", { name: "secret-key", required: true, autocomplete: "off" });
  const value = h("input", { name: "secret-value", type: "password", required: true, autocomplete: "off" });
  const comment = h("input", { name: "secret-comment" });
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card inline", "aria-label": "Set a secret" },
    field("Name", key), field("Value", value), field("Comment", comment), status,
    h("button", { type: "submit" }, "Set secret"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      // a secret of that name gets a new version
      await call("secrets.set", { key: key.value, value: value.value, comment: comment.value });
      toast(`Secret ${key.value} saved`);
      form.reset();
      load();
    } catch (err) { show(status, errorBox(err)); }
  });
  show(main, h("h1", {}, "Secrets"), canWrite ? form : null, list, detail);
  await load();
}
