// Sign in with a password; when the server asks for a second factor, the code from the
// authenticator app (the challenge it answered with goes back with the code).
import { signIn } from "../api.js";
import { errorBox, field, h, show } from "../ui.js";

// #/tenant/<name> (where the tenants page's switch lands) fills in the tenant
function askedTenant() {
  const match = window.location.hash.match(/^#\/tenant\/([^/]+)$/);
  return match ? decodeURIComponent(match[1]) : "default";
}

export function signInPage(done) {
  const status = h("div", { "aria-live": "polite" });
  const tenant = h("input", { name: "tenant", value: askedTenant(), autocomplete: "organization", required: true });
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Roost"),
    field("Tenant", tenant), field("Username or email", username), field("Password", password),
    status, h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    show(status);
    try {
      await signIn({ tenant: tenant.value, username: username.value, password: password.value });
      done();
    } catch (err) {
      if (err.code === "second_factor_required" && err.details.challenge) {
        form.replaceWith(secondFactor(tenant.value, err.details.challenge, done));
      } else {
        show(status, errorBox(err));
      }
    }
  });
  setTimeout(() => username.focus());
  return h("main", { id: "main", class: "center" }, form);
}

function secondFactor(tenant, challenge, done) {
  const status = h("div", { "aria-live": "polite" });
  const code = h("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const form = h("form", { class: "card" },
    h("h1", {}, "Second factor"),
    h("p", {}, "Enter the code from your authenticator app, or a recovery code."),
    field("Code", code), status, h("button", { type: "submit" }, "Verify"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await signIn({ tenant, challenge, code: code.value.trim() });
      done();
    } catch (err) {
      show(status, errorBox(err));
    }
  });
  setTimeout(() => code.focus());
  return form;
}
