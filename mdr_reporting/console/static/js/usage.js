// Usage charts from the MDR usage reports API (the SDK's reports.mdr_usage_reports
// fetch_sync): one call per UTC day for the daily series, one PROFILE call for the window.
import { api, clearErrors, formatCount, showErrors } from "./api.js";
import { sumDecimals } from "./decimal.js";
import { initPage } from "./nav.js";

const SYNC = "/v2/reports/mdr_usage_reports/sync";
const MAX_DAYS = 92;
const PARALLEL = 4;
const TOP = 10;

const form = document.getElementById("usage-form");
const startInput = document.getElementById("usage_start");
const endInput = document.getElementById("usage_end");
const profilesInput = document.getElementById("usage_profiles");
const formError = document.getElementById("usage-error");
const charts = new Map();

const isoDay = (date) => date.toISOString().slice(0, 10);
const dayAfter = (day) => isoDay(new Date(Date.parse(`${day}T00:00:00Z`) + 86400000));
const count = (value) => Number(value || 0);

function days(first, last) {
  const out = [];
  for (let day = first; day <= last && out.length <= MAX_DAYS; day = dayAfter(day)) out.push(day);
  return out;
}

function profilesQuery() {
  const list = profilesInput.value.split(",").map((p) => p.trim()).filter(Boolean);
  return list.length ? [["profiles", list.join(",")]] : []; // the SDK's comma array format
}

function sync(aggregation, start, end) {
  return api("GET", SYNC, {
    query: [
      ["aggregation_type", aggregation],
      ["start_date", start], // whole UTC days: both dates are included
      ["end_date", end],
      ...profilesQuery(),
    ],
  });
}

async function inBatches(items, work) {
  const out = new Array(items.length);
  let next = 0;
  async function lane() {
    while (next < items.length) {
      const at = next++;
      out[at] = await work(items[at]);
    }
  }
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, lane));
  return out;
}

function totals(results) {
  const rows = results || [];
  const currencies = [...new Set(rows.map((r) => r.currency).filter(Boolean))];
  return {
    sent: rows.reduce((sum, r) => sum + count(r.sent), 0),
    delivered: rows.reduce((sum, r) => sum + count(r.delivered), 0),
    received: rows.reduce((sum, r) => sum + count(r.received), 0),
    cost: sumDecimals(rows.map((r) => r.cost)),
    currency: currencies.join("/") || "USD",
  };
}

function fillTable(section, header, body) {
  const table = section.querySelector("table.figures");
  const head = document.createElement("thead");
  const tr = document.createElement("tr");
  for (const name of header) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    tr.appendChild(th);
  }
  head.appendChild(tr);
  const tbody = document.createElement("tbody");
  for (const values of body) {
    const row = document.createElement("tr");
    values.forEach((value, index) => {
      const td = document.createElement(index === 0 ? "th" : "td");
      if (index === 0) td.scope = "row";
      else td.className = "num";
      td.textContent = value;
      row.appendChild(td);
    });
    tbody.appendChild(row);
  }
  table.replaceChildren(head, tbody);
}

function draw(id, options, data) {
  const section = document.getElementById(id);
  const holder = section.querySelector(".plot");
  if (charts.has(id)) charts.get(id).destroy();
  const width = Math.max(320, holder.clientWidth || 640);
  const chart = new window.uPlot({ width, height: 260, ...options }, data, holder);
  charts.set(id, chart);
  const points = data.slice(1).reduce((sum, series) => sum + series.filter((v) => v !== null).length, 0);
  section.dataset.points = String(points);
  return chart;
}

const bars = () => window.uPlot.paths.bars({ size: [0.6, 60] });

