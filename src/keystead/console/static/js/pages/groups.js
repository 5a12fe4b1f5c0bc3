// #/dataset-groups: dataset groups, the directory groups that match them by name, and how
// many keys reach datasets through each.

import { ApiError, api, describe } from "../api.js";
import { html, useState } from "../lib.js";
import { href, navigate, pathOf } from "../router.js";
import {
  Alert,
  Badge,
  ConfirmDialog,
  Dialog,
  ErrorAlert,
  Loading,
  PageHead,
  SelectInput,
  TextInput,
  Time,
  formatNumber,
  useForm,
  useResource,
  useSession,
} from "../ui.js";

export function DatasetGroupsPage() {
  const { canWrite } = useSession();
  const groups = useResource(() => api.get("/dataset-groups"), []);
  const [creating, setCreating] = useState(false);
  return html`<${PageHead} title="Dataset groups">
      ${canWrite && html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New dataset group</button>`}
    <//>
    <p class="muted">A dataset group bundles datasets. Grant it to a key, or name an Entra group the same
      (case and surrounding spaces do not matter): that group's synced members get its datasets.</p>
    <${ErrorAlert} error=${groups.error} />
    ${!groups.data ? html`<${Loading} what="Loading dataset groups" />` : !groups.data.length
      ? html`<p class="muted">No dataset groups yet.</p>`
      : html`<div class="table-wrap"><table>
          <caption class="visually-hidden">Dataset groups</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Datasets</th><th scope="col">Matching directory groups</th></tr></thead>
          <tbody>${groups.data.map((g) => html`<tr>
            <td><a href=${href(pathOf("dataset-groups", g.id))}>${g.name}</a></td>
            <td>${g.datasets.join(", ") || html`<span class="muted">none</span>`}</td>
            <td>${g.directory_groups.join(", ") || html`<span class="muted">none yet</span>`}
              ${g.pinned && html` <${Badge} title="Only the pinned directory group gives access">pinned<//>`}
              ${g.ambiguous && !g.pinned && html` <${Badge} kind="warn" title="Several directory groups are named like it">several: pin one<//>`}</td>
          </tr>`)}</tbody>
        </table></div>`}
    ${creating && html`<${CreateGroupDialog} onClose=${() => setCreating(false)} />`}`;
}

function CreateGroupDialog({ onClose }) {
  const datasets = useResource(() => api.get("/datasets"), []);
  const form = useForm({ name: "", datasets: [] });
  const { values, errors } = form;
  async function create(v) {
    const made = await api.post("/dataset-groups", { name: v.name.trim(), datasets: v.datasets });
    navigate(pathOf("dataset-groups", made.id));
  }
  return html`<${Dialog} open=${true} title="New dataset group" onClose=${onClose}>
    <form noValidate onSubmit=${(e) => { e.preventDefault(); form.submit((v) => ({ name: v.name.trim() ? undefined : "Enter a name." }), create); }}>
      <${TextInput} id="dg-name" label="Name" value=${values.name} onInput=${form.set("name")} error=${errors.name}
        hint="To give an Entra group's members these datasets, use that group's display name." />
      ${datasets.data && html`<fieldset>
        <legend>Datasets</legend>
        ${datasets.data.length === 0 && html`<p class="muted small">No datasets yet; add them later.</p>`}
        ${datasets.data.map((d, i) => html`<label class="choice" for=${`dg-ds-${i}`}>
          <input type="checkbox" id=${`dg-ds-${i}`} checked=${values.datasets.includes(d.name)}
            onChange=${() => form.setValues((v) => ({ ...v, datasets: v.datasets.includes(d.name) ? v.datasets.filter((n) => n !== d.name) : [...v.datasets, d.name] }))} />
          ${d.name} <span class="muted small">(${d.type})</span>
        </label>`)}
      </fieldset>`}
      ${form.message && !errors.name && html`<${Alert} kind="error"><p>${describe(form.message)}</p><//>`}
      <div class="dialog-actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${form.busy}>Create dataset group</button>
      </div>
    </form>
  <//>`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A dataset group by id, or by name (links from pages that know only the name): names may
 * hold '/', which no path segment can carry, so a name is looked up in the list. */
