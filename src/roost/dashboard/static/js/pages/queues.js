// Queues: a queue's depth (ready, delayed, in flight, dead), live while shown (the queue.watch
// subscription on the realtime WebSocket pushes it as it changes), and its dead letters. The
// server lists no queues, so the page asks for a name (kept in the URL).
import { call, subscribe } from "../api.js";
import { empty, errorBox, field, grid, h, show } from "../ui.js";

export async function render(main, { args }) {
  const name = h("input", { name: "queue", required: true, value: args[0] || "" });
  const stats = h("div", { "aria-live": "polite" });
  const dead = h("div", {});
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
  const live = h("p", { class: "live", role: "status" }, "Connecting the live depth…");
  show(stats, live);
  let deadCount = null;

  async function letters() {
    try {
      const found = await call("queue.dead_letters", { queue, limit: 100 });
      show(dead, h("h2", {}, "Dead letters"), found.messages.length
        ? grid(["message_id", "message", "retry_count", "published"], found.messages.map((m) => ({
          ...m, published: new Date(m.published_at * 1000).toLocaleString(),
        })), { caption: `${found.messages.length} dead letters` })
        : empty("No dead letters: every message was delivered or is still trying."));
    } catch (err) { show(dead, errorBox(err)); }
  }

  function depth(s) {
    show(stats, h("dl", { class: "stats", "aria-label": `Depth of ${queue}` },
      ["ready", "delayed", "in_flight", "dead"].map((k) => h("div", {}, h("dt", {}, k.replace("_", " ")), h("dd", {}, String(s[k]))))), live);
    if (s.dead !== deadCount) { deadCount = s.dead; letters(); } // the list follows the count
  }

  return subscribe("queue.watch", { queue }, {
    onReady: () => show(live, "Live: the depth follows every change."),
    onEvent: depth,
    onError: (err) => { show(live); show(stats, errorBox(err)); letters(); },
  });
}
