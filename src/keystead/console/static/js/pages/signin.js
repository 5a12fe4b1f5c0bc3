// Signing in, and choosing a new password when the admin still has a one-time password.

import { api, describe, setCsrfToken } from "../api.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { Alert, TextInput, useForm } from "../ui.js";

export const MIN_PASSWORD = 12;

function Card({ title, children }) {
  const ref = useRef(null);
  useEffect(() => ref.current && ref.current.focus(), [title]);
  return html`<main id="main" class="signin">
    <div class="panel narrow" style=${{ margin: "10vh auto 0" }}>
      <p class="muted small">Keystead console</p>
      <h1 ref=${ref} tabindex="-1">${title}</h1>
      ${children}
    </div>
  </main>`;
}

const ACCOUNT_KEY = "keystead.account";

function rememberedAccount() {
  const fromLink = new URLSearchParams(location.hash.split("?")[1] || "").get("account");
  try {
    return fromLink || localStorage.getItem(ACCOUNT_KEY) || "";
  } catch {
    return fromLink || ""; // storage may be off
  }
}

export function SignIn({ notice, onSignedIn }) {
  const form = useForm({ email: "", password: "", account: rememberedAccount() });
  const { values, errors } = form;
  // An installation with several accounts needs the account's customer id (an email is
  // unique within its account only); the field shows once the server asks, or when known.
  const [askAccount, setAskAccount] = useState(Boolean(values.account));
  useEffect(() => {
    if (errors.account) setAskAccount(true);
  }, [errors.account]);
  function validate(v) {
    return {
      email: !v.email.trim() ? "Enter your email address." : undefined,
      password: !v.password ? "Enter your password." : undefined,
      account: askAccount && !v.account.trim() ? "Enter your account's customer id." : undefined,
    };
  }
  async function signIn(v) {
    const body = { email: v.email, password: v.password };
    if (v.account.trim()) body.account = v.account.trim();
    const session = await api.post("/session", body, { expectSession: false });
    try {
      localStorage.setItem(ACCOUNT_KEY, session.account.customer_id);
    } catch {
      // the next sign-in asks again
    }
    setCsrfToken(session.csrf_token);
    onSignedIn(session, v.password);
  }
  const refusal = form.message;
  return html`<${Card} title="Sign in">
    ${notice && html`<${Alert} kind="info"><p>${notice}</p><//>`}
    ${refusal && !errors.account && html`<${Alert} kind="error"><p>${signInMessage(refusal)}</p><//>`}
    <form noValidate onSubmit=${(e) => { e.preventDefault(); form.submit(validate, signIn); }}>
      <${TextInput} id="signin-email" label="Email" type="email" autocomplete="username"
        value=${values.email} onInput=${form.set("email")} error=${errors.email} required />
      <${TextInput} id="signin-password" label="Password" type="password" autocomplete="current-password"
        value=${values.password} onInput=${form.set("password")} error=${errors.password} required />
      ${askAccount && html`<${TextInput} id="signin-account" label="Account (customer id)" autocomplete="organization"
        hint="This Keystead holds several accounts. The customer id is on your account page, and in the SCIM URL."
        value=${values.account} onInput=${form.set("account")} error=${errors.account} spellcheck="false" />`}
      <button type="submit" class="primary" disabled=${form.busy}>${form.busy ? "Signing in…" : "Sign in"}</button>
    </form>
    <p class="small muted" style=${{ marginTop: "1rem" }}>
      The first admin's email and one-time password were printed by <code>keystead init</code>.
      Forgot your password? Another admin can reset it on the Admins page, or an operator with${" "}
      <code>keystead admin reset-password EMAIL</code>.
    </p>
  <//>`;
}

function signInMessage(error) {
  if (error.status === 429) {
    const wait = Number(error.retryAfter);
    return Number.isFinite(wait) && wait > 0
      ? `Too many failed sign-ins. Wait ${plainWait(wait)} before trying again.`
      : describe(error);
  }
  if (error.status === 401) return "The email or the password is wrong.";
  return describe(error);
}

function plainWait(seconds) {
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  const parts = [];
  if (minutes) parts.push(`${minutes} minute${minutes === 1 ? "" : "s"}`);
  if (rest) parts.push(`${rest} second${rest === 1 ? "" : "s"}`);
  return parts.join(" ");
}

/** The first thing an admin on a one-time password sees (and all they may do). */
export function ChoosePassword({ session, oneTimePassword, onChanged, onSignOut }) {
  const form = useForm({ current: oneTimePassword || "", password: "", again: "" });
  const { values, errors } = form;
  function validate(v) {
    return {
      current: !v.current ? "Enter the one-time password you signed in with." : undefined,
      password:
        v.password.length < MIN_PASSWORD
          ? `Use at least ${MIN_PASSWORD} characters.`
          : v.password === v.current
            ? "Choose a password different from the one-time password."
            : undefined,
      again: v.again !== v.password ? "The two passwords differ." : undefined,
    };
  }
  async function change(v) {
    await api.post("/me/password", { current_password: v.current, new_password: v.password });
    onChanged();
  }
  return html`<${Card} title="Choose a new password">
    <p>
      You signed in as <strong>${session.admin.email}</strong> with a one-time password. Choose
      your own password to continue; until then nothing else is open to you.
    </p>
    <${ErrorFor} error=${form.message} />
    <form noValidate onSubmit=${(e) => { e.preventDefault(); form.submit(validate, change); }}>
      ${!oneTimePassword && html`<${TextInput} id="pw-current" label="One-time password" type="password"
        autocomplete="current-password" value=${values.current} onInput=${form.set("current")}
        error=${errors.current || errors.current_password} />`}
      <${TextInput} id="pw-new" label="New password" type="password" autocomplete="new-password"
        hint=${`At least ${MIN_PASSWORD} characters. A passphrase of a few words is good.`}
        value=${values.password} onInput=${form.set("password")} error=${errors.password || errors.new_password} />
      <${TextInput} id="pw-again" label="New password again" type="password" autocomplete="new-password"
        value=${values.again} onInput=${form.set("again")} error=${errors.again} />
      <div class="row">
        <button type="submit" class="primary" disabled=${form.busy}>${form.busy ? "Saving…" : "Save password"}</button>
        <button type="button" onClick=${onSignOut}>Sign out</button>
      </div>
    </form>
  <//>`;
}

function ErrorFor({ error }) {
  if (!error) return null;
  return html`<${Alert} kind="error"><p>${describe(error)}</p><//>`;
}