function drawDaily(dayList, perDay) {
  const x = dayList.map((day) => Date.parse(`${day}T00:00:00Z`) / 1000);
  const sent = perDay.map((t) => t.sent);
  const delivered = perDay.map((t) => t.delivered);
  const received = perDay.map((t) => t.received);
  draw(
    "chart-messages",
    {
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: [
        { label: "Day (UTC)" },
        { label: "Sent (outbound)", stroke: "#1f5fa8", width: 2, points: { show: true } },
        { label: "Delivered", stroke: "#1b7f3b", width: 2, dash: [8, 4], points: { show: true } },
        { label: "Received (inbound)", stroke: "#8a4fb3", width: 2, dash: [2, 3], points: { show: true } },
      ],
      axes: [{}, { label: "Messages", size: 70 }],
    },
    [x, sent, delivered, received],
  );
  fillTable(
    document.getElementById("chart-messages"),
    ["Day (UTC)", "Sent (outbound)", "Delivered", "Received (inbound)"],
    dayList.map((day, i) => [day, formatCount(sent[i]), formatCount(delivered[i]), formatCount(received[i])]),
  );
  const currency = [...new Set(perDay.map((t) => t.currency))].join("/");
  const costs = perDay.map((t) => Number(t.cost));
  draw(
    "chart-cost",
    {
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: [
        { label: "Day (UTC)" },
        { label: `Cost (${currency})`, stroke: "#a85d00", fill: "rgba(168,93,0,0.35)", paths: bars(), points: { show: false } },
      ],
      scales: { x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] } },
      axes: [{}, { label: currency, size: 70 }],
    },
    [x, costs],
  );
  document.querySelector("#chart-cost .legend-note").textContent =
    `Total ${sumDecimals(perDay.map((t) => t.cost))} ${currency} over ${dayList.length} days.`;
  fillTable(
    document.getElementById("chart-cost"),
    ["Day (UTC)", `Cost (${currency})`],
    dayList.map((day, i) => [day, perDay[i].cost]),
  );
}

function drawProfiles(results) {
  const byProfile = new Map();
  for (const r of results || []) {
    const id = r.profile_id || "(no profile)";
    const entry = byProfile.get(id) || { rows: [] };
    entry.rows.push(r);
    byProfile.set(id, entry);
  }
  const ranked = [...byProfile.entries()]
    .map(([id, entry]) => {
      const t = totals(entry.rows);
      return { id, messages: t.sent + t.received, cost: t.cost, currency: t.currency };
    })
    .sort((a, b) => b.messages - a.messages || a.id.localeCompare(b.id))
    .slice(0, TOP);
  const x = ranked.map((_, i) => i);
  draw(
    "chart-profiles",
    {
      scales: { x: { time: false, range: [-0.5, Math.max(ranked.length - 0.5, 0.5)] } },
      series: [
        { label: "Profile", value: (u, i) => (i === null || ranked[i] === undefined ? "" : ranked[i].id) },
        { label: "Messages (sent + received)", stroke: "#1f5fa8", fill: "rgba(31,95,168,0.35)", paths: bars(), points: { show: false } },
      ],
      axes: [
        {
          splits: () => x,
          values: (u, splits) => splits.map((i) => (ranked[i] ? ranked[i].id.slice(0, 12) : "")),
          rotate: 0,
          size: 40,
        },
        { label: "Messages", size: 70 },
      ],
    },
    [x, ranked.map((r) => r.messages)],
  );
  fillTable(
    document.getElementById("chart-profiles"),
    ["Profile", "Messages", "Cost"],
    ranked.map((r) => [r.id, formatCount(r.messages), `${r.cost} ${r.currency}`]),
  );
}

async function load() {
  clearErrors(form);
  const first = startInput.value;
  const last = endInput.value;
  if (!first || !last || last < first) {
    const target = !first ? startInput : endInput;
    document.getElementById(`${target.id}-error`).textContent = !first || !last
      ? "Choose a day." : "The last day must not be before the first.";
    target.setAttribute("aria-invalid", "true");
    target.focus();
    return;
  }
  const dayList = days(first, last);
  if (dayList.length > MAX_DAYS) {
    endInput.setAttribute("aria-invalid", "true");
    document.getElementById("usage_end-error").textContent = `Choose at most ${MAX_DAYS} days.`;
    endInput.focus();
    return;
  }
  const submit = document.getElementById("usage-submit");
  submit.disabled = true;
  document.body.dataset.loading = "1";
  const locate = (where) => {
    const input = where.includes("start") ? startInput : where.includes("end") ? endInput : where.includes("profile") ? profilesInput : null;
    return input ? { input, message: document.getElementById(`${input.id}-error`) } : null;
  };
  try {
    const [perDay, window_] = await Promise.all([
      inBatches(dayList, async (day) => totals((await sync("NO_AGGREGATION", day, day)).data.result)),
      sync("PROFILE", first, last),
    ]);
    drawDaily(dayList, perDay);
    drawProfiles(window_.data.result);
  } catch (error) {
    showErrors(error, locate, formError);
  } finally {
    submit.disabled = false;
    delete document.body.dataset.loading;
  }
}

if (initPage()) {
  const today = new Date();
  endInput.value = isoDay(today);
  startInput.value = isoDay(new Date(today.getTime() - 29 * 86400000));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  load();
}
