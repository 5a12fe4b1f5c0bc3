// #/admins: console admins (invite, roles, reset, remove), your own password, and admin API
// tokens for scripts. One-time passwords and tokens are shown once.

import { api, describe } from "../api.js";
import { html, useState } from "../lib.js";
import {
  Alert,
  Badge,
  ConfirmDialog,
  CopyField,
  Dialog,
  ErrorAlert,
  Loading,
  PageHead,
  SelectInput,
  TextInput,
  Time,
  useForm,
  useResource,
  useSession,
} from "../ui.js";
import { MIN_PASSWORD } from "./signin.js";

const ROLES = [
  ["admin", "Admin: may change everything"],
  ["viewer", "Viewer: may look at everything, change nothing"],
];

function SecretDialog({ secret, onClose }) {
  return html`<${Dialog} open=${Boolean(secret)} title=${secret ? secret.title : ""} onClose=${onClose}>
    ${secret && html`<div class="secret-box"><${CopyField} id="shown-once" label=${secret.label} value=${secret.value} /></div>
      <${Alert} kind="warning"><p>${secret.note} It will not be shown again.</p><//>
      <div class="dialog-actions"><button type="button" class="primary" onClick=${onClose}>I have copied it</button></div>`}
  <//>`;
}

export function AdminsPage() {
  const session = useSession();
  const admins = useResource(() => api.get("/admins"), []);
  const [inviting, setInviting] = useState(false);
  const [secret, setSecret] = useState(null);
  const [confirm, setConfirm] = useState(null); // {kind: "remove"|"reset", admin}
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const canWrite = session.canWrite;
  async function setRole(admin, role) {
    setError(null);
    setNotice(null);
    if (admin.id === session.admin.id && role !== "admin") {
      setConfirm({ kind: "demote", admin });  // asked first: it cannot be undone by oneself
      admins.reload();
      return;
    }
    try {
      await api.patch(`/admins/${encodeURIComponent(admin.id)}`, { role });
      setNotice(`${admin.email} is now ${role === "admin" ? "an admin" : "a viewer"}.`);
      admins.reload();
    } catch (e) {
      setError(e);
      admins.reload();
    }
  }
  return html`<${PageHead} title="Admins">
      ${canWrite && html`<button type="button" class="primary" onClick=${() => setInviting(true)}>Invite admin</button>`}
    <//>
    <${ErrorAlert} error=${admins.error || error} />
    ${notice && html`<${Alert} kind="success"><p>${notice}</p><//>`}
    ${!admins.data ? html`<${Loading} what="Loading admins" />` : html`<div class="table-wrap"><table class="cards">
      <caption class="visually-hidden">Console admins</caption>
      <thead><tr><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Status</th>
        <th scope="col" class="hide-narrow">Last sign-in</th>${canWrite && html`<th scope="col">Actions</th>`}</tr></thead>
      <tbody>${admins.data.map((a) => {
        const me = a.id === session.admin.id;
        return html`<tr>
          <td data-label="Email">${a.email}${me && html` <${Badge}>you<//>`}</td>
          <td data-label="Role">${canWrite
            ? html`<label class="visually-hidden" for=${`role-${a.id}`}>Role of ${a.email}</label>
                <select id=${`role-${a.id}`} value=${a.role} onChange=${(e) => setRole(a, e.target.value)}>
                  <option value="admin" selected=${a.role === "admin"}>admin</option>
                  <option value="viewer" selected=${a.role === "viewer"}>viewer</option>
                </select>`
            : a.role}</td>
          <td data-label="Status">${a.password_change_required ? html`<${Badge} kind="warn">must choose a password<//>` : html`<${Badge} kind="ok">active<//>`}</td>
          <td class="hide-narrow"><${Time} value=${a.last_login_at} /></td>
          ${canWrite && html`<td class="row">
            <button type="button" onClick=${() => setConfirm({ kind: "reset", admin: a })}
              aria-label=${`Reset password of ${a.email}`}>Reset password</button>
            <button type="button" class="danger" onClick=${() => setConfirm({ kind: "remove", admin: a })}
              aria-label=${`Remove ${a.email}`}>Remove</button>
          </td>`}
        </tr>`;
      })}</tbody>
    </table></div>`}
    <${OwnPassword} />
    <${Tokens} canWrite=${canWrite} onSecret=${setSecret} />
    <${ConfirmDialog} open=${confirm && confirm.kind === "reset"} title=${confirm ? `Reset the password of ${confirm.admin.email}?` : ""}
      confirmLabel="Reset password" onCancel=${() => setConfirm(null)}
      onConfirm=${async () => {
        const made = await api.post(`/admins/${encodeURIComponent(confirm.admin.id)}/password-reset`);
        const who = confirm.admin.email;
        setConfirm(null);
        admins.reload();
        if (who === session.admin.email) return session.reload();
        setSecret({ title: `New one-time password for ${who}`, label: "One-time password", value: made.one_time_password,
          note: `Give it to ${who}; they must choose a new password when they sign in.` });
      }}>
      <p>Their current password stops working, they are signed out everywhere and their admin API tokens
        are revoked. You get a one-time password to give them.</p>
    <//>
    <${ConfirmDialog} open=${confirm && confirm.kind === "demote"} title="Make yourself a viewer?"
      confirmLabel="Make me a viewer" onCancel=${() => setConfirm(null)}
      onConfirm=${async () => {
        await api.patch(`/admins/${encodeURIComponent(confirm.admin.id)}`, { role: "viewer" });
        setConfirm(null);
        session.reload(); // the console hides every write control from now on
      }}>
      <p>You will be able to see everything but change nothing, your own role included:
        only another admin can make you an admin again.</p>
    <//>
    <${ConfirmDialog} open=${confirm && confirm.kind === "remove"} title=${confirm ? `Remove ${confirm.admin.email}?` : ""}
      confirmLabel="Remove admin" onCancel=${() => setConfirm(null)}
      onConfirm=${async () => {
        await api.delete(`/admins/${encodeURIComponent(confirm.admin.id)}`);
        const me = confirm.admin.id === session.admin.id;
        setConfirm(null);
        if (me) return session.reload();
        admins.reload();
      }}>
      <p>They are signed out at once and their admin API tokens stop working. The account keeps at least one admin.</p>
    <//>
    <${SecretDialog} secret=${secret} onClose=${() => setSecret(null)} />
    ${inviting && html`<${InviteDialog} onClose=${() => setInviting(false)}
      onInvited=${(made) => { setInviting(false); admins.reload(); setSecret({
        title: `${made.email} is invited`, label: "One-time password", value: made.one_time_password,
        note: `Give it to ${made.email} by a safe channel: they sign in with it and choose their own password.` }); }} />`}`;
}

function InviteDialog({ onClose, onInvited }) {
  const form = useForm({ email: "", role: "admin" });
  async function invite(v) {
    onInvited(await api.post("/admins", { email: v.email.trim(), role: v.role }));
  }
  return html`<${Dialog} open=${true} title="Invite an admin" onClose=${onClose}>
    <form noValidate onSubmit=${(e) => {
      e.preventDefault();
      form.submit((v) => ({ email: /^\S+@\S+\.\S+$/.test(v.email.trim()) ? undefined : "Enter an email address." }), invite);
    }}>
      <${TextInput} id="invite-email" label="Email" type="email" value=${form.values.email} onInput=${form.set("email")}
        error=${form.errors.email} autocomplete="off" />
      <${SelectInput} id="invite-role" label="Role" value=${form.values.role} onInput=${form.set("role")} options=${ROLES} />
      ${form.message && !form.errors.email && html`<${Alert} kind="error"><p>${describe(form.message)}</p><//>`}
      <div class="dialog-actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${form.busy}>Invite</button>
      </div>
    </form>
  <//>`;
}

