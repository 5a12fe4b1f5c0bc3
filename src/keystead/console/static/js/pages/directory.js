// #/directory: what Entra has synced, read-only. Users with their keys, groups with their
// members and the dataset group each matches; every entry links to its provisioning log.

import { api } from "../api.js";
import { html } from "../lib.js";
import { href, pathOf, setParams } from "../router.js";
import {
  Badge,
  ErrorAlert,
  Loading,
  PageHead,
  Pager,
  SearchBox,
  SelectInput,
  Time,
  formatNumber,
  useResource,
} from "../ui.js";

const LIMIT = 50;

function ActiveBadge({ active }) {
  return active ? html`<${Badge} kind="ok">active<//>` : html`<${Badge} kind="off">inactive<//>`;
}

function KeyLink({ apiKey }) {
  if (!apiKey) return html`<span class="muted">none</span>`;
  return html`<a href=${href(pathOf("api-keys", apiKey.access_key_id))}><code>${apiKey.access_key_id}</code></a>
    ${!apiKey.enabled && html` <${Badge} kind="off">disabled<//>`}`;
}

export function DirectoryPage({ route }) {
  const tab = route.params.tab === "groups" ? "groups" : "users";
  return html`<${PageHead} title="Directory" />
    <p class="muted">Users and groups as Entra's provisioning synced them. Read-only: change them in Entra.</p>
    <nav class="row" aria-label="Directory" style=${{ marginBottom: "1rem" }}>
      <a class="button" href=${href("/directory")} aria-current=${tab === "users" ? "page" : undefined}>Users</a>
      <a class="button" href=${href("/directory", { tab: "groups" })} aria-current=${tab === "groups" ? "page" : undefined}>Groups</a>
    </nav>
    ${tab === "users" ? html`<${UsersTab} route=${route} />` : html`<${GroupsTab} route=${route} />`}`;
}

function UsersTab({ route }) {
  const q = route.params.q || "";
  const active = route.params.active || "";
  const offset = Number(route.params.offset || 0);
  const users = useResource(() => api.get("/directory/users", { q, active, limit: LIMIT, offset }), [q, active, offset]);
  return html`<div class="toolbar">
      <${SearchBox} id="user-search" label="Search users (userName, display name, externalId)" value=${q}
        onSearch=${(text) => setParams(route, { q: text, offset: "" })} />
      <${SelectInput} id="user-active" label="Show" value=${active}
        options=${[["", "All users"], ["true", "Active"], ["false", "Inactive"]]}
        onInput=${(e) => setParams(route, { active: e.target.value, offset: "" })} />
    </div>
    <${ErrorAlert} error=${users.error} />
    ${!users.data ? html`<${Loading} what="Loading users" />` : !users.data.items.length
      ? html`<p class="muted">${q || active
          ? "No synced users match these filters."
          : "No synced users yet: assign users to the enterprise application in Entra and start provisioning."}</p>`
      : html`<div class="table-wrap"><table class="cards">
          <caption class="visually-hidden">Synced users</caption>
          <thead><tr><th scope="col">userName</th><th scope="col" class="hide-narrow">Display name</th>
            <th scope="col">Status</th><th scope="col">API key</th><th scope="col" class="num">Groups</th>
            <th scope="col">Log</th></tr></thead>
          <tbody>${users.data.items.map((u) => html`<tr>
            <td data-label="userName"><a href=${href(pathOf("directory", "users", u.id))}>${u.user_name}</a></td>
            <td class="hide-narrow">${u.display_name || ""}</td>
            <td data-label="Status"><${ActiveBadge} active=${u.active} /></td>
            <td data-label="API key"><${KeyLink} apiKey=${u.api_key} /></td>
            <td data-label="Groups" class="num">${formatNumber(u.group_count)}</td>
            <td data-label="Log"><a href=${href("/provisioning", { user: u.user_name })} >log entries<span class="visually-hidden"> of ${u.user_name}</span></a></td>
          </tr>`)}</tbody>
        </table></div>
        <${Pager} total=${users.data.total} limit=${LIMIT} offset=${offset} what="users"
          onPage=${(next) => setParams(route, { offset: next || "" })} />`}`;
}

function GroupsTab({ route }) {
  const q = route.params.q || "";
  const matched = route.params.matched || "";
  const offset = Number(route.params.offset || 0);
  const groups = useResource(() => api.get("/directory/groups", { q, matched, limit: LIMIT, offset }), [q, matched, offset]);
  return html`<div class="toolbar">
      <${SearchBox} id="group-search" label="Search groups (display name, externalId)" value=${q}
        onSearch=${(text) => setParams(route, { q: text, offset: "" })} />
      <${SelectInput} id="group-matched" label="Show" value=${matched}
        options=${[["", "All groups"], ["true", "Matching a dataset group"], ["false", "Matching none"]]}
        onInput=${(e) => setParams(route, { matched: e.target.value, offset: "" })} />
    </div>
    <${ErrorAlert} error=${groups.error} />
    ${!groups.data ? html`<${Loading} what="Loading groups" />` : !groups.data.items.length
      ? html`<p class="muted">${q || matched ? "No synced groups match these filters." : "No synced groups yet."}</p>`
      : html`<div class="table-wrap"><table class="cards">
          <caption class="visually-hidden">Synced groups</caption>
          <thead><tr><th scope="col">Display name</th><th scope="col" class="num">Members</th>
            <th scope="col">Matching dataset group</th><th scope="col">Log</th></tr></thead>
          <tbody>${groups.data.items.map((g) => html`<tr>
            <td data-label="Group"><a href=${href(pathOf("directory", "groups", g.id))}>${g.display_name}</a></td>
            <td data-label="Members" class="num">${formatNumber(g.member_count)}</td>
            <td data-label="Dataset group">${g.dataset_group ? html`<a href=${href(pathOf("dataset-groups", g.dataset_group))}>${g.dataset_group}</a>` : html`<span class="muted">none</span>`}</td>
            <td data-label="Log"><a href=${href("/provisioning", { group: g.display_name })} >log entries<span class="visually-hidden"> of ${g.display_name}</span></a></td>
          </tr>`)}</tbody>
        </table></div>
        <${Pager} total=${groups.data.total} limit=${LIMIT} offset=${offset} what="groups"
          onPage=${(next) => setParams(route, { offset: next || "" })} />`}`;
}

