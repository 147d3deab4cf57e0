// Queues: a queue's depth (ready, delayed, in flight, dead), live while shown (the queue.watch
// subscription on the realtime WebSocket pushes it as it changes), and its dead letters, which
// a principal with queue:write may replay (back to the queue, afresh) or discard. The server
// lists no queues, so the page asks for a name (kept in the URL).
import { allows, call, subscribe } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

const BATCH = 1000; // the most one queue.replay moves

export async function render(main, { args, me }) {
  const canWrite = allows(me.scopes, "queue:write");
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

  const outcome = h("div", { "aria-live": "polite" });

  async function act(work) {
    try { toast(await work()); show(outcome); } catch (err) { show(outcome, errorBox(err)); }
    letters();
  }

  async function replayAll() {
    let moved = 0, last = BATCH;
    for (let round = 0; last === BATCH && round < 100; round++) { // later ones die meanwhile
      last = (await call("queue.replay", { queue, limit: BATCH })).replayed;
      moved += last;
    }
    return `Replayed ${moved} dead letters`;
  }

  function bulk() {
    return h("div", { class: "inline" },
      button("Replay all", () => {
        if (window.confirm(`Replay every dead letter of ${queue}? Each goes back to the queue with all its deliveries.`)) act(replayAll);
      }),
      button("Discard all", () => {
        if (!window.confirm(`Discard every dead letter of ${queue} for good?`)) return;
        act(async () => `Discarded ${(await call("queue.delete_dead_letters", { queue })).deleted} dead letters`);
      }, { class: "danger" }));
  }

  function rowActions(m) {
    const ids = [m.message_id];
    return [
      button("Replay", () => act(async () => (await call("queue.replay", { queue, message_ids: ids })).replayed
        ? `Replayed ${m.message_id}` : `${m.message_id} is no longer a dead letter`), { "aria-label": `Replay ${m.message_id}` }),
      button("Discard", () => {
        if (!window.confirm(`Discard the dead letter ${m.message_id} for good?`)) return;
        act(async () => (await call("queue.delete_dead_letters", { queue, message_ids: ids })).deleted
          ? `Discarded ${m.message_id}` : `${m.message_id} is no longer a dead letter`);
      }, { class: "danger", "aria-label": `Discard ${m.message_id}` }),
    ];
  }

  async function letters() {
    try {
      const found = await call("queue.dead_letters", { queue, limit: 100 });
      show(dead, h("h2", {}, "Dead letters"), outcome, found.messages.length
        ? [canWrite ? bulk() : null,
          grid(["message_id", "message", "retry_count", "published"], found.messages.map((m) => ({
            ...m, published: new Date(m.published_at * 1000).toLocaleString(),
          })), { caption: `${found.messages.length} dead letters`, actions: canWrite ? rowActions : null })]
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
