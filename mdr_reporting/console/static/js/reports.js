// The account's report requests: live status and progress (polling while any is
// Pending), a download link for Complete ones and a delete button.
import { announce, api, cell, formatBytes, formatCount, formatInstant } from "./api.js";
import { initPage } from "./nav.js";

const LIST = "/v2/legacy/reporting/batch_detail_records/messaging";
const PAGE_SIZE = 20;
const FAST = 1500; // ms between polls while a report is being built
const SLOW = 10000;

// Status shown by an icon and a word, never by colour alone.
const STATUS = {
  PENDING: { icon: "↻", label: "Pending" },
  COMPLETE: { icon: "✔", label: "Complete" },
  FAILED: { icon: "✖", label: "Failed" },
  EXPIRED: { icon: "○", label: "Expired" },
};

const body = document.getElementById("reports-body");
const template = document.getElementById("report-row");
const empty = document.getElementById("reports-empty");
const prev = document.getElementById("reports-prev");
const next = document.getElementById("reports-next");
const pageLabel = document.getElementById("reports-page");
let page = 1;
let timer = null;
const lastStatus = new Map(); // id -> status at the previous poll

// Says a finished build aloud (the status region), since a table cell changes silently.
function announceChanges(items) {
  const finished = [];
  for (const item of items) {
    const before = lastStatus.get(item.id);
    if (before === "PENDING" && item.status !== "PENDING") {
      finished.push(`${item.report_name}: ${(STATUS[item.status] || { label: item.status }).label}`);
    }
    lastStatus.set(item.id, item.status);
  }
  if (finished.length) announce(`Updated: ${finished.join("; ")}.`);
}

function window_(item) {
  return `${formatInstant(item.start_date)} to ${formatInstant(item.end_date)} (${item.timezone})`;
}

function render(item) {
  const row = template.content.firstElementChild.cloneNode(true);
  row.dataset.id = item.id;
  row.dataset.status = item.status;
  row.querySelector(".name").textContent = item.report_name;
  row.querySelector(".window").textContent = window_(item);
  row.querySelector(".format").textContent = item.format;
  const shown = STATUS[item.status] || { icon: "?", label: item.status };
  row.querySelector(".badge").classList.add(`status-${String(item.status).toLowerCase()}`);
  row.querySelector(".icon").textContent = shown.icon;
  row.querySelector(".label").textContent = shown.label;
  const progress = row.querySelector("progress");
  const detail = row.querySelector(".detail");
  if (item.status === "PENDING") {
    const done = Number(item.progress || 0);
    progress.hidden = false;
    progress.value = done;
    progress.setAttribute("aria-label", `Progress of ${item.report_name}`);
    progress.textContent = `${Math.round(done * 100)}%`;
    detail.textContent = ` ${Math.round(done * 100)}%`;
  } else if (item.status === "FAILED") {
    detail.textContent = item.error ? ` ${item.error}` : "";
  } else if (item.status === "COMPLETE" && item.expires_at) {
    detail.textContent = ` until ${formatInstant(item.expires_at).slice(0, 10)}`;
  }
  row.querySelector(".records").textContent = formatCount(item.record_count);
  row.querySelector(".size").textContent = formatBytes(item.size_bytes);
  row.querySelector(".created").textContent = formatInstant(item.created_at);
  const download = row.querySelector(".download");
  if (item.status === "COMPLETE" && item.report_url) {
    download.hidden = false;
    download.href = item.report_url; // a signed link: the file needs no key
    download.setAttribute("download", "");
    download.setAttribute("aria-label", `Download ${item.report_name}`);
  } else {
    download.remove();
  }
  const remove = row.querySelector(".delete");
  remove.setAttribute(
    "aria-label",
    `${item.status === "PENDING" ? "Cancel and delete" : "Delete"} ${item.report_name}`,
  );
  remove.addEventListener("click", () => removeReport(item));
  return row;
}

// Replaces the rows but keeps keyboard focus on the same control of the same report.
function replaceRows(items) {
  const active = document.activeElement;
  const focusedRow = active && active.closest ? active.closest("tr[data-id]") : null;
  const focusedId = focusedRow ? focusedRow.dataset.id : null;
  const focusedClass = active && active.classList ? [...active.classList].find((c) => c === "download" || c === "delete") : null;
  body.replaceChildren(...items.map(render));
  if (focusedId && focusedClass) {
    const again = body.querySelector(`tr[data-id="${CSS.escape(focusedId)}"] .${focusedClass}`);
    if (again) again.focus();
  }
}

async function refresh() {
  clearTimeout(timer);
  let answer;
  try {
    answer = await api("GET", LIST, {
      query: [["page[number]", String(page)], ["page[size]", String(PAGE_SIZE)]],
    });
  } catch (error) {
    announce(`Could not load the reports: ${error.message}`);
    timer = setTimeout(refresh, SLOW);
    return;
  }
  const { data, meta } = answer;
  if (!data.length && page > 1) {
    page -= 1;
    refresh();
    return;
  }
  replaceRows(data);
  announceChanges(data);
  empty.hidden = data.length > 0 || page > 1;
  const pages = Math.max(meta.total_pages, 1);
  pageLabel.textContent = `Page ${meta.page_number} of ${pages} (${meta.total_results} reports)`;
  prev.disabled = page <= 1;
  next.disabled = page >= pages;
  const building = data.some((item) => item.status === "PENDING");
  document.body.dataset.polling = building ? "fast" : "slow";
  timer = setTimeout(refresh, building && !document.hidden ? FAST : SLOW);
}

async function removeReport(item) {
  const verb = item.status === "PENDING" ? "Cancel and delete" : "Delete";
  if (!confirm(`${verb} the report “${item.report_name}”?`)) return;
  try {
    await api("DELETE", `${LIST}/${encodeURIComponent(item.id)}`);
    announce(`Deleted ${item.report_name}.`);
  } catch (error) {
    announce(`Could not delete ${item.report_name}: ${error.message}`);
  }
  await refresh();
  document.getElementById("main").focus();
}

if (initPage()) {
  prev.addEventListener("click", () => {
    page = Math.max(1, page - 1);
    refresh();
  });
  next.addEventListener("click", () => {
    page += 1;
    refresh();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh(); // back to the tab: fresh status at once
  });
  const created = new URLSearchParams(location.search).get("created");
  if (created) announce(`Report request ${created} created; its status updates below.`);
  refresh();
}
