// #/api-keys: every key, searched and paged on the server; a key's page with its grants,
// its effective datasets and why, and its recent usage. Auto-provisioned keys follow the
// directory: their editing controls are shown disabled, with the reason.

import { api, describe } from "../api.js";
import { PersonIcon, ServerIcon } from "../icons.js";
import { html, useState } from "../lib.js";
import { href, navigate, pathOf, setParams } from "../router.js";
import {
  Alert,
  Badge,
  ConfirmDialog,
  CopyField,
  Dialog,
  EnabledBadge,
  ErrorAlert,
  Loading,
  PageHead,
  Pager,
  SearchBox,
  SelectInput,
  TextInput,
  Time,
  download,
  formatNumber,
  useForm,
  useResource,
  useSession,
} from "../ui.js";

const LIMIT = 50;
const KINDS = [
  ["", "All keys"],
  ["manual", "Manual"],
  ["auto", "Auto-provisioned"],
  ["enabled", "Enabled"],
  ["disabled", "Disabled"],
  ["suspended", "Suspended"],
];
export const FOLLOWS_DIRECTORY = "This key follows the directory: change the user in Entra.";

export function SourceBadge({ apiKey }) {
  if (!apiKey.auto_provisioned) return html`<${Badge} title="Made by hand"><${ServerIcon} /> manual<//>`;
  return html`<${Badge} kind="auto" title="Auto-provisioned for a directory user">
    <${PersonIcon} /> Entra: ${apiKey.directory_user || "directory user"}
  <//>`;
}

