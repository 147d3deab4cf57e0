// Mail: the templates (the built-in ones and the tenant's own), an editor with a preview
// filled from sample data (mail.preview renders it on the server, as sending would), and the
// outbox. The HTML preview is an iframe sandboxed without allow-scripts and given its markup
// through srcdoc: a template's HTML never runs script in the dashboard's origin.
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

function when(value) {
  return value ? new Date(value).toLocaleString() : "";
}

function parseModel(text) {
  if (!text.trim()) return {};
  let model;
  try { model = JSON.parse(text); } catch { throw new Error("the sample data is not JSON: write an object, as {\"name\": \"Ann\"}"); }
  if (!model || typeof model !== "object" || Array.isArray(model)) throw new Error("the sample data must be a JSON object");
  return model;
}

export async function render(main, { me }) {
  const canAdmin = allows(me.scopes, "mail:admin");
  const templates = h("div", {}, "Loading templates…");
  const outbox = h("div", {}, "Loading the outbox…");

  const alias = h("input", { name: "alias", required: true, autocomplete: "off" });
  const subject = h("input", { name: "subject", required: true });
  const text = h("textarea", { name: "text", rows: 6, required: true, class: "code" });
  const html = h("textarea", { name: "html", rows: 6, class: "code" });
  const model = h("textarea", { name: "model", rows: 3, class: "code", value: "{\"name\": \"Ann\"}" });
  const status = h("div", { "aria-live": "polite" });
  const preview = h("div", { "aria-live": "polite" });
  const revert = button("Delete template", () => remove(), { class: "danger", hidden: true });
  const editor = h("form", { class: "card", "aria-label": "Edit a template" }, h("h2", {}, "Template"),
    field("Alias", alias, "Letters, digits, _ and -; a built-in alias replaces the built-in template"),
    field("Subject", subject), field("Text body", text), field("HTML body (optional)", html),
    field("Sample data (JSON)", model, "The model a sender would pass: {{ name }} reads model.name"),
    status,
    button("Preview", () => showPreview()),
    canAdmin ? h("button", { type: "submit" }, "Save template") : null,
    canAdmin ? revert : null);

  const draft = () => ({ alias: alias.value.trim(), subject: subject.value, text: text.value, html: html.value.trim() ? html.value : null });

  async function showPreview() {
    show(status);
    try {
      const filled = await call("mail.preview", { template: draft(), model: parseModel(model.value) });
      show(preview, h("section", { class: "card", "aria-label": "Preview" }, h("h2", {}, "Preview"),
        h("p", {}, h("strong", {}, "Subject: "), filled.subject),
        h("h3", {}, "Text"), h("pre", { class: "mail-text" }, filled.text),
        filled.html
          ? [h("h3", {}, "HTML"),
            // no allow-scripts and no allow-same-origin: an opaque origin that runs nothing
            h("iframe", { sandbox: "", srcdoc: filled.html, title: "HTML preview", class: "mail-html", referrerpolicy: "no-referrer" })]
          : h("p", { class: "current" }, "No HTML body: the message is plain text.")));
    } catch (err) { show(status, errorBox(err)); }
  }

  async function remove() {
    const name = alias.value.trim();
    if (!window.confirm(`Delete the template ${name}? A built-in alias goes back to the built-in template.`)) return;
    try {
      await call("mail.delete_template", { alias: name });
      toast(`Deleted ${name}`);
      await loadTemplates();
      revert.hidden = true;
    } catch (err) { show(status, errorBox(err)); }
  }

  function edit(t) {
    alias.value = t.alias;
    subject.value = t.subject;
    text.value = t.text;
    html.value = t.html || "";
    revert.hidden = t.builtin;
    show(status);
    show(preview);
    alias.focus();
  }

  editor.addEventListener("submit", async (e) => {
    e.preventDefault();
    show(status);
    try {
      const saved = await call("mail.put_template", draft());
      toast(`Saved ${saved.alias}`);
      revert.hidden = false;
      await loadTemplates();
    } catch (err) { show(status, errorBox(err)); }
  });

  async function loadTemplates() {
    try {
      const all = await call("mail.list_templates");
      show(templates, grid(["alias", "subject", "kind", "updated"], all.map((t) => ({
        ...t, kind: t.builtin ? "built-in" : "own", updated: when(t.updated_at),
      })), {
        caption: `${all.length} templates`,
        actions: (t) => button(canAdmin ? "Edit" : "Open", () => edit(t), { "aria-label": `${canAdmin ? "Edit" : "Open"} ${t.alias}` }),
      }));
    } catch (err) { show(templates, errorBox(err)); }
  }

  const to = h("input", { type: "email", name: "outbox-to", autocomplete: "off" });
  const outboxForm = h("form", { class: "builder", "aria-label": "Outbox filter" },
    field("Recipient", to), h("button", { type: "submit" }, "Filter"));
  outboxForm.addEventListener("submit", (e) => { e.preventDefault(); loadOutbox(); });
  const message = h("div", { "aria-live": "polite" });

  async function loadOutbox() {
    try {
      const sent = await call("mail.outbox", { limit: 100, ...(to.value.trim() ? { to: to.value.trim() } : {}) });
      show(outbox, sent.length
        ? grid(["at", "template", "to", "subject", "status", "error"], sent.map((m) => ({
          ...m, at: when(m.at), to: m.to.join(", "),
        })), {
          caption: `${sent.length} messages, newest first`,
          actions: (m) => button("Show", () => show(message, h("section", { class: "card", "aria-label": `Message ${m.id}` },
            h("h2", {}, m.subject), h("p", { class: "current" }, `To ${m.to} · ${m.status}`),
            h("pre", { class: "mail-text" }, m.text))), { "aria-label": `Show message ${m.subject}` }),
        })
        : empty(to.value.trim() ? "No message was sent to this address." : "No mail sent yet."));
    } catch (err) { show(outbox, errorBox(err)); }
  }

  show(main, h("h1", {}, "Mail"), h("h2", {}, "Templates"), templates, editor, preview,
    h("h2", {}, "Outbox"), outboxForm, outbox, message);
  await Promise.all([loadTemplates(), loadOutbox()]);
}
