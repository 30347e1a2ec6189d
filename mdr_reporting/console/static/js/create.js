// The create form: builds a v1 create body, checks the filter rule as the user types,
// and puts each error of the API's 400 next to the field its source.pointer names.
import { announce, api, clearErrors, showErrors } from "./api.js";
import { allowedTypes, checkFilters, toApi } from "./filters.js";
import { initPage } from "./nav.js";

const form = document.getElementById("create-form");
const list = document.getElementById("filter-rows");
const rowTemplate = document.getElementById("filter-row");
const zone = document.getElementById("timezone");
const formError = document.getElementById("form-error");
let serial = 0;

function rowElements() {
  return [...list.querySelectorAll("li.filter")];
}

function readRow(li) {
  return {
    type: li.querySelector(".f-type").value,
    criterion: li.querySelector(".f-criterion").value,
    match: li.querySelector(".f-match").value,
    value: li.querySelector(".f-value").value,
  };
}

function readRows() {
  return rowElements().map(readRow);
}

// Re-labels the rows, limits each join to what the rule allows and shows what breaks it.
// `touched` limits value messages to fields the user has left or submitted.
function refreshFilters({ submitting = false } = {}) {
  const rows = readRows();
  const problems = checkFilters(rows);
  rowElements().forEach((li, index) => {
    li.querySelector(".filter-legend").textContent = `Filter ${index + 1}`;
    const type = li.querySelector(".f-type");
    const allowed = allowedTypes(rows, index);
    for (const option of type.options) option.disabled = !allowed.includes(option.value) && option.value !== type.value;
    const isTags = rows[index].criterion === "tags_list";
    li.querySelector(".f-match-field").hidden = isTags;
    li.querySelector(".h-value").textContent = isTags ? "Tags, comma-separated; a message with any of them matches." : "";
    for (const field of ["type", "value"]) {
      const mine = problems.find((p) => p.index === index && p.field === field);
      const input = li.querySelector(field === "type" ? ".f-type" : ".f-value");
      const message = li.querySelector(field === "type" ? ".e-type" : ".e-value");
      const show = mine && (field === "type" || submitting || input.dataset.touched);
      message.textContent = show ? mine.message : "";
      if (show) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  });
  return problems;
}

function addRow() {
  const rows = readRows();
  const li = rowTemplate.content.firstElementChild.cloneNode(true);
  serial += 1;
  for (const [cls, label] of [["type", "l-type"], ["criterion", "l-criterion"], ["match", "l-match"], ["value", "l-value"]]) {
    const control = li.querySelector(`.f-${cls}`);
    control.id = `filter-${serial}-${cls}`;
    li.querySelector(`.${label}`).htmlFor = control.id;
    const error = li.querySelector(`.e-${cls}`);
    const hint = li.querySelector(`.h-${cls}`);
    const described = [];
    if (hint) {
      hint.id = `${control.id}-hint`;
      described.push(hint.id);
    }
    if (error) {
      error.id = `${control.id}-error`;
      described.push(error.id);
    }
    if (described.length) control.setAttribute("aria-describedby", described.join(" "));
  }
  li.querySelector(".f-type").value = rows.some((r) => r.type === "or") ? "or" : "and";
  li.querySelector(".f-remove").addEventListener("click", () => {
    const at = rowElements().indexOf(li);
    li.remove();
    refreshFilters();
    const rest = rowElements();
    (rest[Math.min(at, rest.length - 1)]?.querySelector(".f-type") || document.getElementById("add-filter")).focus();
  });
  const value = li.querySelector(".f-value");
  value.addEventListener("blur", () => {
    value.dataset.touched = "1";
    refreshFilters();
  });
  list.appendChild(li);
  refreshFilters();
  li.querySelector(".f-type").focus();
}

function listOf(id) {
  return document.getElementById(id).value.split(",").map((item) => item.trim()).filter(Boolean);
}

function checked(name) {
  return [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((box) => box.value);
}

function body() {
  const out = {
    start_time: document.getElementById("start_time").value,
    timezone: zone.value,
    directions: checked("directions"),
    record_types: checked("record_types").map(Number),
    connections: listOf("connections"),
    profiles: listOf("profiles"),
    format: document.getElementById("format").value,
    include_message_body: document.getElementById("include_message_body").checked,
    filters: toApi(readRows()),
  };
  const end = document.getElementById("end_time").value;
  if (end) out.end_time = end;
  const name = document.getElementById("report_name").value.trim();
  if (name) out.report_name = name;
  if (!out.start_time) delete out.start_time; // the API names the missing field
  return out;
}

// A pointer of the API's 400 -> the control and message element it names.
function locate(pointer) {
  const filter = /^\/filters\/(\d+)(?:\/([a-z_]+))?/.exec(pointer);
  if (filter) {
    const li = rowElements()[Number(filter[1])];
    if (li) {
      const field = filter[2] || "";
      const which = field === "filter_type" ? "type" : field.endsWith("_filter") ? "match" : "value";
      return { input: li.querySelector(`.f-${which}`), message: li.querySelector(`.e-${which === "match" ? "match" : which}`) };
    }
  }
  const top = "/" + pointer.split("/")[1];
  const input = form.querySelector(`[data-pointer="${CSS.escape(top)}"]`);
  const name = top.slice(1);
  const message = document.getElementById(`${name}-error`);
  if (!message) return null;
  return { input: input && input.tagName === "FIELDSET" ? input.querySelector("input") : input, message };
}

// Naive "now" in the chosen zone, as a datetime-local value.
function nowIn(zoneName, daysBack) {
  const at = new Date(Date.now() - daysBack * 86400000);
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone: zoneName, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(at).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:00`;
}

if (initPage()) {
  // The browser's zone preselected, unless the user already chose one (on a slow page the
  // select can be used before this module runs: their choice stays).
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const untouched = [...zone.options].every((o) => o.selected === o.defaultSelected);
  if (untouched && browserZone && [...zone.options].some((o) => o.value === browserZone)) {
    zone.value = browserZone;
  }
  document.getElementById("add-filter").addEventListener("click", addRow);
  list.addEventListener("change", () => refreshFilters());
  list.addEventListener("input", () => refreshFilters());
  for (const button of form.querySelectorAll("[data-preset-days]")) {
    button.addEventListener("click", () => {
      const days = Number(button.dataset.presetDays);
      let zoneName = zone.value;
      try {
        nowIn(zoneName, 0);
      } catch {
        zoneName = "UTC";
      }
      document.getElementById("start_time").value = nowIn(zoneName, days);
      document.getElementById("end_time").value = nowIn(zoneName, 0);
    });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const problems = refreshFilters({ submitting: true });
    if (problems.length) {
      formError.textContent = "Fix the filters marked below first.";
      const li = rowElements()[problems[0].index];
      li.querySelector(problems[0].field === "type" ? ".f-type" : ".f-value").focus();
      return;
    }
    const submit = document.getElementById("create-submit");
    submit.disabled = true;
    announce("Creating the report request…");
    try {
      const created = await api("POST", "/reporting/mdr_requests", { body: body() });
      location.assign(`/console/reports?created=${encodeURIComponent(created.id)}`);
    } catch (error) {
      announce(error.status === 400 ? "The API refused the request: see the marked fields." : `Not created: ${error.message}`);
      showErrors(error, locate, formError);
    } finally {
      submit.disabled = false;
    }
  });
}