export function ApiKeysPage({ route }) {
  const { canWrite } = useSession();
  const q = route.params.q || "";
  const kind = route.params.kind || "";
  const offset = Number(route.params.offset || 0);
  const keys = useResource(() => api.get("/api-keys", { q, kind, limit: LIMIT, offset }), [q, kind, offset]);
  const [creating, setCreating] = useState(false);
  return html`<${PageHead} title="API keys">
      ${canWrite && html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New API key</button>`}
    <//>
    <div class="toolbar">
      <${SearchBox} id="key-search" label="Search by name or access key id" value=${q}
        onSearch=${(text) => setParams(route, { q: text, offset: "" })} />
      <${SelectInput} id="key-kind" label="Show" value=${kind} options=${KINDS}
        onInput=${(e) => setParams(route, { kind: e.target.value, offset: "" })} />
    </div>
    <${ErrorAlert} error=${keys.error} />
    ${keys.loading && !keys.data && html`<${Loading} what="Loading API keys" />`}
    ${keys.data && html`<${KeyTable} page=${keys.data} />
      <${Pager} total=${keys.data.total} limit=${LIMIT} offset=${offset} what="keys"
        onPage=${(next) => setParams(route, { offset: next || "" })} />`}
    ${creating && html`<${CreateKeyDialog} onClose=${() => setCreating(false)} />`}`;
}

function KeyTable({ page }) {
  if (!page.items.length) {
    return html`<p class="muted">No API keys match. Keys for synced Entra users appear here on their own;
      create a manual key for an application with <em>New API key</em>.</p>`;
  }
  return html`<div class="table-wrap"><table>
    <caption class="visually-hidden">API keys</caption>
    <thead><tr>
      <th scope="col">Name</th><th scope="col">Access key id</th><th scope="col">Status</th>
      <th scope="col">Source</th><th scope="col" class="num">Datasets</th>
    </tr></thead>
    <tbody>
      ${page.items.map((key) => html`<tr>
        <td><a href=${href(pathOf("api-keys", key.access_key_id))}>${key.name}</a></td>
        <td><code>${key.access_key_id}</code></td>
        <td><${EnabledBadge} enabled=${key.enabled} suspended=${key.suspended} /></td>
        <td><${SourceBadge} apiKey=${key} /></td>
        <td class="num">${formatNumber(key.datasets_count)}</td>
      </tr>`)}
    </tbody>
  </table></div>`;
}

function useCatalog() {
  return useResource(() => Promise.all([api.get("/datasets"), api.get("/dataset-groups")]), []);
}

function Picker({ legend, names, chosen, onToggle, idPrefix }) {
  if (!names.length) return html`<fieldset><legend>${legend}</legend><p class="muted small">None yet.</p></fieldset>`;
  return html`<fieldset>
    <legend>${legend}</legend>
    ${names.map((name, i) => html`<label class="choice" for=${`${idPrefix}-${i}`}>
      <input type="checkbox" id=${`${idPrefix}-${i}`} checked=${chosen.includes(name)} onChange=${() => onToggle(name)} />
      ${name}
    </label>`)}
  </fieldset>`;
}

function toggle(list, name) {
  return list.includes(name) ? list.filter((n) => n !== name) : [...list, name];
}

function CreateKeyDialog({ onClose }) {
  const catalog = useCatalog();
  const form = useForm({ name: "", datasets: [], dataset_groups: [] });
  const [created, setCreated] = useState(null);
  const { values, errors } = form;
  async function create(v) {
    setCreated(await api.post("/api-keys", { name: v.name.trim(), datasets: v.datasets, dataset_groups: v.dataset_groups }));
  }
  if (created) {
    return html`<${Dialog} open=${true} title=${`API key ${created.name} created`}
        onClose=${() => navigate(pathOf("api-keys", created.access_key_id))}>
      <${Alert} kind="warning"><p>
        The two secrets are shown <strong>only now</strong>: Keystead keeps the signing key wrapped and never
        stores the crypto access key. Copy them or download the credentials file before closing.
      </p><//>
      <div class="secret-box">
        <${CopyField} id="new-access-key-id" label="Access key id" value=${created.access_key_id} />
        <${CopyField} id="new-signing-key" label="Secret signing key" value=${created.secret_signing_key} />
        <${CopyField} id="new-crypto-key" label="Secret crypto access key" value=${created.secret_crypto_access_key} />
      </div>
      <div class="dialog-actions">
        <button type="button" onClick=${() => download("credentials", created.credentials_file)}>
          Download the Ubiq credentials file
        </button>
        <button type="button" class="primary" onClick=${() => navigate(pathOf("api-keys", created.access_key_id))}>
          I have saved them
        </button>
      </div>
    <//>`;
  }
  const [datasets, groups] = catalog.data || [[], []];
  return html`<${Dialog} open=${true} title="New API key" onClose=${onClose}>
    <form noValidate onSubmit=${(e) => {
      e.preventDefault();
      form.submit((v) => ({ name: v.name.trim() ? undefined : "Enter a name, e.g. the application's." }), create);
    }}>
      <${TextInput} id="new-key-name" label="Name" value=${values.name} onInput=${form.set("name")}
        error=${errors.name} hint="What uses the key, e.g. payroll-app. Names need not be unique." />
      <${ErrorAlert} error=${catalog.error} />
      <${Picker} legend="Datasets it may use" idPrefix="new-key-ds" names=${datasets.map((d) => d.name)}
        chosen=${values.datasets} onToggle=${(n) => form.setValues((v) => ({ ...v, datasets: toggle(v.datasets, n) }))} />
      <${Picker} legend="Dataset groups it may use" idPrefix="new-key-dg" names=${groups.map((g) => g.name)}
        chosen=${values.dataset_groups}
        onToggle=${(n) => form.setValues((v) => ({ ...v, dataset_groups: toggle(v.dataset_groups, n) }))} />
      <${ErrorAlert} error=${form.message && !form.errors.name ? form.message : null} />
      <div class="dialog-actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${form.busy}>${form.busy ? "Creating…" : "Create key"}</button>
      </div>
    </form>
  <//>`;
}

