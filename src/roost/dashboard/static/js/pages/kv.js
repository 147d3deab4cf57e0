// The KV browser: keys by prefix (a page at a time), a key's value and ttl, set and delete.
import { allows, call } from "../api.js";
import { button, empty, errorBox, field, h, sequence, show, toast } from "../ui.js";

export async function render(main, { me }) {
  const canWrite = allows(me.scopes, "kv:write");
  const prefix = h("input", { type: "search", name: "prefix" });
  const list = h("ul", { class: "keys", "aria-label": "Keys" });
  const shown = h("div", { "aria-live": "polite" });
  const status = h("div", { "aria-live": "polite" });
  const more = button("More keys", () => scan(cursor), { hidden: true });
  let cursor = null;

  async function open(key) {
    try {
      const got = await call("kv.get", { key });
      show(shown, h("div", { class: "card" }, h("h2", {}, key),
        got.found ? [h("pre", {}, JSON.stringify(got.value, null, 2)),
          h("p", {}, got.ttl === -1 ? "Never expires." : `Expires in ${got.ttl} s.`)]
          : empty("This key is gone (it expired or was deleted)."),
        canWrite && got.found ? button("Delete key", async () => {
          if (!window.confirm(`Delete the key ${key}?`)) return;
          try { await call("kv.delete", { keys: [key] }); toast("Deleted"); show(shown); scan(); } catch (err) { show(shown, errorBox(err)); }
        }, { class: "danger" }) : null));
    } catch (err) { show(shown, errorBox(err)); }
  }

  const scans = sequence();  // a prefix typed letter by letter: the newest scan shows
  async function scan(from = null) {
    const mine = scans.next();
    try {
      const page = await call("kv.scan", { prefix: prefix.value, count: 100, ...(from ? { cursor: from } : {}) });
      if (!scans.isLatest(mine)) return;
      if (!from) list.replaceChildren();
      list.append(...page.keys.map((k) => h("li", {}, button(k, () => open(k), { class: "link" }))));
      cursor = page.cursor;
      more.hidden = !page.has_more;
      show(status, list.children.length ? null : empty(prefix.value ? "No key starts with this prefix." : "The store holds no keys."));
    } catch (err) { if (scans.isLatest(mine)) show(status, errorBox(err)); }
  }
  prefix.addEventListener("input", () => scan());

  const key = h("input", { name: "key", required: true });
  const value = h("textarea", { name: "value", rows: 2, required: true });
  const ttl = h("input", { name: "ttl", type: "number", min: "1" });
  const setStatus = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card inline", "aria-label": "Set a key" },
    field("Key", key), field("Value (JSON)", value), field("TTL in seconds (optional)", ttl), setStatus,
    h("button", { type: "submit" }, "Set"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      let parsed;
      try { parsed = JSON.parse(value.value); } catch { throw new Error("the value is not JSON: quote text, as \"hello\""); }
      await call("kv.set", { key: key.value, value: parsed, ...(ttl.value ? { ttl: Number(ttl.value) } : {}) });
      toast(`Set ${key.value}`);
      open(key.value);
      scan();
      form.reset();
    } catch (err) { show(setStatus, errorBox(err)); }
  });
  show(main, h("h1", {}, "KV store"), canWrite ? form : null, field("Key prefix", prefix),
    status, h("div", { class: "split" }, h("div", {}, list, more), shown));
  await scan();
}
