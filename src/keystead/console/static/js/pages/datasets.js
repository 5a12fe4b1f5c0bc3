// #/datasets: datasets and their key versions; create from a template (with a preview of
// its alphabets) or a custom definition; rotate, move between groups, delete.

import { api, describe } from "../api.js";
import { html, useState } from "../lib.js";
import { href, navigate, pathOf } from "../router.js";
import {
  Alert,
  ConfirmDialog,
  Dialog,
  ErrorAlert,
  Field,
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

export function DatasetsPage() {
  const { canWrite } = useSession();
  const datasets = useResource(() => api.get("/datasets"), []);
  const [creating, setCreating] = useState(false);
  return html`<${PageHead} title="Datasets">
      ${canWrite && html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New dataset</button>`}
    <//>
    <p class="muted">A dataset is what a client encrypts under: structured (format-preserving, e.g. an SSN) or
      unstructured (any text or file). Keys reach datasets directly, through dataset groups, or through
      directory groups that match a dataset group.</p>
    <${ErrorAlert} error=${datasets.error} />
    ${!datasets.data ? html`<${Loading} what="Loading datasets" />` : !datasets.data.length
      ? html`<p class="muted">No datasets yet. Create one with <em>New dataset</em>.</p>`
      : html`<div class="table-wrap"><table>
          <caption class="visually-hidden">Datasets</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Format</th>
            <th scope="col" class="num">Current key</th><th scope="col" class="hide-narrow">Created</th></tr></thead>
          <tbody>${datasets.data.map((d) => html`<tr>
            <td><a href=${href(pathOf("datasets", d.name))}>${d.name}</a></td>
            <td>${d.type}</td>
            <td>${d.type === "unstructured" ? "free text" : d.template || "custom"}</td>
            <td class="num">${d.current_key_number}</td>
            <td class="hide-narrow"><${Time} value=${d.created_at} /></td>
          </tr>`)}</tbody>
        </table></div>`}
    ${creating && html`<${CreateDatasetDialog} onClose=${() => setCreating(false)} />`}`;
}

function TemplatePreview({ template }) {
  if (!template) return null;
  return html`<div class="panel" aria-live="polite">
    <p><strong>${template.name}</strong>: ${template.description}</p>
    <dl class="facts small">
      <dt>Input characters</dt><dd class="preview">${template.input_character_set}</dd>
      <dt>Output characters</dt><dd class="preview">${template.output_character_set}</dd>
      <dt>Passed through</dt><dd class="preview">${template.passthrough ? JSON.stringify(template.passthrough) : "none"}</dd>
      <dt>Length</dt><dd>${template.min_input_length} to ${template.max_input_length} characters</dd>
      <dt>Key versions</dt><dd>up to ${template.max_key_number + 1} (key numbers 0–${template.max_key_number})</dd>
    </dl>
  </div>`;
}

function CreateDatasetDialog({ onClose }) {
  const templates = useResource(() => api.get("/dataset-templates"), []);
  const groups = useResource(() => api.get("/dataset-groups"), []);
  const form = useForm({ name: "", type: "structured", template: "ssn", definition: "", groups: [] });
  const { values, errors } = form;
  const structured = (templates.data || []).filter((t) => t.type === "structured");
  const chosen = structured.find((t) => t.name === values.template);
  function validate(v) {
    const problems = { name: v.name.trim() ? undefined : "Enter a name, e.g. SSN." };
    if (v.type === "structured" && v.template === "custom") {
      try {
        const parsed = JSON.parse(v.definition);
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) problems.definition = "The definition must be a JSON object.";
      } catch (e) {
        problems.definition = `The definition is not valid JSON: ${e.message}`;
      }
    }
    return problems;
  }
  async function create(v) {
    const body = { name: v.name.trim(), type: v.type, dataset_groups: v.groups };
    if (v.type === "structured") {
      if (v.template === "custom") body.definition = JSON.parse(v.definition);
      else body.template = v.template;
    }
    const made = await api.post("/datasets", body);
    navigate(pathOf("datasets", made.name));
  }
  const refusal = form.message;
  return html`<${Dialog} open=${true} title="New dataset" onClose=${onClose}>
    <form noValidate onSubmit=${(e) => { e.preventDefault(); form.submit(validate, create); }}>
      <${TextInput} id="ds-name" label="Name" value=${values.name} onInput=${form.set("name")}
        error=${errors.name} hint="What clients name when they encrypt, e.g. SSN: letters, digits, '_', '.' and '-', up to 64." />
      <fieldset>
        <legend>Type</legend>
        <label class="choice" for="ds-structured">
          <input type="radio" id="ds-structured" name="ds-type" checked=${values.type === "structured"}
            onChange=${() => form.setValues((v) => ({ ...v, type: "structured" }))} />
          Structured: format-preserving, the ciphertext looks like the input (an SSN stays 9 characters)
        </label>
        <label class="choice" for="ds-unstructured">
          <input type="radio" id="ds-unstructured" name="ds-type" checked=${values.type === "unstructured"}
            onChange=${() => form.setValues((v) => ({ ...v, type: "unstructured" }))} />
          Unstructured: any text or file, AES-256-GCM
        </label>
      </fieldset>
      ${values.type === "structured" && html`
        <${SelectInput} id="ds-template" label="Format" value=${values.template} onInput=${form.set("template")}
          options=${[...structured.map((t) => [t.name, `${t.name}: ${t.description}`]), ["custom", "Custom FF1 definition (JSON)"]]} />
        ${values.template === "custom"
          ? html`<${Field} id="ds-definition" label="Definition (JSON)" error=${errors.definition}
                hint="input_character_set, output_character_set, min_input_length and max_input_length at least; Keystead checks it against the client's rules.">
              <textarea id="ds-definition" value=${values.definition} onInput=${form.set("definition")}
                aria-invalid=${errors.definition ? "true" : undefined}
                aria-describedby=${errors.definition ? "ds-definition-hint ds-definition-error" : "ds-definition-hint"}
                placeholder='{"input_character_set": "0123456789", "output_character_set": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "min_input_length": 6, "max_input_length": 20}'></textarea>
            <//>`
          : html`<${TemplatePreview} template=${chosen} />`}`}
      ${groups.data && groups.data.length > 0 && html`<fieldset>
        <legend>Put it in dataset groups (optional)</legend>
        ${groups.data.map((g, i) => html`<label class="choice" for=${`ds-group-${i}`}>
          <input type="checkbox" id=${`ds-group-${i}`} checked=${values.groups.includes(g.name)}
            onChange=${() => form.setValues((v) => ({ ...v, groups: v.groups.includes(g.name) ? v.groups.filter((n) => n !== g.name) : [...v.groups, g.name] }))} />
          ${g.name}
        </label>`)}
      </fieldset>`}
      ${refusal && html`<${Alert} kind="error"><p>${refusal.fields && Object.keys(refusal.fields).length
        ? "Not created: fix the field marked above."
        : describe(refusal)}</p><//>`}
      <div class="dialog-actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${form.busy}>${form.busy ? "Creating…" : "Create dataset"}</button>
      </div>
    </form>
  <//>`;
}

