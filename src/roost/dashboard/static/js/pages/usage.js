// Usage: requests and bytes per day over the last 30 days (usage.get), as a small bar chart
// drawn in inline SVG (a chart library would outweigh the whole dashboard), with the figures
// also in a table for screen readers and for copying; and the same per API key (usage.get
// by_api_key: the meter records the key of every call, "" for signed-in users), one key's
// days at a time.
import { allows, call } from "../api.js";
import { empty, errorBox, field, grid, h, show } from "../ui.js";

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

const FIGURES = ["requests", "bytes_in", "bytes_out", "function_invocations"];

// the report's buckets as one caller saw them: a key's own figures ("" = signed-in users)
function bucketsOf(report, key) {
  if (key === null) return report.buckets;
  return report.buckets.filter((b) => b.api_keys && b.api_keys[key])
    .map((b) => ({ start: b.start, ...b.api_keys[key] }));
}

function perKey(report) {
  const totals = new Map();
  for (const b of report.buckets) {
    for (const [key, f] of Object.entries(b.api_keys || {})) {
      const sum = totals.get(key) || { key, requests: 0, bytes_in: 0, bytes_out: 0, function_invocations: 0 };
      for (const name of FIGURES) sum[name] += f[name];
      totals.set(key, sum);
    }
  }
  return [...totals.values()].sort((a, b) => b.requests - a.requests);
}

const short = (text) => (text.length > 28 ? text.slice(0, 27) + "…" : text);

// one horizontal bar per caller, its requests over the period
export function keyChart(rows, label) {
  const width = 640, bar = 22, pad = 8, text = 200;
  const height = pad * 2 + rows.length * (bar + 6);
  const top = Math.max(1, ...rows.map((r) => r.requests));
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "requests per API key", class: "chart" },
    ...rows.flatMap((r, i) => {
      const y = pad + i * (bar + 6);
      const long = ((width - text - pad * 2 - 60) * r.requests) / top;
      return [
        svg("text", { x: pad, y: y + bar * 0.7, class: "tick" }, short(label(r.key))),
        svg("rect", { x: text, y, width: Math.max(1, long), height: bar, class: "bar" },
          svg("title", {}, `${label(r.key)}: ${r.requests} requests`)),
        svg("text", { x: text + long + 6, y: y + bar * 0.7, class: "tick" }, String(r.requests)),
      ];
    }));
}

async function keyNames(me) {
  const names = new Map([["", "signed-in users"]]);
  if (!allows(me.scopes, "api_keys:read")) return names;
  try {
    for (const k of await call("api_keys.list")) names.set(k.id, k.name);
  } catch { /* names are a nicety: ids are shown instead */ }
  return names;
}

export async function render(main, { me }) {
  const body = h("div", {}, "Loading usage…");
  show(main, h("h1", {}, "Usage"), body);
  try {
    const [report, names] = await Promise.all([call("usage.get", { period: "day", by_api_key: true }), keyNames(me)]);
    const label = (key) => names.get(key) || `key ${key}`;
    const t = report.totals;
    const keys = perKey(report);
    const daily = h("div", {});
    const who = h("select", { name: "caller" }, h("option", { value: "*" }, "every caller"),
      keys.map((k) => h("option", { value: k.key }, label(k.key))));
    const drawDays = () => {
      const key = who.value === "*" ? null : who.value;
      const days = everyDay({ ...report, buckets: bucketsOf(report, key) });
      const whose = key === null ? "" : ` (${label(key)})`;
      show(daily, h("h2", {}, `Requests per day${whose}`), chart(days, "requests", "requests"),
        h("h2", {}, `Bytes out per day${whose}`), chart(days, "bytes_out", "bytes out"),
        grid(["day", ...FIGURES], bucketsOf(report, key).map((b) => ({ ...b, day: day(b.start) })), { caption: `Usage per day${whose}` }));
    };
    who.addEventListener("change", drawDays);
    show(body,
      h("dl", { class: "stats", "aria-label": "Totals over 30 days" },
        [["requests", t.requests], ["bytes in", t.bytes_in], ["bytes out", t.bytes_out],
          ["function runs", t.function_invocations]].map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, String(v))))),
      report.buckets.length
        ? [h("div", { class: "builder" }, field("Show the days of", who)), daily,
          h("h2", {}, "Requests per API key"), keyChart(keys, label),
          grid(["caller", ...FIGURES], keys.map((k) => ({ ...k, caller: label(k.key) })), { caption: "Usage per API key over 30 days" })]
        : empty("No usage recorded in the last 30 days."));
    if (report.buckets.length) drawDays();
  } catch (err) { show(body, errorBox(err)); }
}
