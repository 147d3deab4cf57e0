// Queues: a queue's depth (ready, delayed, in flight, dead), refreshed while shown, and its
// dead letters. The server lists no queues, so the page asks for a name (kept in the URL).
import { call } from "../api.js";
import { empty, errorBox, field, grid, h, show } from "../ui.js";

export async function render(main, { args }) {
  const name = h("input", { name: "queue", required: true, value: args[0] || "" });
  const stats = h("div", { "aria-live": "polite" });
  const dead = h("div", {});
  let timer = null;
  const form = h("form", { class: "card inline", "aria-label": "Open a queue" }, field("Queue name", name),
    h("button", { type: "submit" }, "Open"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    window.location.hash = `#/queues/${encodeURIComponent(name.value.trim())}`;
  });
  show(main, h("h1", {}, "Queues"), form, stats, dead);
  if (!args[0]) {
    show(stats, empty("Enter a queue's name to see its depth and dead letters."));
    return null;
  }
  const queue = args[0];
  async function refresh() {
    try {
      const s = await call("queue.stats", { queue });
      show(stats, h("dl", { class: "stats", "aria-label": `Depth of ${queue}` },
        ["ready", "delayed", "in_flight", "dead"].map((k) => h("div", {}, h("dt", {}, k.replace("_", " ")), h("dd", {}, String(s[k]))))));
    } catch (err) { show(stats, errorBox(err)); }
  }
  await refresh();
  try {
    const letters = await call("queue.dead_letters", { queue, limit: 100 });
    show(dead, h("h2", {}, "Dead letters"), letters.messages.length
      ? grid(["message_id", "message", "retry_count", "published"], letters.messages.map((m) => ({
        ...m, published: new Date(m.published_at * 1000).toLocaleString(),
      })), { caption: `${letters.messages.length} dead letters` })
      : empty("No dead letters: every message was delivered or is still trying."));
  } catch (err) { show(dead, errorBox(err)); }
  timer = setInterval(refresh, 2000);
  return () => clearInterval(timer);
}
