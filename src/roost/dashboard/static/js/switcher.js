// The header's tenant switch, for a person with memberships in other tenants
// (users.memberships): choosing one trades the session for the member account's there
// (auth.switch_tenant) in place, without signing in again. Only a home account switches; from
// a member account, going home means signing in there.
import { call, signOut, switchTenant } from "./api.js";
import { errorBox, h, show } from "./ui.js";

let known = null; // the memberships of this page's session, asked for once

export async function memberships(me) {
  if (me.kind !== "user") return [];
  if (!known) known = call("users.memberships", { username: me.username }).catch(() => []);
  return known;
}

// Sign out of this tenant and open the sign-in form for `tenant` (no session to trade).
export async function signInAt(tenant) {
  try { await signOut(); } catch { /* the session is gone either way */ }
  window.location.hash = `#/tenant/${encodeURIComponent(tenant)}`;
  window.location.reload();
}

// Switch in place; answers an error to show, or reloads the page in the other tenant.
// `viaSignIn`: from a member account (or to the home), there is no session to trade.
export async function switchTo(me, tenant, viaSignIn) {
  if (viaSignIn) {
    if (window.confirm(`Switching to ${tenant} from here means signing in there. Sign out of ${me.tenant}?`)) await signInAt(tenant);
    return null;
  }
  try {
    await switchTenant(tenant);
  } catch (err) {
    if (err.code === "second_factor_required" &&
      window.confirm(`${tenant} asks for a second factor. Sign out of ${me.tenant} and sign in to ${tenant}?`)) {
      await signInAt(tenant);
      return null;
    }
    return err;
  }
  window.location.hash = "";
  window.location.reload();
  return null;
}

export async function mount(slot, me) {
  const list = await memberships(me);
  if (list.length < 2) return;
  const status = h("div", { class: "switch-error" });
  // a select and a button (not a change event: arrow keys on a select would switch at once)
  const select = h("select", { id: "tenant-switch", name: "tenant-switch" },
    list.map((m) => h("option", { value: m.tenant, selected: m.tenant === me.tenant },
      m.display_name && m.display_name !== m.tenant ? `${m.display_name} (${m.tenant})` : m.tenant)));
  const form = h("form", { class: "switch", "aria-label": "Switch tenant" },
    h("label", { for: "tenant-switch", class: "sr" }, "Tenant to switch to"), select,
    h("button", { type: "submit", "aria-label": "Switch tenant" }, "Switch"), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (select.value === me.tenant) return;
    const chosen = list.find((m) => m.tenant === select.value);
    const here = list.find((m) => m.tenant === me.tenant);
    const error = await switchTo(me, chosen.tenant, chosen.home || !(here && here.home));
    select.value = me.tenant;
    show(status, error ? errorBox(error) : null);
  });
  show(slot, form);
}
