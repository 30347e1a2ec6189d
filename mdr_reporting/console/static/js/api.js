// The console's one door to the API: the key from session storage, sent as
// "Authorization: Bearer", never in a URL; errors in the API's envelope.

const KEY = "mdr-console-key";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}

// A same-console path to go back to after signing in; anything else goes to the reports.
export function safeNext(value) {
  return typeof value === "string" && /^\/console\/[a-z/]*$/.test(value) ? value : "/console/reports";
}

export function requireKey() {
  if (getKey()) return true;
  location.replace("/console?next=" + encodeURIComponent(location.pathname));
  return false;
}

export class ApiError extends Error {
  constructor(status, errors) {
    const first = errors[0] || {};
    super(first.detail || first.title || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
  }
}

// Calls the API; answers the parsed JSON (null for an empty body) or throws ApiError.
export async function api(method, path, { query = [], body, key = getKey() } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of query) url.searchParams.append(name, value);
  const headers = { Accept: "application/json", Authorization: `Bearer ${key}` };
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (failure) {
    throw new ApiError(0, [{ title: "Network error", detail: `cannot reach the service (${failure.message})` }]);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const errors = data && Array.isArray(data.errors) ? data.errors : [];
    const error = new ApiError(response.status, errors);
    if (response.status === 401 && location.pathname !== "/console") {
      clearKey();
      location.replace("/console?expired=1&next=" + encodeURIComponent(location.pathname));
    }
    throw error;
  }
  return data;
}

// Each error of a 400 next to the field its source names; the rest in `fallback`.
// `locate(pointerOrParameter)` answers {input, message} elements or null.
export function showErrors(error, locate, fallback) {
  clearErrors(fallback.closest("form") || document);
  const unplaced = [];
  let first = null;
  for (const item of error.errors.length ? error.errors : [{ detail: error.message }]) {
    const source = item.source || {};
    const where = source.pointer ?? source.parameter;
    const spot = where !== undefined && where !== "" ? locate(where) : null;
    const text = item.detail || item.title || "invalid";
    if (spot && spot.message) {
      spot.message.textContent = spot.message.textContent ? `${spot.message.textContent} ${text}` : text;
      if (spot.input) spot.input.setAttribute("aria-invalid", "true");
      first = first || spot.input || spot.message;
    } else {
      unplaced.push(where ? `${where}: ${text}` : text);
    }
  }
  if (unplaced.length) {
    fallback.textContent = unplaced.join(" ");
    first = first || fallback;
  }
  if (first) {
    if (!first.hasAttribute("tabindex") && !/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(first.tagName)) {
      first.setAttribute("tabindex", "-1");
    }
    first.focus();
  }
}

export function clearErrors(root) {
  for (const element of root.querySelectorAll(".error")) element.textContent = "";
  for (const element of root.querySelectorAll("[aria-invalid]")) element.removeAttribute("aria-invalid");
}

export function announce(text) {
  const status = document.getElementById("page-status");
  if (status) status.textContent = text;
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatCount(value) {
  return value === null || value === undefined ? "" : Number(value).toLocaleString("en-US");
}

// "2026-12-01T10:00:00+00:00" -> "2026-12-01 10:00:00 +00:00" (the zone as the API wrote it)
export function formatInstant(value) {
  if (!value) return "";
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$/.exec(value);
  if (!match) return value;
  const zone = match[4] === "Z" ? "+00:00" : match[4] || "";
  return `${match[1]} ${match[2]} ${zone}`.trim();
}

export function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}
