// Logs: filters (level and above, category, text), older pages, and a live tail: the
// logs.tail subscription on the realtime WebSocket, with the same filters.
import { call, subscribe } from "../api.js";
import { button, empty, errorBox, field, h, show } from "../ui.js";

const LEVELS = ["debug", "info", "notice", "warn", "error", "critical"];

export async function render(main) {
  const level = h("select", { name: "level" }, h("option", { value: "" }, "any"),
    LEVELS.map((l) => h("option", {}, l)));
  const category = h("input", { name: "category", placeholder: "app" });
  const search = h("input", { type: "search", name: "search" });
  const tail = h("input", { type: "checkbox", name: "tail", id: "tail" });
  const status = h("div", { "aria-live": "polite" });
  const live = h("p", { class: "live", role: "status" });
  const body = h("tbody", {});
  const list = h("div", { class: "scroll" }, h("table", { class: "logs" },
    h("caption", {}, "Log entries, newest first"),
    h("thead", {}, h("tr", {}, ["at", "level", "category", "user", "message"].map((c) => h("th", { scope: "col" }, c)))),
    body));
  const emptyNote = h("div", {});
  const more = button("Older entries", () => load(cursor), { hidden: true });
  let cursor = null;
  let stop = null;

  const filters = () => {
    const q = { limit: 100 };
    if (level.value) q.level = level.value;
    if (category.value.trim()) q.category = category.value.trim();
    if (search.value.trim()) q.search = search.value.trim();
    return q;
  };
  const row = (e) => h("tr", { class: `level-${e.level}`, "data-id": e.id },
    h("td", {}, new Date(e.at).toLocaleString()), h("td", {}, e.level), h("td", {}, e.category),
    h("td", {}, e.username || ""), h("td", { class: "message" }, e.message));

  async function load(from = null) {
    try {
      const page = await call("logs.query", from ? { ...filters(), cursor: from } : filters());
      if (!from) body.replaceChildren();
      body.append(...page.entries.map(row));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      show(emptyNote, body.children.length ? null : empty("No log entry matches these filters."));
      show(status);
    } catch (err) { show(status, errorBox(err)); }
  }

  // entries already shown (the tail may deliver one the first page held too)
  const shownIds = () => new Set([...body.children].map((tr) => Number(tr.dataset.id)));

  function startTail() {
    const params = filters();
    delete params.limit;
    const seen = shownIds();
    show(live, "Connecting the live tail…");
    stop = subscribe("logs.tail", params, {
      onReady: () => show(live, "Live: new entries appear at the top."),
      onEvent: (entry) => {
        if (seen.has(entry.id)) return;
        seen.add(entry.id);
        body.prepend(row(entry));
        show(emptyNote);
      },
      onError: (err) => {
        tail.checked = false;
        stop = null;
        show(live);
        show(status, errorBox(err));
      },
    });
  }

  function stopTail() {
    if (stop) stop();
    stop = null;
    show(live);
  }

  tail.addEventListener("change", () => {
    stopTail();
    show(status);
    if (tail.checked) startTail();
  });
  const form = h("form", { class: "builder", "aria-label": "Log filters" },
    field("Level (and above)", level), field("Category", category), field("Message contains", search),
    h("button", { type: "submit" }, "Apply"),
    h("div", { class: "field check" }, tail, h("label", { for: "tail" }, "Live tail")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const tailing = Boolean(stop);
    stopTail();
    await load();
    if (tailing) startTail(); // the tail follows the new filters
  });
  show(main, h("h1", {}, "Logs"), form, live, status, emptyNote, list, more);
  await load();
  return stopTail;
}
