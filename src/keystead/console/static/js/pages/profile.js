// #/profile: the account, and the IDP Integration panel where Entra is set up.

import { api } from "../api.js";
import { html, useEffect, useState } from "../lib.js";
import { href } from "../router.js";
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
  ago,
  download,
  formatNumber,
  useForm,
  useResource,
  useSession,
} from "../ui.js";

export function ProfilePage() {
  const session = useSession();
  const account = useResource(() => api.get("/account"), []);
  return html`<${PageHead} title="Account" />
    <${ErrorAlert} error=${account.error} />
    ${account.data && html`<${AccountPanel} account=${account.data} onChange=${account.reload} />`}
    ${account.data &&
    (account.data.plan === "enterprise"
      ? html`<${IdpPanel} canWrite=${session.canWrite} />`
      : html`<section class="panel disabled" aria-labelledby="idp-title">
          <h2 id="idp-title">IDP Integration <${Badge} kind="off">not available<//></h2>
          <p>
            IDP integration (directory sync from Entra ID and sign-in with Entra tokens) needs the
            enterprise plan; this account is on the <strong>${account.data.plan}</strong> plan. An operator
            can change it with <code>keystead account set-plan ${account.data.customer_id} enterprise</code>.
          </p>
        </section>`)}`;
}

function AccountPanel({ account, onChange }) {
  const { canWrite, reload } = useSession();
  const [editing, setEditing] = useState(false);
  const form = useForm({ name: account.name });
  async function save(v) {
    await api.patch("/account", { name: v.name });
    setEditing(false);
    onChange();
    reload();
  }
  return html`<section class="panel" aria-labelledby="account-title">
    <h2 id="account-title">${account.name}</h2>
    <div class="grid2">
      <div>
        <${CopyField} id="customer-id" label="Customer id" value=${account.customer_id}
          hint="The Ubiq client's ubiq_customer_id in IDP mode; also part of the SCIM URL." />
      </div>
      <dl class="facts">
        <dt>Plan</dt><dd>${account.plan}</dd>
        <dt>Created</dt><dd><${Time} value=${account.created_at} /></dd>
      </dl>
    </div>
    ${canWrite && !editing && html`<button type="button" onClick=${() => setEditing(true)}>Rename account</button>`}
    ${editing && html`<form class="narrow" noValidate
        onSubmit=${(e) => { e.preventDefault(); form.submit((v) => ({ name: v.name.trim() ? undefined : "Enter a name." }), save); }}>
      <${TextInput} id="account-name" label="Account name" value=${form.values.name} onInput=${form.set("name")}
        error=${form.errors.name} />
      <${ErrorAlert} error=${form.message && !form.errors.name ? form.message : null} />
      <div class="row">
        <button type="submit" class="primary" disabled=${form.busy}>Save</button>
        <button type="button" onClick=${() => setEditing(false)}>Cancel</button>
      </div>
    </form>`}
  </section>`;
}

const REFRESH_MS = 10000; // the page exists to watch Entra connect: keep its status fresh