export function DatasetPage({ name }) {
  const { canWrite } = useSession();
  const dataset = useResource(() => api.get(`/datasets/${encodeURIComponent(name)}`), [name]);
  const groups = useResource(() => api.get("/dataset-groups"), []);
  const [dialog, setDialog] = useState(null); // "rotate" | "delete"
  const [error, setError] = useState(null);
  const [addTo, setAddTo] = useState("");
  const crumbs = html`<a href="#/datasets">Datasets</a> /`;
  if (dataset.error) return html`<${PageHead} title="Dataset" crumbs=${crumbs} /><${ErrorAlert} error=${dataset.error} />`;
  if (!dataset.data) return html`<${Loading} what="Loading the dataset" />`;
  const d = dataset.data;
  const path = `/datasets/${encodeURIComponent(d.id)}`;
  async function act(action) {
    setError(null);
    try {
      await action();
      dataset.reload();
      groups.reload();
    } catch (e) {
      setError(e);
    }
  }
  const others = (groups.data || []).map((g) => g.name).filter((n) => !d.dataset_groups.includes(n));
  // Group names may hold '/', which a path segment cannot carry: address groups by id.
  const groupId = (name) => ((groups.data || []).find((g) => g.name === name) || { id: "" }).id;
  const full = d.max_key_number !== null && d.current_key_number >= d.max_key_number;
  return html`<${PageHead} title=${d.name} crumbs=${crumbs}>
      ${canWrite && html`<button type="button" onClick=${() => setDialog("rotate")} disabled=${full}
          aria-describedby=${full ? "rotate-why" : undefined}>Rotate key</button>
        <button type="button" class="danger" onClick=${() => setDialog("delete")}>Delete dataset</button>`}
    <//>
    ${full && html`<p id="rotate-why" class="why">This format has room for key numbers up to ${d.max_key_number}; every one is used.</p>`}
    <${ErrorAlert} error=${error} />
    <section class="panel" aria-labelledby="ds-facts">
      <h2 id="ds-facts">Dataset</h2>
      <dl class="facts">
        <dt>Type</dt><dd>${d.type}</dd>
        <dt>Format</dt><dd>${d.type === "unstructured" ? "free text (AES-256-GCM)" : d.template || "custom FF1 definition"}</dd>
        <dt>Current key number</dt><dd>${d.current_key_number}${d.max_key_number !== null ? ` (at most ${d.max_key_number})` : ""}</dd>
        <dt>Created</dt><dd><${Time} value=${d.created_at} /></dd>
      </dl>
      ${d.definition && html`<details><summary>FF1 definition</summary>
        <dl class="facts small">
          <dt>Input characters</dt><dd class="preview">${d.definition.input_character_set}</dd>
          <dt>Output characters</dt><dd class="preview">${d.definition.output_character_set}</dd>
          <dt>Passed through</dt><dd class="preview">${d.definition.passthrough ? JSON.stringify(d.definition.passthrough) : "none"}</dd>
          <dt>Length</dt><dd>${d.definition.min_input_length} to ${d.definition.max_input_length}</dd>
        </dl></details>`}
    </section>
    <section class="panel" aria-labelledby="ds-keys">
      <h2 id="ds-keys">Key versions</h2>
      <div class="table-wrap"><table>
        <thead><tr><th scope="col" class="num">Key number</th><th scope="col">Created</th></tr></thead>
        <tbody>${d.keys.map((k) => html`<tr><td class="num">${k.key_number}${k.key_number === d.current_key_number ? " (current)" : ""}</td>
          <td><${Time} value=${k.created_at} /></td></tr>`)}</tbody>
      </table></div>
    </section>
    <section class="panel" aria-labelledby="ds-groups">
      <h2 id="ds-groups">Dataset groups</h2>
      ${d.dataset_groups.length
        ? html`<ul>${d.dataset_groups.map((g) => html`<li><a href=${href(pathOf("dataset-groups", groupId(g) || g))}>${g}</a>
            ${canWrite && html` <button type="button" class="link" aria-label=${`Remove from ${g}`}
              onClick=${() => act(() => api.delete(`/dataset-groups/${groupId(g)}/datasets/${encodeURIComponent(d.id)}`))}>remove</button>`}
          </li>`)}</ul>`
        : html`<p class="muted">In no dataset group.</p>`}
      ${canWrite && others.length > 0 && html`<div class="toolbar">
        <${SelectInput} id="ds-add-group" label="Add to a dataset group" value=${addTo}
          options=${[["", "Choose a dataset group"], ...others.map((n) => [n, n])]} onInput=${(e) => setAddTo(e.target.value)} />
        <button type="button" disabled=${!addTo}
          onClick=${() => act(() => api.post(`/dataset-groups/${groupId(addTo)}/datasets`, { datasets: [d.id] })).then(() => setAddTo(""))}>Add</button>
      </div>`}
    </section>
    <${ConfirmDialog} open=${dialog === "rotate"} title=${`Rotate the key of ${d.name}?`} confirmLabel="Rotate key" danger=${false}
      onCancel=${() => setDialog(null)}
      onConfirm=${async () => { await api.post(`${path}/rotate-key`); setDialog(null); dataset.reload(); }}>
      <p>New encryptions use key number ${d.current_key_number + 1}. Data encrypted under earlier keys still
        decrypts: clients ask for the key number a ciphertext names.</p>
    <//>
    <${ConfirmDialog} open=${dialog === "delete"} title=${`Delete dataset ${d.name}?`} confirmLabel="Delete dataset"
      typed=${d.name} onCancel=${() => setDialog(null)}
      onConfirm=${async () => { await api.delete(path); navigate("/datasets"); }}>
      <p><strong>Data encrypted under ${d.name} can no longer be decrypted</strong>: its ${formatNumber(d.keys.length)}${" "}
        key version(s) are destroyed. It leaves its dataset groups and every grant of it is removed. This
        cannot be undone.</p>
    <//>`;
}