function OwnPassword() {
  const form = useForm({ current: "", password: "", again: "" });
  const [done, setDone] = useState(false);
  function validate(v) {
    return {
      current: v.current ? undefined : "Enter your current password.",
      password: v.password.length < MIN_PASSWORD ? `Use at least ${MIN_PASSWORD} characters.` : undefined,
      again: v.again === v.password ? undefined : "The two passwords differ.",
    };
  }
  async function change(v) {
    setDone(false);
    await api.post("/me/password", { current_password: v.current, new_password: v.password });
    form.setValues({ current: "", password: "", again: "" });
    setDone(true);
  }
  const { values, errors } = form;
  return html`<section class="panel" aria-labelledby="own-password" style=${{ marginTop: "1rem" }}>
    <h2 id="own-password">Your password</h2>
    <p class="small muted">Changing it signs you out everywhere else and revokes your admin API tokens.</p>
    <form class="narrow" noValidate onSubmit=${(e) => { e.preventDefault(); form.submit(validate, change); }}>
      <${TextInput} id="own-current" label="Current password" type="password" autocomplete="current-password"
        value=${values.current} onInput=${form.set("current")} error=${errors.current || errors.current_password} />
      <${TextInput} id="own-new" label="New password" type="password" autocomplete="new-password"
        value=${values.password} onInput=${form.set("password")} error=${errors.password || errors.new_password} />
      <${TextInput} id="own-again" label="New password again" type="password" autocomplete="new-password"
        value=${values.again} onInput=${form.set("again")} error=${errors.again} />
      ${form.message && !Object.keys(form.message.fields || {}).length
        && html`<${Alert} kind="error"><p>${describe(form.message)}</p><//>`}
      ${done && html`<${Alert} kind="success"><p>Password changed.</p><//>`}
      <button type="submit" disabled=${form.busy}>Change password</button>
    </form>
  </section>`;
}

function Tokens({ canWrite, onSecret }) {
  const tokens = useResource(() => api.get("/tokens"), []);
  const form = useForm({ name: "", days: "90" });
  const [revoke, setRevoke] = useState(null);
  async function create(v) {
    const made = await api.post("/tokens", { name: v.name.trim(), expires_in_days: v.days ? Number(v.days) : null });
    form.setValues({ name: "", days: "90" });
    tokens.reload();
    onSecret({ title: `Admin API token ${made.name}`, label: "Token", value: made.token,
      note: "Send it as 'Authorization: Bearer …' to /api/admin/v1 (see /docs). It acts as you, with your role." });
  }
  return html`<section class="panel" aria-labelledby="tokens-title">
    <h2 id="tokens-title">Admin API tokens</h2>
    <p class="small muted">For scripts calling the admin API. A token acts as the admin who made it.</p>
    <${ErrorAlert} error=${tokens.error} />
    ${tokens.data && (tokens.data.length
      ? html`<div class="table-wrap"><table>
          <thead><tr><th scope="col">Name</th><th scope="col">Admin</th><th scope="col">Starts with</th>
            <th scope="col" class="hide-narrow">Created</th><th scope="col">Expires</th>${canWrite && html`<th scope="col">Actions</th>`}</tr></thead>
          <tbody>${tokens.data.map((t) => html`<tr><td>${t.name}</td><td>${t.admin_email}</td><td><code>${t.hint}</code></td>
            <td class="hide-narrow"><${Time} value=${t.created_at} /></td><td>${t.expires_at ? html`<${Time} value=${t.expires_at} />` : "never"}</td>
            ${canWrite && html`<td><button type="button" class="danger" onClick=${() => setRevoke(t)}
              aria-label=${`Revoke token ${t.name}`}>Revoke</button></td>`}</tr>`)}</tbody>
        </table></div>`
      : html`<p class="muted">No admin API tokens.</p>`)}
    ${canWrite && html`<form class="toolbar" noValidate style=${{ marginTop: "1rem" }} onSubmit=${(e) => {
      e.preventDefault();
      form.submit((v) => ({
        name: v.name.trim() ? undefined : "Enter a name.",
        days: !v.days || (/^\d+$/.test(v.days) && Number(v.days) >= 1 && Number(v.days) <= 3650)
          ? undefined
          : "1 to 3,650 whole days, or empty for a token that never expires.",
      }), create);
    }}>
      <${TextInput} id="token-name" label="New token's name" value=${form.values.name} onInput=${form.set("name")} error=${form.errors.name} />
      <${TextInput} id="token-days" label="Expires in (days)" inputmode="numeric" value=${form.values.days}
        hint="1 to 3,650; empty: never"
        onInput=${form.set("days")} error=${form.errors.days || form.errors.expires_in_days} />
      <button type="submit" disabled=${form.busy}>Create token</button>
    </form>`}
    ${form.message && !Object.keys(form.message.fields || {}).length && html`<${Alert} kind="error"><p>${describe(form.message)}</p><//>`}
    <${ConfirmDialog} open=${Boolean(revoke)} title=${revoke ? `Revoke token ${revoke.name}?` : ""} confirmLabel="Revoke token"
      onCancel=${() => setRevoke(null)}
      onConfirm=${async () => { await api.delete(`/tokens/${encodeURIComponent(revoke.id)}`); setRevoke(null); tokens.reload(); }}>
      <p>Scripts using it are refused from their next request.</p>
    <//>
  </section>`;
}