async function loadGroup(ref) {
  if (UUID.test(ref)) return api.get(`/dataset-groups/${ref}`);
  const wanted = ref.trim().toLowerCase();
  const found = (await api.get("/dataset-groups")).find((g) => g.name.trim().toLowerCase() === wanted);
  if (!found) throw new ApiError(404, `No dataset group named "${ref}" in this account.`);
  return api.get(`/dataset-groups/${found.id}`);
}

export function DatasetGroupPage({ id }) {
  const { canWrite } = useSession();
  const group = useResource(() => loadGroup(id), [id]);
  const datasets = useResource(() => api.get("/datasets"), []);
  const [error, setError] = useState(null);
  const [add, setAdd] = useState("");
  const [confirmDelete, setConfirmDelete] = useState(false);
  const rename = useForm({ name: "" });
  const crumbs = html`<a href="#/dataset-groups">Dataset groups</a> /`;
  if (group.error) return html`<${PageHead} title="Dataset group" crumbs=${crumbs} /><${ErrorAlert} error=${group.error} />`;
  if (!group.data) return html`<${Loading} what="Loading the dataset group" />`;
  const g = group.data;
  const path = `/dataset-groups/${encodeURIComponent(g.id)}`;
  async function act(action) {
    setError(null);
    try {
      const updated = await action();
      if (updated) group.setData(updated);
      else group.reload();
    } catch (e) {
      setError(e);
    }
  }
  const others = (datasets.data || []).map((d) => d.name).filter((n) => !g.datasets.includes(n));
  const typeOf = (name) => ((datasets.data || []).find((d) => d.name === name) || {}).type;
  const secondUnstructured =
    add && typeOf(add) === "unstructured" && g.datasets.some((n) => typeOf(n) === "unstructured");
  return html`<${PageHead} title=${g.name} crumbs=${crumbs}>
      ${canWrite && html`<button type="button" class="danger" onClick=${() => setConfirmDelete(true)}>Delete dataset group</button>`}
    <//>
    <${ErrorAlert} error=${error} />
    <div class="grid2">
      <section class="panel" aria-labelledby="dg-match">
        <h2 id="dg-match">Directory groups that match</h2>
        ${g.ambiguous && !g.pinned && html`<${Alert} kind="warning"><p>
          ${g.matching_directory_groups.length} directory groups are named like this dataset group, and each
          gives its members these datasets. If only one is meant, pin the dataset group to it: a group of the
          same name made later in Entra then gives nothing.</p><//>`}
        ${g.pinned_to && !g.pinned_to.present && html`<${Alert} kind="warning"><p>
          Pinned to a directory group that is no longer in the directory under this name (deleted, made again,
          or renamed in Entra): no directory group gives access through it until you pin it again or unpin it.</p><//>`}
        ${g.matching_directory_groups.length
          ? html`<ul>${g.matching_directory_groups.map((m) => html`<li>
              <a href=${href(pathOf("directory", "groups", m.id))}>${m.display_name}</a>
              <span class="muted"> (${formatNumber(m.member_count)} member${m.member_count === 1 ? "" : "s"}${m.external_id ? html`, externalId <code>${m.external_id}</code>` : ""})</span>
              ${m.pinned && html` <${Badge} kind="ok">pinned<//>`}
              ${!m.gives_access && html` <${Badge} kind="off" title="The dataset group is pinned to another directory group">gives no access<//>`}
              ${canWrite && !m.pinned && html` <button type="button" class="link" aria-label=${`Pin to this group: ${m.display_name}`}
                onClick=${() => act(() => api.put(`${path}/pin`, { directory_group: m.id }))}>pin to this group</button>`}
              </li>`)}</ul>`
          : html`<p class="muted">No directory group matches this name yet. An Entra group named
              “${g.name}” (any case) gives its synced members these datasets once provisioned.</p>`}
        ${g.pinned_to
          ? html`<p class="small muted">Pinned: only that directory group (the same id and externalId) gives access
              through this dataset group.
              ${canWrite && html` <button type="button" class="link" onClick=${() => act(() => api.delete(`${path}/pin`))}>Unpin</button>`}</p>`
          : g.matching_directory_groups.length > 0 && html`<p class="small muted">Not pinned: any directory group
              named like it gives access, including one made later.</p>`}
      </section>
      <section class="panel" aria-labelledby="dg-keys">
        <h2 id="dg-keys">Keys with access through it</h2>
        <p><span class="value" style=${{ fontSize: "1.5rem", fontWeight: 700 }}>${formatNumber(g.keys_with_access)}</span>${" "}
          key${g.keys_with_access === 1 ? "" : "s"} (enabled or not): granted this group, or members of a matching directory group.</p>
        <p class="small muted">Created <${Time} value=${g.created_at} />.</p>
      </section>
    </div>
    <section class="panel" aria-labelledby="dg-datasets">
      <h2 id="dg-datasets">Datasets</h2>
      ${g.datasets.length
        ? html`<ul>${g.datasets.map((name) => html`<li><a href=${href(pathOf("datasets", name))}>${name}</a>
            ${canWrite && html` <button type="button" class="link" aria-label=${`Remove ${name} from this group`}
              onClick=${() => act(() => api.delete(`${path}/datasets/${encodeURIComponent(name)}`))}>remove</button>`}</li>`)}</ul>`
        : html`<p class="muted">No datasets in this group yet.</p>`}
      ${canWrite && others.length > 0 && html`<div class="toolbar">
        <${SelectInput} id="dg-add" label="Add a dataset" value=${add} onInput=${(e) => setAdd(e.target.value)}
          options=${[["", "Choose a dataset"], ...others.map((n) => [n, n])]} />
        <button type="button" disabled=${!add}
          onClick=${() => act(() => api.post(`${path}/datasets`, { datasets: [add] })).then(() => setAdd(""))}>Add</button>
      </div>
      ${secondUnstructured && html`<${Alert} kind="warning"><p>
        This group already holds an unstructured dataset. A key that reaches two of them can
        encrypt unstructured data only once it has a default (the client names no dataset):
        a manual key's page sets one; a key that follows the directory cannot have one.
      </p><//>`}`}
    </section>
    ${canWrite && html`<section class="panel" aria-labelledby="dg-rename">
      <h2 id="dg-rename">Rename</h2>
      <p class="small muted">Access follows the name: after a rename, directory groups matching the new name give
        access and those matching only the old one stop.</p>
      <form class="row" noValidate onSubmit=${(e) => {
        e.preventDefault();
        rename.submit((v) => ({ name: v.name.trim() ? undefined : "Enter the new name." }), async (v) => {
          const updated = await api.patch(path, { name: v.name.trim() });
          navigate(pathOf("dataset-groups", updated.id), {}, { replace: true });
        });
      }}>
        <div style=${{ flex: "1", minWidth: "12rem" }}>
          <${TextInput} id="dg-new-name" label="New name" value=${rename.values.name} onInput=${rename.set("name")}
            error=${rename.errors.name || (rename.message && describe(rename.message))} />
        </div>
        <button type="submit" disabled=${rename.busy}>Rename</button>
      </form>
    </section>`}
    <${ConfirmDialog} open=${confirmDelete} title=${`Delete dataset group ${g.name}?`} confirmLabel="Delete dataset group"
      onCancel=${() => setConfirmDelete(false)}
      onConfirm=${async () => { await api.delete(path); navigate("/dataset-groups"); }}>
      <p>Its datasets are kept. The ${formatNumber(g.keys_with_access)} key(s) that reach datasets through this
        group lose that access at once (unless another path gives it).</p>
    <//>`;
}
