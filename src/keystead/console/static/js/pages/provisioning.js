// #/provisioning: what each SCIM request from Entra and each sign-in exchange did, newest
// first. Failures stand out and say why, in words.

import { api } from "../api.js";
import { html } from "../lib.js";
import { setParams } from "../router.js";
import { Badge, ErrorAlert, Loading, OlderPager, PageHead, SearchBox, SelectInput, Time, useResource } from "../ui.js";
import { TimeRange } from "./logs.js";

const LIMIT = 50;

const SCIM_TYPES = {
  uniqueness: "it would duplicate an existing user or group",
  invalidValue: "a value Entra sent is not acceptable",
  invalidSyntax: "the request is malformed",
  invalidFilter: "the filter is not one Keystead understands",
  invalidPath: "the attribute path is not valid",
  noTarget: "the attribute or member named does not exist",
  mutability: "the attribute cannot be changed",
  tooMany: "the request asks for too much at once",
};

/** Why an entry failed, for people: the detail Keystead recorded, and what its code means. */
export function reason(event) {
  if (event.outcome !== "failed") return event.detail || "";
  const code = event.scim_type && SCIM_TYPES[event.scim_type];
  const parts = [event.detail, code && `(${code})`].filter(Boolean);
  return parts.join(" ") || `Refused with status ${event.status}.`;
}

export function ProvisioningPage({ route }) {
  const p = route.params;
  const filters = {
    user: p.user || "",
    group: p.group || "",
    outcome: p.outcome || "",
    kind: p.kind || "",
    since: p.since || "",
    until: p.until || "",
    before: p.before || "",
  };
  const events = useResource(
    () => api.get("/provisioning/log", { ...filters, limit: LIMIT }),
    Object.values(filters),
  );
  const change = (changes) => setParams(route, { ...changes, before: "" });
  return html`<${PageHead} title="Provisioning log" />
    <p class="muted">Every SCIM request from Entra's provisioning service and every sign-in exchange, with what
      it changed or why it was refused.</p>
    <div class="toolbar">
      <${SearchBox} id="log-user" label="User (part of the userName)" value=${filters.user} onSearch=${(user) => change({ user })} />
      <${SearchBox} id="log-group" label="Group (part of the name)" value=${filters.group} onSearch=${(group) => change({ group })} />
      <${SelectInput} id="log-outcome" label="Outcome" value=${filters.outcome}
        options=${[["", "Any outcome"], ["failed", "Failed"], ["success", "Succeeded"]]}
        onInput=${(e) => change({ outcome: e.target.value })} />
      <${SelectInput} id="log-kind" label="Kind" value=${filters.kind}
        options=${[["", "Sync and sign-in"], ["scim", "Directory sync (SCIM)"], ["sso", "Sign-in exchanges"]]}
        onInput=${(e) => change({ kind: e.target.value })} />
      <${TimeRange} idPrefix="log" since=${filters.since} until=${filters.until} onChange=${change} />
    </div>
    <${ErrorAlert} error=${events.error} />
    ${Object.values(filters).some(Boolean) && html`<p class="small"><a href="#/provisioning">Clear the filters</a></p>`}
    ${!events.data ? html`<${Loading} what="Loading the provisioning log" />` : !events.data.length
      ? html`<p class="muted">No entries match these filters.</p>`
      : html`<div class="table-wrap"><table class="cards">
          <caption class="visually-hidden">Provisioning log entries, newest first</caption>
          <thead><tr><th scope="col">Time</th><th scope="col">Request</th><th scope="col">Resource</th>
            <th scope="col">Outcome</th><th scope="col">Detail</th></tr></thead>
          <tbody>${events.data.map((e) => html`<tr class=${e.outcome === "failed" ? "failed" : ""}>
            <td data-label="Time"><${Time} value=${e.at} /></td>
            <td data-label="Request">${e.operation === "sso" ? "sign-in" : e.operation} <span class="muted small">${e.method}</span></td>
            <td data-label="Resource">${e.resource_type ? `${e.resource_type}: ` : ""}${e.resource_name || e.resource_id || ""}</td>
            <td data-label="Outcome">${e.outcome === "failed"
              ? html`<${Badge} kind="bad">failed ${e.status}<//>`
              : html`<${Badge} kind="ok">ok ${e.status}<//>`}</td>
            <td data-label="Detail">${reason(e)}</td>
          </tr>`)}</tbody>
        </table></div>
        <${OlderPager} items=${events.data} limit=${LIMIT} before=${filters.before}
          onPage=${(before) => setParams(route, { before: before || "" }, { replace: false })} />`}`;
}
