// #/audit: every change and every failed sign-in, newest first, by actor, kind and time.

import { api } from "../api.js";
import { html } from "../lib.js";
import { setParams } from "../router.js";
import { Badge, ErrorAlert, Loading, OlderPager, PageHead, SearchBox, SelectInput, Time, useResource } from "../ui.js";
import { TimeRange } from "./logs.js";

const LIMIT = 50;
const ACTIONS = [
  ["", "Everything"],
  ["admin.sign_in_failed", "Failed sign-ins"],
  ["admin", "Admins and sign-ins"],
  ["admin_token", "Admin API tokens"],
  ["api_key", "API keys"],
  ["dataset.", "Datasets"],
  ["dataset_group", "Dataset groups"],
  ["idp", "IDP integration"],
  ["directory", "Directory sync"],
  ["account", "Account"],
];

function summary(event) {
  const d = event.detail || {};
  if (event.action === "admin.sign_in_failed") {
    const locked = d.locked ? ` Further sign-ins are paused (${d.locked.join(" and ")}).` : "";
    return `Failed sign-in from ${d.address || "an unknown address"}: ${d.reason || "refused"}.${locked}`;
  }
  const parts = Object.entries(d).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  return parts.join("; ");
}

export function AuditPage({ route }) {
  const p = route.params;
  const filters = { actor: p.actor || "", action: p.action || "", since: p.since || "", until: p.until || "", before: p.before || "" };
  const events = useResource(() => api.get("/audit", { ...filters, limit: LIMIT }), Object.values(filters));
  const change = (changes) => setParams(route, { ...changes, before: "" });
  return html`<${PageHead} title="Audit log" />
    <p class="muted">Who changed what in this account, and every failed console sign-in.</p>
    <div class="toolbar">
      <${SearchBox} id="audit-actor" label="Actor (part of an email)" value=${filters.actor} onSearch=${(actor) => change({ actor })} />
      <${SelectInput} id="audit-action" label="Kind" value=${filters.action} options=${ACTIONS}
        onInput=${(e) => change({ action: e.target.value })} />
      <${TimeRange} idPrefix="audit" since=${filters.since} until=${filters.until} onChange=${change} />
    </div>
    <${ErrorAlert} error=${events.error} />
    ${!events.data ? html`<${Loading} what="Loading the audit log" />` : !events.data.length
      ? html`<p class="muted">No events match these filters.</p>`
      : html`<div class="table-wrap"><table>
          <caption class="visually-hidden">Audit events, newest first</caption>
          <thead><tr><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">Action</th>
            <th scope="col">Subject</th><th scope="col">Detail</th></tr></thead>
          <tbody>${events.data.map((e) => {
            const failed = e.action.endsWith("_failed");
            return html`<tr class=${failed ? "failed" : ""}>
              <td><${Time} value=${e.at} /></td>
              <td>${e.actor || e.actor_type}</td>
              <td>${failed ? html`<${Badge} kind="bad">${e.action}<//>` : html`<code>${e.action}</code>`}</td>
              <td>${e.subject || ""}</td>
              <td class="small">${summary(e)}</td>
            </tr>`;
          })}</tbody>
        </table></div>
        <${OlderPager} items=${events.data} limit=${LIMIT} before=${filters.before}
          onPage=${(before) => setParams(route, { before: before || "" }, { replace: false })} />`}`;
}
