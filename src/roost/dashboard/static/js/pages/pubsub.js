// Pub/sub: a live view of the messages on topics matching some patterns (the pubsub.subscribe
// subscription on the realtime WebSocket), and publishing a message. Messages are not kept:
// the view shows what is published while it watches.
import { allows, call, subscribe } from "../api.js";
import { empty, errorBox, field, h, show, toast } from "../ui.js";

const SHOWN = 200; // the view keeps the newest messages only

export async function render(main, { me }) {
  const canRead = allows(me.scopes, "pubsub:read");
  const canWrite = allows(me.scopes, "pubsub:write");
  const patterns = h("input", { name: "patterns", required: true, value: "#", autocomplete: "off" });
  const live = h("p", { class: "live", role: "status" });
  const status = h("div", { "aria-live": "polite" });
  const body = h("tbody", {});
  const list = h("div", { class: "scroll", hidden: true }, h("table", {},
    h("caption", {}, "Messages, newest first"),
    h("thead", {}, h("tr", {}, ["at", "topic", "message", "metadata"].map((c) => h("th", { scope: "col" }, c)))),
    body));
  const note = h("div", {});
  let stop = null;

  const row = (m) => h("tr", {},
    h("td", {}, new Date(m.timestamp * 1000).toLocaleTimeString()), h("td", {}, m.topic),
    h("td", { class: "message" }, JSON.stringify(m.message)),
    h("td", {}, Object.keys(m.metadata || {}).length ? JSON.stringify(m.metadata) : ""));

  function leave() {
    if (stop) stop();
    stop = null;
    show(live);
  }

  function watch(wanted) {
    leave();
    show(status);
    body.replaceChildren();
    list.hidden = false;
    show(note, empty("No message yet: those published from now on appear here."));
    show(live, "Connecting…");
    stop = subscribe("pubsub.subscribe", { patterns: wanted }, {
      onReady: () => show(live, `Live: watching ${wanted.join(", ")}.`),
      onEvent: (message) => {
        show(note);
        body.prepend(row(message));
        while (body.children.length > SHOWN) body.lastChild.remove();
      },
      onError: (err) => { stop = null; show(live); show(status, errorBox(err)); },
    });
  }

  const view = h("form", { class: "card inline", "aria-label": "Watch topics" },
    field("Topic patterns (comma-separated)", patterns, "* is one word, # any number: orders.*, #"),
    h("button", { type: "submit" }, "Watch"));
  view.addEventListener("submit", (e) => {
    e.preventDefault();
    const wanted = patterns.value.split(",").map((p) => p.trim()).filter(Boolean);
    if (wanted.length) watch(wanted);
  });

  const topic = h("input", { name: "topic", required: true, autocomplete: "off" });
  const message = h("textarea", { name: "message", rows: 2 });
  const sendStatus = h("div", { "aria-live": "polite" });
  const publish = h("form", { class: "card inline", "aria-label": "Publish a message" },
    field("Topic", topic), field("Message (JSON)", message), sendStatus,
    h("button", { type: "submit" }, "Publish"));
  publish.addEventListener("submit", async (e) => {
    e.preventDefault();
    show(sendStatus);
    try {
      let parsed = null;
      if (message.value.trim()) {
        try { parsed = JSON.parse(message.value); } catch { throw new Error("the message is not JSON: quote text, as \"hello\""); }
      }
      const sent = await call("pubsub.publish", { topic: topic.value.trim(), message: parsed });
      toast(`Published to ${sent.subscribers_matched} subscription(s)`);
    } catch (err) { show(sendStatus, errorBox(err)); }
  });

  show(main, h("h1", {}, "Pub/sub"), canWrite ? publish : null, canRead ? [view, live, status, note, list] : null);
  return leave;
}
