// Sign in: check the key against the API, then keep it in this tab's session storage.
import { api, getKey, safeNext, setKey } from "./api.js";

const form = document.getElementById("sign-in-form");
const input = document.getElementById("api-key");
const message = document.getElementById("api-key-error");
const params = new URLSearchParams(location.search);
const next = safeNext(params.get("next"));

if (params.get("expired")) {
  message.textContent = "The API answered 401 for the saved key: sign in again.";
}
if (getKey() && !params.get("expired")) location.replace(next);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = input.value.trim();
  message.textContent = "";
  input.removeAttribute("aria-invalid");
  if (!key) {
    message.textContent = "Enter an API key.";
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  try {
    await api("GET", "/v2/legacy/reporting/batch_detail_records/messaging", {
      query: [["page[size]", "1"]],
      key,
    });
  } catch (error) {
    const reason = error.status === 401 ? "This key is unknown or revoked."
      : error.status === 403 ? "This key lacks the reports scope."
      : error.message;
    message.textContent = `Not signed in: ${reason}`;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  setKey(key);
  input.value = "";
  location.assign(next);
});
