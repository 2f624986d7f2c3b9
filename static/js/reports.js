// /admin/reports: the team's figures over a period of whole UTC days, read from
// GET /api/reports: totals, medians and 90th percentiles in words, the daily volume as a chart
// (uPlot, vendored in static/vendor/uplot, a global loaded before this module) with the same
// figures as a table, and a table by admin. Text only ever goes through textContent.
import { api, el, setStatus, t } from "./common.js";

const MAX_DAYS = 366;
const DAY_MS = 86400000;
const CHART_HEIGHT = 280;

const lang = document.documentElement.lang || undefined;
const numbers = new Intl.NumberFormat(lang);
const longDay = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeZone: "UTC" });
const shortDay = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric", timeZone: "UTC" });

const form = document.getElementById("period");
const fromBox = document.getElementById("from");
const toBox = document.getElementById("to");
const periodError = document.getElementById("period-error");
const periodShown = document.getElementById("period-shown");
const chartEl = document.getElementById("chart");
const daysBody = document.querySelector("#days tbody");
const adminsBody = document.querySelector("#admins tbody");
const noAdmins = document.getElementById("no-admins");

/** "YYYY-MM-DD" of a moment, in UTC. */
const ymd = (date) => date.toISOString().slice(0, 10);

/** A "YYYY-MM-DD" as its midnight UTC, or null when it is no such day. */
function dayOf(text) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text ?? "")) return null;
  const date = new Date(`${text}T00:00:00Z`);
  return Number.isNaN(date.getTime()) || ymd(date) !== text ? null : date;
}

const units = new Map();
function unit(value, name) {
  if (!units.has(name)) {
    units.set(
      name,
      new Intl.NumberFormat(lang, { style: "unit", unit: name, unitDisplay: "short", maximumFractionDigits: 1 }),
    );
  }
  return units.get(name).format(value);
}

const STEPS = [
  [86400, "day"],
  [3600, "hour"],
  [60, "minute"],
  [1, "second"],
];

/** A duration in seconds as people say it, in its two largest units: "45 sec", "3 min 20 sec",
 * "2 hr 5 min", "1 day 3 hr" (in the page's language); null stays null. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return null;
  if (seconds < 60) return unit(seconds < 10 ? Math.round(seconds * 10) / 10 : Math.round(seconds), "second");
  const whole = Math.round(seconds);
  const i = STEPS.findIndex(([size]) => whole >= size);
  const [size, name] = STEPS[i];
  const big = Math.floor(whole / size);
  const [nextSize, nextName] = STEPS[i + 1];
  const rest = Math.floor((whole - big * size) / nextSize);
  return rest ? `${unit(big, name)} ${unit(rest, nextName)}` : unit(big, name);
}

// ---- the period -----------------------------------------------------------------------------

function defaultPeriod() {
  const today = dayOf(ymd(new Date()));
  return { from: ymd(new Date(today.getTime() - 6 * DAY_MS)), to: ymd(today) };
}

/** Why the boxes' period cannot be asked for ("" when it can). */
function refusal(from, to) {
  const first = dayOf(from);
  const last = dayOf(to);
  if (!first || !last) return t("needDates");
  if (first > last) return t("backwards");
  if ((last - first) / DAY_MS + 1 > MAX_DAYS) return t("tooLong", { max: numbers.format(MAX_DAYS) });
  return "";
}

let generation = 0;

async function show(from, to) {
  const why = refusal(from, to);
  periodError.textContent = why;
  if (why) {
    (dayOf(fromBox.value) ? toBox : fromBox).setAttribute("aria-invalid", "true");
    return;
  }
  fromBox.removeAttribute("aria-invalid");
  toBox.removeAttribute("aria-invalid");
  const url = new URL(window.location.href);
  url.searchParams.set("from", from);
  url.searchParams.set("to", to);
  window.history.replaceState(null, "", url);
  const end = ymd(new Date(dayOf(to).getTime() + DAY_MS)); // the API's `to` is left out
  const mine = ++generation;
  setStatus(t("loading"), "warn");
  let report;
  try {
    report = await api(`/api/reports?from=${from}&to=${end}`);
  } catch (err) {
    if (mine === generation) setStatus(err.message || t("requestFailed"), "bad");
    return;
  }
  if (mine !== generation) return; // a later period was asked for meanwhile
  setStatus("");
  render(report, dayOf(from), dayOf(to));
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  show(fromBox.value, toBox.value);
});

// ---- the figures ----------------------------------------------------------------------------

function setNumber(id, value) {
  document.getElementById(id).textContent = numbers.format(value);
}