function IdpPanel({ canWrite }) {
  const idp = useResource(() => api.get("/idp"), []);
  const status = useResource(() => api.get("/idp/status"), []);
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") status.reload();
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, []);
  const [confirmDisable, setConfirmDisable] = useState(false);
  const [error, setError] = useState(null);
  const refresh = () => {
    idp.reload();
    status.reload();
  };
  async function setEnabled(enabled) {
    setError(null);
    try {
      idp.setData(await api.patch("/idp", { enabled }));
      status.reload();
    } catch (e) {
      setError(e);
    }
  }
  if (idp.error) return html`<${ErrorAlert} error=${idp.error} />`;
  if (!idp.data) return html`<${Loading} what="Loading the IDP integration" />`;
  const settings = idp.data;
  return html`<section class="panel" aria-labelledby="idp-title">
    <h2 id="idp-title">
      IDP Integration
      ${settings.enabled ? html`<${Badge} kind="ok">enabled<//>` : html`<${Badge} kind="off">disabled<//>`}
    </h2>
    <p class="muted">
      Microsoft Entra ID syncs users and groups here over SCIM, and applications sign their users in
      with Entra tokens. Each synced user gets an API key; a synced group whose name matches a dataset
      group gives its members that group's datasets.
    </p>
    <${ErrorAlert} error=${error} />
    ${canWrite && html`<div class="row" style=${{ marginBottom: "1rem" }}>
      ${settings.enabled
        ? html`<button type="button" onClick=${() => setConfirmDisable(true)}>Disable IDP integration</button>`
        : html`<button type="button" class="primary" onClick=${() => setEnabled(true)}>Enable IDP integration</button>`}
    </div>`}
    <${ConfirmDialog} open=${confirmDisable} title="Disable IDP integration?" confirmLabel="Disable"
      onCancel=${() => setConfirmDisable(false)}
      onConfirm=${async () => { await setEnabled(false); setConfirmDisable(false); }}>
      <p>While it is disabled:</p>
      <ul>
        <li>Entra's provisioning requests are refused (403), so users and groups stop syncing and
          Entra's provisioning log shows failures;</li>
        <li>sign-ins with Entra tokens are refused, so applications cannot get new certificates for
          their users.</li>
      </ul>
      <p>Synced users, groups, their keys and the settings below are kept; enabling it again resumes.</p>
    <//>
    ${status.data && html`<${StatusStrip} status=${status.data} enabled=${settings.enabled}
      onRefresh=${() => status.reload()} />`}
    <${SetupGuide} settings=${settings} status=${status.data} />
    <${ScimSection} settings=${settings} canWrite=${canWrite} onChange=${refresh} />
    <${SignInSection} settings=${settings} canWrite=${canWrite} onSaved=${(s) => { idp.setData(s); status.reload(); }}
      onTested=${() => status.reload()} />
  </section>`;
}

function StatusStrip({ status, enabled, onRefresh }) {
  const since = status.window_start;
  const last = status.last_scim_request;
  const failed = status.failed_scim_requests;
  const refused = status.refused_sign_ins;
  const wrongToken = status.refused_token_at
    && (!status.connected_at || new Date(status.refused_token_at) > new Date(status.connected_at));
  return html`<div>
    <div class="row">
      <h3 style=${{ margin: 0 }}>Status${enabled ? "" : " (integration disabled)"}</h3>
      <button type="button" class="link" onClick=${onRefresh}>Refresh</button>
      <span class="small muted">(updates every ${REFRESH_MS / 1000} s)</span>
    </div>
    ${wrongToken && html`<${Alert} kind="error"><p>
      A SCIM request with a missing or wrong secret token arrived <${Time} value=${status.refused_token_at} />:
      Entra holds an old or mistyped token. Paste the current one into the enterprise application
      (Provisioning → Admin Credentials → Secret Token), or rotate it below and paste the new one.
    </p><//>`}
    <div class="status-strip">
      <a href=${href("/provisioning", { kind: "scim" })} class=${last && last.outcome === "failed" ? "bad" : ""}>
        <span class="value">${last ? `${last.outcome === "failed" ? "Failed" : "OK"}: ${last.operation}` : "None yet"}</span>
        <span class="label">Last SCIM change or failure${last ? `, ${ago(last.at)}` : ""}</span>
      </a>
      <a href=${href("/provisioning", { kind: "scim" })}>
        <span class="value">${status.connected_at ? ago(status.connected_at) : "Never"}</span>
        <span class="label">Entra last reached Keystead</span>
      </a>
      <a href=${href("/directory")}>
        <span class="value">${formatNumber(status.users)}</span><span class="label">Users synced</span>
      </a>
      <a href=${href("/directory", { tab: "groups" })}>
        <span class="value">${formatNumber(status.groups)}</span><span class="label">Groups synced</span>
      </a>
      <a href=${href("/provisioning", { kind: "scim", outcome: "failed", since })} class=${failed ? "bad" : ""}>
        <span class="value">${formatNumber(failed)}</span><span class="label">Failed SCIM requests, last 24 h</span>
      </a>
      <a href=${href("/provisioning", { kind: "sso", outcome: "failed", since })} class=${refused ? "bad" : ""}>
        <span class="value">${formatNumber(refused)}</span><span class="label">Refused sign-ins, last 24 h</span>
      </a>
      <div class="stat" title="Tokens whose signature never verified (garbage, forged, an unknown key) are counted, not logged one by one.">
        <span class="value">${formatNumber(status.unverified_refusals)}</span>
        <span class="label">Sign-ins with unverifiable tokens${status.unverified_refusal_at ? `, last ${ago(status.unverified_refusal_at)}` : ""}</span>
      </div>
    </div>
  </div>`;
}

function Step({ done, title, observed, children }) {
  return html`<li>
    <span class=${`tick ${done ? "done" : "todo"}`} aria-hidden="true">${done ? "✓" : ""}</span>
    <div>
      <strong>${title}</strong>
      <span class="visually-hidden">${done ? " (done)" : " (not done yet)"}</span>
      ${observed && html`<p class=${`small ${done ? "" : "muted"}`}>${observed}</p>`}
      ${children}
    </div>
  </li>`;
}

function SetupGuide({ settings, status }) {
  const s = status || {};
  const connected = Boolean(s.connected_at);
  const synced = s.users > 0 && s.groups > 0;
  const tested = s.last_test_ok === true;
  const signedIn = Boolean(s.last_sign_in_at);
  const steps = [settings.enabled, settings.scim_token_set, connected, synced, settings.sign_in_configured, tested, signedIn];
  const missing = steps.indexOf(false);
  return html`<details open=${missing !== -1} class="panel">
    <summary>Setup guide: ${missing === -1 ? "every step done" : `${steps.filter(Boolean).length} of ${steps.length} steps done`}</summary>
    <ol class="guide">
      <${Step} done=${settings.enabled} title="1. Enable the IDP integration (above)." />
      <${Step} done=${settings.scim_token_set} title="2. Generate the SCIM secret token (below, under SCIM)."
        observed=${settings.scim_token_set ? html`Token created <${Time} value=${settings.scim_token_created_at} />.` : null} />
      <${Step} done=${connected} title="3. In Entra, create the enterprise application and connect provisioning."
        observed=${connected
          ? html`Entra reached Keystead with the current token <${Time} value=${s.connected_at} />.`
          : s.refused_token_at
            ? html`A request with a wrong or missing token arrived <${Time} value=${s.refused_token_at} />; none with the current token yet.`
            : "Waiting for Entra's Test Connection: no SCIM request with the current token has arrived yet."}>
        <p class="small">
          Entra admin center → Enterprise applications → New application → Create your own application
          (non-gallery). Then Provisioning → Provisioning Mode <em>Automatic</em>; paste the${" "}
          <strong>SCIM URL</strong> below as <em>Tenant URL</em> and the <strong>secret token</strong> as${" "}
          <em>Secret Token</em>; press <em>Test Connection</em> and save.
        </p>
      <//>
      <${Step} done=${synced} title="4. Assign users and groups, and start provisioning."
        observed=${synced
          ? `${formatNumber(s.users)} users and ${formatNumber(s.groups)} groups synced.`
          : `Synced so far: ${formatNumber(s.users || 0)} users, ${formatNumber(s.groups || 0)} groups.`}>
        <p class="small">
          Users and groups → Add user/group; then Provisioning → Start provisioning. Name groups after
          your dataset groups (case and surrounding spaces do not matter) to give their members access.
        </p>
      <//>
      <${Step} done=${settings.sign_in_configured} title="5. In Entra, register the API your applications sign in to.">
        <p class="small">
          App registrations → New registration. <em>Expose an API</em>: set the Application ID URI
          (<code>api://CLIENT_ID</code>) and add a scope. <em>Manifest</em>: keep${" "}
          <code>accessTokenAcceptedVersion</code> at <code>null</code> or <code>1</code>.${" "}
          <em>Token configuration</em>: add the groups claim (security groups) if you use the
          "directory and token" group policy. <em>Certificates & secrets</em>: a client secret for the
          Ubiq client. <em>API permissions</em>: add your API's scope and grant admin consent. Then copy
          the discovery URL, issuer and audience into the Sign-in settings below.
        </p>
      <//>
      <${Step} done=${tested} title="6. Test the sign-in configuration (below)."
        observed=${s.last_test_at
          ? s.last_test_ok
            ? html`The configuration test passed <${Time} value=${s.last_test_at} />.`
            : html`The last test found problems <${Time} value=${s.last_test_at} />.`
          : "Not tested since the sign-in settings last changed."} />
      <${Step} done=${signedIn} title="7. Sign a user in from an application."
        observed=${signedIn
          ? html`Latest successful sign-in <${Time} value=${s.last_sign_in_at} />.`
          : "No successful sign-in yet. Configure the Ubiq client in IDP mode with this account's customer id."} />
    </ol>
  </details>`;
}

function ScimSection({ settings, canWrite, onChange }) {
  const [confirmRotate, setConfirmRotate] = useState(false);
  const [token, setToken] = useState(null);
  const [error, setError] = useState(null);
  async function issue() {
    setError(null);
    try {
      const made = await api.post("/idp/scim-token");
      setConfirmRotate(false);
      setToken(made.token);
      onChange();
    } catch (e) {
      setConfirmRotate(false);
      setError(e);
    }
  }
  return html`<section aria-labelledby="scim-title" class="stack">
    <h3 id="scim-title">SCIM (directory sync)</h3>
    <${CopyField} id="scim-url" label="SCIM URL (Entra: Tenant URL)" value=${settings.scim_url}
      hint="Enterprise application → Provisioning → Admin Credentials → Tenant URL." />
    ${!settings.scim_url.startsWith("https://") && html`<${Alert} kind="warning"><p>
      Entra's provisioning service calls this URL from the internet, over https only. Set
      KEYSTEAD_PUBLIC_URL to the https address Keystead is reachable at (behind its proxy) and
      restart it; this URL follows.
    </p><//>`}
    <div>
      <p class="label">Secret token</p>
      ${settings.scim_token_set
        ? html`<p>Created <${Time} value=${settings.scim_token_created_at} />; it starts with${" "}
            <code>${settings.scim_token_hint}</code>. It is not shown again: rotate it if it is lost.</p>`
        : html`<p class="muted">No secret token yet. Generate one and paste it into Entra as the Secret Token.</p>`}
      <${ErrorAlert} error=${error} />
      ${canWrite &&
      (settings.scim_token_set
        ? html`<button type="button" onClick=${() => setConfirmRotate(true)}>Rotate secret token</button>`
        : html`<button type="button" class="primary" onClick=${issue} disabled=${!settings.enabled}
            aria-describedby=${settings.enabled ? undefined : "token-why"}>Generate secret token</button>
            ${!settings.enabled && html`<span id="token-why" class="why"> Enable the integration first.</span>`}`)}
    </div>
    <${ConfirmDialog} open=${confirmRotate} title="Rotate the SCIM secret token?" confirmLabel="Rotate token"
      onCancel=${() => setConfirmRotate(false)} onConfirm=${issue}>
      <p>
        The current token stops working <strong>at once</strong>: Entra's provisioning fails with
        "invalid credentials" (401) until you paste the new token into the enterprise application
        (Provisioning → Admin Credentials → Secret Token) and save.
      </p>
    <//>
    <${Dialog} open=${Boolean(token)} title="Your SCIM secret token" onClose=${() => setToken(null)}>
      <div class="secret-box">
        <${CopyField} id="scim-token" label="Secret token" value=${token || ""} />
      </div>
      <${Alert} kind="warning"><p>
        This token will not be shown again. Copy it now and paste it into Entra: enterprise application →
        Provisioning → Admin Credentials → Secret Token, then press Test Connection.
      </p><//>
      <div class="dialog-actions">
        <button type="button" onClick=${() => download("keystead-scim-token.txt", `${token}\n`)}>Download as a file</button>
        <button type="button" class="primary" onClick=${() => setToken(null)}>I have copied it</button>
      </div>
    <//>
  </section>`;
}

const CLAIMS = [
  ["unique_name", "unique_name (default; Entra's v1 user principal name)"],
  ["upn", "upn"],
  ["preferred_username", "preferred_username"],
  ["email", "email"],
];
const POLICIES = [
  ["directory", "Directory: access from synced group memberships (default)"],
  ["directory_and_token", "Directory and token: a group counts only if the sign-in token also lists it"],
];

function SignInSection({ settings, canWrite, onSaved, onTested }) {
  const initial = {
    discovery_url: settings.discovery_url || "",
    issuer: settings.issuer || "",
    audience: settings.audience || "",
    username_claim: settings.username_claim,
    leeway_seconds: String(settings.leeway_seconds),
    cert_ttl_seconds: String(settings.cert_ttl_seconds),
    group_policy: settings.group_policy,
  };
  const form = useForm(initial);
  const { values, errors } = form;
  const [saved, setSaved] = useState(false);
  const [test, setTest] = useState({ busy: false, report: null, error: null });
  const [savedValues, setSavedValues] = useState(initial);
  const dirty = Object.keys(initial).some((k) => String(values[k]).trim() !== String(savedValues[k]).trim());
  const advancedError = ["username_claim", "leeway_seconds", "cert_ttl_seconds", "group_policy"].some((k) => errors[k]);

  function validate(v) {
    const problems = {};
    for (const [name, label] of [["discovery_url", "the discovery URL"], ["issuer", "the issuer"], ["audience", "the audience"]]) {
      if (!v[name].trim()) problems[name] = `Enter ${label}.`;
    }
    if (v.discovery_url.trim() && !/^https?:\/\/\S+$/.test(v.discovery_url.trim())) {
      problems.discovery_url = "Enter a full URL starting with https://.";
    }
    for (const name of ["leeway_seconds", "cert_ttl_seconds"]) {
      if (!/^\d+$/.test(v[name].trim())) problems[name] = "Enter a whole number of seconds.";
    }
    return problems;
  }
  async function save(v) {
    setSaved(false);
    const body = {
      discovery_url: v.discovery_url.trim(),
      issuer: v.issuer.trim(),
      audience: v.audience.trim(),
      username_claim: v.username_claim,
      leeway_seconds: Number(v.leeway_seconds),
      cert_ttl_seconds: Number(v.cert_ttl_seconds),
      group_policy: v.group_policy,
    };
    const updated = await api.patch("/idp", body);
    const now = { ...v, issuer: updated.issuer || "", discovery_url: updated.discovery_url || "" };
    form.setValues(now);
    setSavedValues(now);
    setSaved(true);
    setTest({ busy: false, report: null, error: null });
    onSaved(updated);
  }
  async function runTest() {
    setTest({ busy: true, report: null, error: null });
    try {
      setTest({ busy: false, report: await api.post("/idp/test"), error: null });
    } catch (error) {
      setTest({ busy: false, report: null, error });
    }
    onTested();
  }
  const general = form.message && !Object.keys(form.message.fields || {}).length ? form.message : null;
  const fieldsRefused = form.message && Object.keys(form.message.fields || {}).length;
  return html`<section aria-labelledby="signin-title">
    <h3 id="signin-title">Sign-in with Entra tokens</h3>
    <form noValidate onSubmit=${(e) => { e.preventDefault(); setSaved(false); form.submit(validate, save); }}>
      <fieldset disabled=${!canWrite}>
        <legend>Whose tokens Keystead accepts</legend>
        <${TextInput} id="idp-discovery" label="OpenID discovery URL" value=${values.discovery_url}
          onInput=${form.set("discovery_url")} error=${errors.discovery_url}
          placeholder="https://login.microsoftonline.com/TENANT_ID/.well-known/openid-configuration"
          hint="Entra: App registrations → your API → Endpoints → OpenID Connect metadata document." />
        <${TextInput} id="idp-issuer" label="Token issuer" value=${values.issuer}
          onInput=${form.set("issuer")} error=${errors.issuer} placeholder="https://sts.windows.net/TENANT_ID/"
          hint="https://sts.windows.net/TENANT_ID/ with the Directory (tenant) ID from the app's Overview page, and the trailing slash." />
        <${TextInput} id="idp-audience" label="Token audience" value=${values.audience}
          onInput=${form.set("audience")} error=${errors.audience} placeholder="api://CLIENT_ID"
          hint="Entra: your API's app registration → Expose an API → Application ID URI." />
        <details open=${advancedError || undefined}>
          <summary>Advanced settings</summary>
          <${SelectInput} id="idp-claim" label="Username claim" value=${values.username_claim}
            onInput=${form.set("username_claim")} options=${CLAIMS} error=${errors.username_claim}
            hint="The token claim that names the synced user (its userName). If absent, unique_name, upn and preferred_username are tried." />
          <${TextInput} id="idp-leeway" label="Clock leeway (seconds)" inputmode="numeric"
            value=${values.leeway_seconds} onInput=${form.set("leeway_seconds")} error=${errors.leeway_seconds}
            hint="Allowed clock difference when checking a token's times: 0 to 300." />
          <${TextInput} id="idp-ttl" label="Certificate lifetime (seconds)" inputmode="numeric"
            value=${values.cert_ttl_seconds} onInput=${form.set("cert_ttl_seconds")} error=${errors.cert_ttl_seconds}
            hint="60 to 86,400; a certificate never outlives the token it was issued for." />
          <${SelectInput} id="idp-policy" label="Group policy" value=${values.group_policy}
            onInput=${form.set("group_policy")} options=${POLICIES} error=${errors.group_policy}
            hint="With directory and token, a user removed from a group in Entra loses its datasets at the next sign-in, before provisioning runs." />
        </details>
      </fieldset>
      ${fieldsRefused ? html`<${Alert} kind="error"><p>Not saved: fix the fields marked above.</p><//>` : null}
      <${ErrorAlert} error=${general} />
      ${saved && html`<${Alert} kind="success"><p>Sign-in settings saved. Test them below.</p><//>`}
      ${canWrite && html`<button type="submit" class="primary" disabled=${form.busy}>
        ${form.busy ? "Saving…" : "Save sign-in settings"}</button>`}
    </form>
    <div style=${{ marginTop: "1rem" }}>
      <button type="button" onClick=${runTest} disabled=${test.busy || !settings.sign_in_configured || dirty}
        aria-describedby=${settings.sign_in_configured && !dirty ? undefined : "test-why"}>
        ${test.busy ? "Testing…" : "Test configuration"}
      </button>
      ${!settings.sign_in_configured
        ? html`<span id="test-why" class="why"> Save the discovery URL, issuer and audience first.</span>`
        : dirty && html`<span id="test-why" class="why"> The test uses the saved settings: save your changes first.</span>`}
      <${ErrorAlert} error=${test.error} />
      ${test.report && html`<${TestReport} report=${test.report} />`}
    </div>
  </section>`;
}

const STATUS_BADGE = { pass: ["ok", "Pass"], fail: ["bad", "Fail"], warning: ["warn", "Warning"], skipped: ["off", "Not run"] };

function TestReport({ report }) {
  return html`<div role="status" aria-live="polite">
    <p><strong>${report.ok ? "Every check passed." : "The test found problems; each says what to change."}</strong></p>
    <ul class="checks" aria-label="Configuration checks">
      ${report.checks.map((check) => {
        const [kind, word] = STATUS_BADGE[check.status];
        return html`<li class=${`check-${check.status}`}>
          <span><${Badge} kind=${kind}>${word}<//></span>
          <span><strong>${check.name}.</strong> ${check.message}</span>
        </li>`;
      })}
    </ul>
  </div>`;
}