export function DirectoryUserPage({ id }) {
  const user = useResource(() => api.get(`/directory/users/${encodeURIComponent(id)}`), [id]);
  const crumbs = html`<a href="#/directory">Directory</a> /`;
  if (user.error) return html`<${PageHead} title="Directory user" crumbs=${crumbs} /><${ErrorAlert} error=${user.error} />`;
  if (!user.data) return html`<${Loading} what="Loading the user" />`;
  const u = user.data;
  return html`<${PageHead} title=${u.user_name} crumbs=${crumbs}><${ActiveBadge} active=${u.active} /><//>
    <section class="panel" aria-labelledby="du-facts">
      <h2 id="du-facts">User</h2>
      <dl class="facts">
        <dt>Display name</dt><dd>${u.display_name || "—"}</dd>
        <dt>externalId</dt><dd><code>${u.external_id || "—"}</code></dd>
        <dt>API key</dt><dd><${KeyLink} apiKey=${u.api_key} /></dd>
        <dt>Signs in as</dt><dd>${u.signed_in_as
          ? html`Entra object <code>${u.signed_in_as}</code> (bound at the first sign-in; another person with this user name is refused)`
          : html`<span class="muted">not signed in yet</span>`}</dd>
        <dt>Synced</dt><dd><${Time} value=${u.created_at} /> (changed <${Time} value=${u.updated_at} />)</dd>
        <dt>Provisioning log</dt><dd><a href=${href("/provisioning", { user: u.user_name })}>what each sync did to this user</a></dd>
      </dl>
    </section>
    <section class="panel" aria-labelledby="du-groups">
      <h2 id="du-groups">Groups</h2>
      ${u.groups.length
        ? html`<ul>${u.groups.map((g) => html`<li><a href=${href(pathOf("directory", "groups", g.id))}>${g.display_name}</a>
            ${g.dataset_group ? html` → dataset group <a href=${href(pathOf("dataset-groups", g.dataset_group))}>${g.dataset_group}</a>` : html` <span class="muted">(matches no dataset group)</span>`}
          </li>`)}</ul>`
        : html`<p class="muted">In no synced group.</p>`}
    </section>`;
}

export function DirectoryGroupPage({ id, route }) {
  const offset = Number(route.params.offset || 0);
  const group = useResource(() => api.get(`/directory/groups/${encodeURIComponent(id)}`, { limit: LIMIT, offset }), [id, offset]);
  const crumbs = html`<a href=${href("/directory", { tab: "groups" })}>Directory groups</a> /`;
  if (group.error) return html`<${PageHead} title="Directory group" crumbs=${crumbs} /><${ErrorAlert} error=${group.error} />`;
  if (!group.data) return html`<${Loading} what="Loading the group" />`;
  const g = group.data;
  return html`<${PageHead} title=${g.display_name} crumbs=${crumbs} />
    <section class="panel" aria-labelledby="dgr-facts">
      <h2 id="dgr-facts">Group</h2>
      <dl class="facts">
        <dt>Matching dataset group</dt>
        <dd>${g.dataset_group
          ? html`<a href=${href(pathOf("dataset-groups", g.dataset_group))}>${g.dataset_group}</a>: its datasets go to every member's key`
          : "none: create a dataset group with this name to give the members datasets"}</dd>
        <dt>externalId</dt><dd><code>${g.external_id || "—"}</code></dd>
        <dt>Members</dt><dd>${formatNumber(g.member_count)}</dd>
        <dt>Provisioning log</dt><dd><a href=${href("/provisioning", { group: g.display_name })}>what each sync did to this group</a></dd>
      </dl>
    </section>
    <section class="panel" aria-labelledby="dgr-members">
      <h2 id="dgr-members">Members</h2>
      ${g.members.items.length
        ? html`<ul>${g.members.items.map((u) => html`<li><a href=${href(pathOf("directory", "users", u.id))}>${u.user_name}</a>
            ${!u.active && html` <${Badge} kind="off">inactive<//>`}</li>`)}</ul>
          <${Pager} total=${g.members.total} limit=${LIMIT} offset=${offset} what="members"
            onPage=${(next) => setParams(route, { offset: next || "" })} />`
        : html`<p class="muted">No members.</p>`}
    </section>`;
}