function setSpread(id, spread) {
  const node = document.getElementById(id);
  if (spread.median === null) {
    node.replaceChildren(el("span", "none", t("nothing")));
    return;
  }
  node.replaceChildren(
    el("span", "median", t("median", { time: duration(spread.median) })),
    el("span", "p90", t("p90", { time: duration(spread.p90) })),
  );
}

function cell(text, className = "") {
  return el("td", className, text);
}

function render(report, first, last) {
  periodShown.textContent =
    first.getTime() === last.getTime() ? longDay.format(first) : longDay.formatRange(first, last);
  setNumber("opened", report.conversations_opened);
  setNumber("resolved", report.conversations_resolved);
  setNumber("received", report.messages_received);
  setNumber("replies", report.replies_sent);
  setSpread("first-response", report.first_response_seconds);
  setSpread("resolution", report.resolution_seconds);

  daysBody.replaceChildren(
    ...report.by_day.map((d) => {
      const row = el("tr");
      const th = el("th", "", longDay.format(dayOf(d.date)));
      th.scope = "row";
      row.append(th, cell(numbers.format(d.received)), cell(numbers.format(d.replied)), cell(numbers.format(d.resolved)));
      return row;
    }),
  );

  adminsBody.replaceChildren(
    ...report.by_admin.map((a) => {
      const row = el("tr");
      const th = el("th", "", a.admin);
      th.scope = "row";
      const median = duration(a.first_response_seconds.median);
      row.append(
        th,
        cell(numbers.format(a.replies)),
        cell(numbers.format(a.resolved)),
        cell(median ?? t("noValue"), median === null ? "none" : ""),
      );
      return row;
    }),
  );
  noAdmins.hidden = report.by_admin.length > 0;
  document.getElementById("admins").hidden = report.by_admin.length === 0;

  draw(report.by_day);
}

// ---- the chart ------------------------------------------------------------------------------

let plot = null;

function draw(days) {
  const labels = days.map((d) => shortDay.format(dayOf(d.date)));
  const data = [
    days.map((_, i) => i),
    days.map((d) => d.received),
    days.map((d) => d.replied),
    days.map((d) => d.resolved),
  ];
  const css = getComputedStyle(chartEl);
  const color = (name) => css.getPropertyValue(name).trim();
  const text = color("--text");
  const grid = { stroke: color("--border"), width: 1 };
  const label = (i) => (Number.isInteger(i) && labels[i] !== undefined ? labels[i] : "");
  const count = (u, v) => (v === null || v === undefined ? "" : numbers.format(v));
  // Three bars side by side in each day's column, so that equal figures never hide each other.
  const bars = (name, key, k) => ({
    label: t(name),
    stroke: color(key),
    fill: color(key),
    width: 0,
    points: { show: false },
    value: count,
    paths: window.uPlot.paths.bars({
      disp: {
        x0: { unit: 1, values: (u) => u.data[0].map((x) => x - 0.4 + k * 0.27) },
        size: { unit: 1, values: (u) => u.data[0].map(() => 0.26) },
      },
    }),
  });
  const options = {
    width: Math.max(chartEl.clientWidth, 200),
    height: CHART_HEIGHT,
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: {
      x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] },
      y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] },
    },
    axes: [
      {
        stroke: text,
        grid,
        ticks: grid,
        incrs: [1, 2, 7, 14, 28, 56, 91, 182],
        values: (u, splits) => splits.map(label),
      },
      {
        stroke: text,
        grid,
        ticks: grid,
        incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000],
        values: (u, splits) => splits.map((v) => numbers.format(v)),
      },
    ],
    series: [
      { label: t("date"), value: (u, i) => label(i) },
      bars("received", "--chart-received", 0),
      bars("replied", "--chart-replied", 1),
      bars("resolved", "--chart-resolved", 2),
    ],
  };
  plot?.destroy();
  plot = new window.uPlot(options, data, chartEl);
}

new ResizeObserver(() => {
  if (plot && chartEl.clientWidth > 0 && Math.abs(plot.width - chartEl.clientWidth) > 1) {
    plot.setSize({ width: Math.max(chartEl.clientWidth, 200), height: CHART_HEIGHT });
  }
}).observe(chartEl);

// ---- start ----------------------------------------------------------------------------------

const asked = new URLSearchParams(window.location.search);
const initial = dayOf(asked.get("from")) && dayOf(asked.get("to"))
  ? { from: asked.get("from"), to: asked.get("to") }
  : defaultPeriod();
fromBox.value = initial.from;
toBox.value = initial.to;
show(initial.from, initial.to);
