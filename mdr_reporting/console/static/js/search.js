// Detail record search: GET /v2/detail_records with the query the official SDK sends
// (filter[...] in brackets, sort, page[number], page[size]).
import { announce, api, cell, clearErrors, formatInstant, showErrors } from "./api.js";
import { initPage } from "./nav.js";

const form = document.getElementById("search-form");
const table = document.getElementById("records-table");
const rows = document.getElementById("records-body");
const summary = document.getElementById("search-summary");
const prev = document.getElementById("records-prev");
const next = document.getElementById("records-next");
const pageLabel = document.getElementById("records-page");
const range = document.getElementById("date_range");
let page = 1;

const value = (id) => document.getElementById(id).value.trim();

function toggleCustom() {
  const custom = range.value === "custom";
  for (const id of ["created_gte", "created_lt"]) {
    const input = document.getElementById(id);
    input.disabled = !custom;
    input.required = custom;
  }
}

// "2026-12-01T10:00" (read as UTC) -> "2026-12-01T10:00:00Z"
function utc(local) {
  return local.length === 16 ? `${local}:00Z` : `${local}Z`;
}

export function query(pageNumber) {
  const out = [["filter[record_type]", "messaging"]];
  if (range.value === "custom") {
    if (value("created_gte")) out.push(["filter[created_at][gte]", utc(value("created_gte"))]);
    if (value("created_lt")) out.push(["filter[created_at][lt]", utc(value("created_lt"))]);
  } else {
    out.push(["filter[date_range]", range.value]);
  }
  for (const [id, name] of [["direction", "direction"], ["status", "status"], ["profile_id", "profile_id"], ["tags", "tags"]]) {
    if (value(id)) out.push([`filter[${name}]`, value(id)]);
  }
  for (const number of ["cli", "cld"]) {
    if (value(`${number}_value`)) out.push([`filter[${number}][${value(`${number}_match`)}]`, value(`${number}_value`)]);
  }
  out.push(["sort", value("sort")], ["page[number]", String(pageNumber)], ["page[size]", value("page_size")]);
  return out;
}

// A parameter of the API's 400 (filter[cli][contains]) -> the field that sets it.
function locate(parameter) {
  let name = parameter;
  while (name) {
    const input = form.querySelector(`[data-parameter="${CSS.escape(name)}"]`);
    if (input) return { input, message: document.getElementById(`${input.id}-error`) };
    const cut = name.lastIndexOf("[");
    if (cut <= 0) break;
    name = name.slice(0, cut);
  }
  return null;
}

function render(record) {
  const row = document.createElement("tr");
  row.dataset.id = record.uuid;
  cell(row, formatInstant(record.created_at));
  cell(row, record.direction);
  cell(row, record.cli, "mono");
  cell(row, record.cld, "mono");
  // this service's status word (message_status), else the carrier's spelling
  cell(row, (record.message_status || record.status || "").replaceAll("_", " "));
  cell(row, record.message_type);
  cell(row, record.parts, "num");
  cell(row, record.cost === null || record.cost === undefined ? "" : `${record.cost} ${record.currency || ""}`.trim(), "num");
  cell(row, record.profile_id, "mono");
  cell(row, Array.isArray(record.tags) ? record.tags.join(", ") : (record.tags || "").split(",").join(", "));
  cell(row, record.uuid, "mono");
  return row;
}

async function search(pageNumber) {
  clearErrors(form);
  summary.textContent = "Searching…";
  const started = performance.now();
  let answer;
  try {
    answer = await api("GET", "/v2/detail_records", { query: query(pageNumber) });
  } catch (error) {
    summary.textContent = "";
    showErrors(error, locate, document.getElementById("search-error"));
    return;
  }
  page = pageNumber;
  const { data, meta = {} } = answer;
  rows.replaceChildren(...data.map(render));
  table.hidden = data.length === 0;
  const pages = Math.max(meta.total_pages || 1, 1);
  const ms = Math.round(performance.now() - started);
  // The search stops one record past the page: the totals are exact only when it read
  // the whole window (meta.total_exact), otherwise they are a lower bound.
  const exact = meta.total_exact !== false;
  const count = meta.total_results === undefined ? null : meta.total_results.toLocaleString("en-US");
  const total = count === null ? "" : exact ? ` of ${count}` : ` (at least ${count} match)`;
  const of = `${exact ? "" : "at least "}${pages}`;
  summary.textContent = data.length
    ? `${data.length} records shown${total}, page ${meta.page_number || page} of ${of} (${ms} ms).`
    : "No records match.";
  pageLabel.textContent = data.length ? `Page ${meta.page_number || page} of ${of}` : "";
  prev.disabled = page <= 1;
  next.disabled = page >= pages;
  announce("");
}

if (initPage()) {
  range.addEventListener("change", toggleCustom);
  toggleCustom();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(1);
  });
  prev.addEventListener("click", () => search(Math.max(1, page - 1)));
  next.addEventListener("click", () => search(page + 1));
}
