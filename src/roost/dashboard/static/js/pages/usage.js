// Usage: requests and bytes per day over the last 30 days (usage.get), as a small bar chart
// drawn in inline SVG (a chart library would outweigh the whole dashboard), with the figures
// also in a table for screen readers and for copying.
import { call } from "../api.js";
import { empty, errorBox, grid, h, show } from "../ui.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

function day(value) {
  return new Date(value).toISOString().slice(0, 10);
}

export function chart(buckets, metric, label) {
  const width = 640, height = 180, pad = 28;
  const top = Math.max(1, ...buckets.map((b) => b[metric]));
  const step = (width - pad * 2) / Math.max(1, buckets.length);
  const bars = buckets.map((b, i) => {
    const tall = ((height - pad * 2) * b[metric]) / top;
    return svg("rect", { x: pad + i * step + 1, y: height - pad - tall, width: Math.max(1, step - 2), height: tall, class: "bar" },
      svg("title", {}, `${day(b.start)}: ${b[metric]} ${label}`));
  });
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${label} per day`, class: "chart" },
    svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }),
    svg("text", { x: pad, y: pad - 10, class: "tick" }, `${top} ${label}`),
    buckets.length ? svg("text", { x: pad, y: height - 8, class: "tick" }, day(buckets[0].start)) : "",
    buckets.length ? svg("text", { x: width - pad, y: height - 8, class: "tick", "text-anchor": "end" }, day(buckets[buckets.length - 1].start)) : "",
    ...bars);
}

// one slot per day from since to until, zero where the server recorded nothing, so a bar is
// a day wide however few days have usage
function everyDay(report) {
  const known = new Map(report.buckets.map((b) => [day(b.start), b]));
  const days = [];
  const end = new Date(report.until);
  for (let d = new Date(day(report.since)); d <= end; d.setUTCDate(d.getUTCDate() + 1)) {
    const name = day(d);
    days.push(known.get(name) || { start: d.toISOString(), requests: 0, bytes_in: 0, bytes_out: 0, function_invocations: 0 });
  }
  return days;
}

export async function render(main) {
  const body = h("div", {}, "Loading usage…");
  show(main, h("h1", {}, "Usage"), body);
  try {
    const report = await call("usage.get", { period: "day" });
    const t = report.totals;
    show(body,
      h("dl", { class: "stats", "aria-label": "Totals over 30 days" },
        [["requests", t.requests], ["bytes in", t.bytes_in], ["bytes out", t.bytes_out],
          ["function runs", t.function_invocations]].map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, String(v))))),
      report.buckets.length
        ? [h("h2", {}, "Requests per day"), chart(everyDay(report), "requests", "requests"),
          h("h2", {}, "Bytes out per day"), chart(everyDay(report), "bytes_out", "bytes out"),
          grid(["day", "requests", "bytes_in", "bytes_out", "function_invocations"],
            report.buckets.map((b) => ({ ...b, day: day(b.start) })), { caption: "Usage per day" })]
        : empty("No usage recorded in the last 30 days."));
  } catch (err) { show(body, errorBox(err)); }
}
