// Streams: a room's history (stream.history, newest first, older pages on request) and its new
// events live (the stream.subscribe subscription on the realtime WebSocket), and publishing an
// event. The server lists no rooms, so the page asks for a name (kept in the URL).
import { allows, call, subscribe } from "../api.js";
import { button, empty, errorBox, field, h, show, toast } from "../ui.js";

const PAGE = 50;

export async function render(main, { me, args }) {
  const canWrite = allows(me.scopes, "stream:write");
  const name = h("input", { name: "room", required: true, value: args[0] || "", autocomplete: "off" });
  const open = h("form", { class: "card inline", "aria-label": "Open a room" }, field("Room name", name),
    h("button", { type: "submit" }, "Open"));
  open.addEventListener("submit", (e) => {
    e.preventDefault();
    window.location.hash = `#/streams/${encodeURIComponent(name.value.trim())}`;
  });
  if (!args[0]) {
    show(main, h("h1", {}, "Streams"), open,
      empty("Enter a room's name to see its history and follow its new events."));
    return null;
  }
  const room = args[0];
  const live = h("p", { class: "live", role: "status" });
  const status = h("div", { "aria-live": "polite" });
  const body = h("tbody", {});
  const caption = h("caption", {}, `Events of ${room}, newest first`);
  const list = h("div", { class: "scroll" }, h("table", {}, caption,
    h("thead", {}, h("tr", {}, ["offset", "type", "data", "metadata", "at"].map((c) => h("th", { scope: "col" }, c)))),
    body));
  const emptyNote = h("div", {});
  const more = button("Older events", () => older(), { hidden: true });
  const shown = new Set(); // offsets in the table: the feed may repeat what history gave
  let oldestShown = null;
  let oldestKept = 0;

  const row = (e) => h("tr", { "data-offset": e.offset },
    h("td", {}, String(e.offset)), h("td", {}, e.event_type),
    h("td", { class: "message" }, JSON.stringify(e.data)),
    h("td", {}, Object.keys(e.metadata || {}).length ? JSON.stringify(e.metadata) : ""),
    h("td", {}, new Date(e.timestamp * 1000).toLocaleString()));

  function add(events, { atTop }) {
    const fresh = events.filter((e) => !shown.has(e.offset));
    for (const e of fresh) shown.add(e.offset);
    const rows = fresh.sort((a, b) => b.offset - a.offset).map(row);
    if (atTop) body.prepend(...rows); else body.append(...rows);
    for (const e of fresh) if (oldestShown === null || e.offset < oldestShown) oldestShown = e.offset;
    more.hidden = oldestShown === null || oldestShown <= oldestKept;
    show(emptyNote, body.children.length ? null : empty("This room holds no events yet."));
  }

  async function older() {
    try {
      const to = oldestShown - 1;
      const from = Math.max(oldestKept, to - PAGE + 1);
      const page = await call("stream.history", { room, from_offset: from, to_offset: to, limit: PAGE });
      oldestKept = page.oldest_offset;
      add(page.events, { atTop: false });
      if (!page.events.length) more.hidden = true;
    } catch (err) { show(status, errorBox(err)); }
  }

  async function first() {
    try {
      const page = await call("stream.history", { room, from_offset: -PAGE, limit: PAGE });
      oldestKept = page.oldest_offset;
      add(page.events, { atTop: true });
    } catch (err) { show(status, errorBox(err)); }
  }

  // live first, then the history: an event published in between is in one or the other
  show(live, "Connecting the live feed…");
  const stop = subscribe("stream.subscribe", { room }, {
    onReady: () => { show(live, "Live: new events appear at the top."); first(); },
    onEvent: (event) => add([event], { atTop: true }),
    onError: (err) => { show(live); show(status, errorBox(err)); first(); },
  });

  const type = h("input", { name: "event-type", required: true, value: "message" });
  const data = h("textarea", { name: "event-data", rows: 2 });
  const sendStatus = h("div", { "aria-live": "polite" });
  const publish = h("form", { class: "card inline", "aria-label": "Publish an event" },
    field("Event type", type), field("Data (JSON)", data), sendStatus,
    h("button", { type: "submit" }, "Publish"));
  publish.addEventListener("submit", async (e) => {
    e.preventDefault();
    show(sendStatus);
    try {
      let parsed = null;
      if (data.value.trim()) {
        try { parsed = JSON.parse(data.value); } catch { throw new Error("the data is not JSON: quote text, as \"hello\""); }
      }
      const sent = await call("stream.publish", { room, event_type: type.value.trim(), data: parsed });
      toast(`Published at offset ${sent.offset}`);
      data.value = "";
    } catch (err) { show(sendStatus, errorBox(err)); }
  });
  show(main, h("h1", {}, `Stream ${room}`), open, canWrite ? publish : null, live, status, emptyNote, list, more);
  return stop;
}