export function ApiKeyPage({ id }) {
  const key = useResource(() => api.get(`/api-keys/${encodeURIComponent(id)}`), [id]);
  const access = useResource(() => api.get(`/api-keys/${encodeURIComponent(id)}/access`), [id]);
  const since = new Date(Date.now() - 30 * 86400000).toISOString().slice(0, 10);
  const usage = useResource(() => api.get("/usage", { api_key: id, since }), [id]);
  const crumbs = html`<a href="#/api-keys">API keys</a> /`;
  if (key.error) {
    return html`<${PageHead} title="API key" crumbs=${crumbs} /><${ErrorAlert} error=${key.error} />`;
  }
  if (!key.data) return html`<${Loading} what="Loading the API key" />`;
  const data = key.data;
  const changed = () => {
    key.reload();
    access.reload();
  };
  return html`<${PageHead} title=${data.name} crumbs=${crumbs}>
      <${EnabledBadge} enabled=${data.enabled} suspended=${data.suspended} /> <${SourceBadge} apiKey=${data} />
    <//>
    ${data.suspended && html`<${Alert} kind="error"><p>
      Suspended by ${data.suspended_by} on <${Time} value=${data.suspended_at} />: every request with this key
      (data keys, usage reports, Entra sign-in) is refused until an admin lifts the suspension.
      ${data.auto_provisioned ? " Directory sync does not lift it." : ""}
    </p><//>`}
    ${data.auto_provisioned && html`<${Alert} kind="info"><p id="follows-why">
      ${FOLLOWS_DIRECTORY} It was created for directory user${" "}
      <a href=${href(pathOf("directory", "users", data.directory_user_id))}>${data.directory_user}</a>,
      is named after its userName, is enabled while the user is active, and reaches datasets through the
      user's groups. Keystead refuses hand edits to it.
    </p><//>`}
    <section class="panel" aria-labelledby="key-facts">
      <h2 id="key-facts">Key</h2>
      <${CopyField} id="key-id" label="Access key id" value=${data.access_key_id} />
      <dl class="facts">
        <dt>Created</dt><dd><${Time} value=${data.created_at} /></dd>
        <dt>Changed</dt><dd><${Time} value=${data.updated_at} /></dd>
        <dt>Default unstructured dataset</dt><dd>${data.default_unstructured_dataset || "none"}</dd>
      </dl>
    </section>
    <${KeyEditor} apiKey=${data} onChange=${changed} />
    <${SuspendPanel} apiKey=${data} onChange=${changed} />
    <${AccessPanel} access=${access} apiKey=${data} />
    <${UsagePanel} usage=${usage} since=${since} apiKey=${data} />`;
}

/** Rename, enable/disable, delete and grants. For an auto-provisioned key every control is
 * there but disabled, pointing at the reason; a viewer sees none. */
function KeyEditor({ apiKey, onChange }) {
  const { canWrite } = useSession();
  const catalog = useCatalog();
  const [error, setError] = useState(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [grantDataset, setGrantDataset] = useState("");
  const [grantGroup, setGrantGroup] = useState("");
  const rename = useForm({ name: apiKey.name });
  if (!canWrite) return null;
  const locked = apiKey.auto_provisioned;
  const why = locked ? "follows-why" : undefined;
  const path = `/api-keys/${encodeURIComponent(apiKey.access_key_id)}`;
  async function act(action) {
    setError(null);
    try {
      await action();
      onChange();
    } catch (e) {
      setError(e);
    }
  }
  const [datasets, groups] = catalog.data || [[], []];
  const grantable = datasets.map((d) => d.name).filter((n) => !apiKey.grants.datasets.includes(n));
  const grantableGroups = groups.map((g) => g.name).filter((n) => !apiKey.grants.dataset_groups.includes(n));
  return html`<section class="panel" aria-labelledby="key-edit">
    <h2 id="key-edit">Manage</h2>
    ${locked && html`<p class="why">${FOLLOWS_DIRECTORY}</p>`}
    <${ErrorAlert} error=${error} />
    <form class="row" noValidate onSubmit=${(e) => {
      e.preventDefault();
      rename.submit((v) => ({ name: v.name.trim() ? undefined : "Enter a name." }), (v) =>
        api.patch(path, { name: v.name.trim() }).then(onChange));
    }}>
      <div style=${{ flex: "1", minWidth: "12rem" }}>
        <${TextInput} id="key-name" label="Name" value=${rename.values.name} onInput=${rename.set("name")}
          error=${rename.errors.name || (rename.message && describe(rename.message))} disabled=${locked}
          aria-describedby=${why} />
      </div>
      <button type="submit" disabled=${locked || rename.busy} aria-describedby=${why}>Rename</button>
    </form>
    <div class="row" style=${{ margin: ".5rem 0 1rem" }}>
      <button type="button" disabled=${locked} aria-describedby=${why}
        onClick=${() => act(() => api.patch(path, { enabled: !apiKey.enabled }))}>
        ${apiKey.enabled ? "Disable key" : "Enable key"}
      </button>
      <button type="button" class="danger" disabled=${locked} aria-describedby=${why}
        onClick=${() => setConfirmDelete(true)}>Delete key</button>
    </div>
    <h3>Grants</h3>
    <p class="small muted">Datasets and dataset groups granted to this key by hand.</p>
    <ul>
      ${apiKey.grants.datasets.map((name) => html`<li>Dataset <strong>${name}</strong>${" "}
        <button type="button" class="link" disabled=${locked} aria-describedby=${why}
          aria-label=${`Revoke dataset ${name}`}
          onClick=${() => act(() => api.post(`${path}/revoke`, { datasets: [name] }))}>revoke</button></li>`)}
      ${apiKey.grants.dataset_groups.map((name) => html`<li>Dataset group <strong>${name}</strong>${" "}
        <button type="button" class="link" disabled=${locked} aria-describedby=${why}
          aria-label=${`Revoke dataset group ${name}`}
          onClick=${() => act(() => api.post(`${path}/revoke`, { dataset_groups: [name] }))}>revoke</button></li>`)}
      ${!apiKey.grants.datasets.length && !apiKey.grants.dataset_groups.length && html`<li class="muted">No grants.</li>`}
    </ul>
    <div class="toolbar">
      <${SelectInput} id="grant-dataset" label="Grant a dataset" value=${grantDataset} disabled=${locked}
        aria-describedby=${why} options=${[["", "Choose a dataset"], ...grantable.map((n) => [n, n])]}
        onInput=${(e) => setGrantDataset(e.target.value)} />
      <button type="button" disabled=${locked || !grantDataset} aria-describedby=${why}
        onClick=${() => act(() => api.post(`${path}/grants`, { datasets: [grantDataset] })).then(() => setGrantDataset(""))}>
        Grant dataset</button>
      <${SelectInput} id="grant-group" label="Grant a dataset group" value=${grantGroup} disabled=${locked}
        aria-describedby=${why} options=${[["", "Choose a dataset group"], ...grantableGroups.map((n) => [n, n])]}
        onInput=${(e) => setGrantGroup(e.target.value)} />
      <button type="button" disabled=${locked || !grantGroup} aria-describedby=${why}
        onClick=${() => act(() => api.post(`${path}/grants`, { dataset_groups: [grantGroup] })).then(() => setGrantGroup(""))}>
        Grant dataset group</button>
    </div>
    <h3>Default unstructured dataset</h3>
    <p class="small muted">The client names no dataset when it encrypts unstructured data: a key
      that may use several uses this one.</p>
    <div class="toolbar">
      <${SelectInput} id="key-default" label="Default unstructured dataset" value=${apiKey.default_unstructured_dataset || ""}
        disabled=${locked} aria-describedby=${why}
        options=${[["", "None"], ...datasets.filter((d) => d.type === "unstructured").map((d) => [d.name, d.name])]}
        onInput=${(e) => act(() => api.patch(path, { default_unstructured_dataset: e.target.value }))} />
    </div>
    <${ConfirmDialog} open=${confirmDelete} title=${`Delete API key ${apiKey.name}?`} confirmLabel="Delete key"
      onCancel=${() => setConfirmDelete(false)}
      onConfirm=${async () => { await api.delete(path); navigate("/api-keys"); }}>
      <p>Applications using this key are refused from their next request. This cannot be undone; data they
        encrypted stays decryptable by any other key with access to its dataset.</p>
    <//>
  </section>`;
}

/** The emergency stop: the one change an auto-provisioned key takes by hand. */
function SuspendPanel({ apiKey, onChange }) {
  const { canWrite } = useSession();
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  const [error, setError] = useState(null);
  if (!canWrite) return null;
  const path = `/api-keys/${encodeURIComponent(apiKey.access_key_id)}`;
  async function lift() {
    setError(null);
    try {
      await api.post(`${path}/resume`);
      onChange();
    } catch (e) {
      setError(e);
    }
  }
  return html`<section class="panel" aria-labelledby="key-suspend">
    <h2 id="key-suspend">Emergency stop</h2>
    <p class="small muted">Suspending refuses the key everywhere from its next request: data keys, usage
      reports and Entra sign-in. It works on keys that follow the directory too, and directory sync never
      lifts it; the key's grants and groups stay as they are.</p>
    <${ErrorAlert} error=${error} />
    ${apiKey.suspended
      ? html`<button type="button" onClick=${lift}>Lift suspension</button>`
      : html`<button type="button" class="danger" onClick=${() => { setReason(""); setAsking(true); }}>Suspend key</button>`}
    <${ConfirmDialog} open=${asking} title=${`Suspend API key ${apiKey.name}?`} confirmLabel="Suspend key"
      onCancel=${() => setAsking(false)}
      onConfirm=${async () => {
        await api.post(`${path}/suspend`, reason.trim() ? { reason: reason.trim() } : {});
        setAsking(false);
        onChange();
      }}>
      <p>Every application using this key is refused from its next request until an admin lifts the suspension.</p>
      <${TextInput} id="suspend-reason" label="Reason (kept in the audit log)" value=${reason}
        maxLength="500" onInput=${(e) => setReason(e.target.value)} />
    <//>
  </section>`;
}

function AccessPanel({ access, apiKey }) {
  const unstructured = access.data ? access.data.datasets.filter((d) => d.type === "unstructured") : [];
  const ambiguous = unstructured.length > 1 && !apiKey.default_unstructured_dataset;
  return html`<section class="panel" aria-labelledby="key-access">
    <h2 id="key-access">Datasets this key may use, and why</h2>
    <${ErrorAlert} error=${access.error} />
    ${ambiguous && html`<${Alert} kind="warning"><p>
      This key may use ${unstructured.length} unstructured datasets and has no default, so
      unstructured encryption with it is refused (the client names no dataset).
      ${apiKey.auto_provisioned
        ? " A key that follows the directory cannot have a default: keep its user's groups to one unstructured dataset."
        : " Choose a default under Manage."}
    </p><//>`}
    ${!access.data ? html`<${Loading} />` : !access.data.datasets.length
      ? html`<p class="muted">None: no grant, no granted dataset group, and no directory group that matches a dataset group.</p>`
      : html`<div class="table-wrap"><table>
          <thead><tr><th scope="col">Dataset</th><th scope="col">Type</th><th scope="col">Why</th></tr></thead>
          <tbody>${access.data.datasets.map((d) => html`<tr>
            <td><a href=${href(pathOf("datasets", d.dataset))}>${d.dataset}</a></td>
            <td>${d.type}</td>
            <td><ul>${d.reasons.map((r) => html`<li>${r.description}</li>`)}</ul></td>
          </tr>`)}</tbody>
        </table></div>`}
    ${access.data && !access.data.enabled && html`<p class="why">The key is disabled: every request with it is refused.</p>`}
  </section>`;
}

function UsagePanel({ usage, since, apiKey }) {
  return html`<section class="panel" aria-labelledby="key-usage">
    <h2 id="key-usage">Recent usage</h2>
    <p class="small muted">Operations the clients reported for this key since ${since}.
      ${apiKey.auto_provisioned && " The Ubiq client does not report usage when it signs its user in with Entra (IDP mode), so such keys usually show none."}</p>
    <${ErrorAlert} error=${usage.error} />
    ${!usage.data ? html`<${Loading} />` : !usage.data.length
      ? html`<p class="muted">No usage reported in the last 30 days.</p>`
      : html`<div class="table-wrap"><table>
          <thead><tr><th scope="col">Day</th><th scope="col">Dataset</th><th scope="col">Action</th><th scope="col" class="num">Count</th></tr></thead>
          <tbody>${usage.data.map((r) => html`<tr><td>${r.day}</td><td>${r.dataset}</td><td>${r.action}</td>
            <td class="num">${formatNumber(r.count)}</td></tr>`)}</tbody>
        </table></div>`}
  </section>`;
}
