// Every signed-in page: the sign-out button, and back to sign-in when there is no key.
import { clearKey, requireKey } from "./api.js";

export function initPage() {
  const signOut = document.getElementById("sign-out");
  if (signOut) {
    signOut.addEventListener("click", () => {
      clearKey();
      location.assign("/console");
    });
  }
  const who = document.getElementById("signed-in-as");
  if (who) who.textContent = "Signed in with an API key";
  return requireKey();
}
