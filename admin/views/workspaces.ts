// The workspaces list (with activity counts and the new-workspace form) and a workspace's
// settings page (name, slug, status).
import type { WorkspaceListItem } from '../../tokens/workspaces.ts'
import type { WorkspaceActivity } from '../data/activity.ts'
import type { AdminIdentity } from '../security/auth.ts'
import { fmtAgo, fmtDate } from './format.ts'
import { html, seg, type SafeHtml } from './html.ts'
import { csrfField, type WorkspaceRef } from './layout.ts'

function workspaceRow(w: WorkspaceListItem, a: WorkspaceActivity | undefined, now: Date): SafeHtml {
  return html`<tr>
    <td><a href="/workspaces/${seg(w.id)}/dashboard">${w.name}</a></td>
    <td class="mono">${w.slug}</td>
    <td>${w.active ? html`<span class="badge good">active</span>` : html`<span class="badge bad">inactive</span>`}</td>
    <td class="num">${a?.today ?? 0}</td>
    <td class="num">${a?.week ?? 0}</td>
    <td title="${fmtDate(a?.lastUpload)}">${a?.lastUpload ? fmtAgo(a.lastUpload, now) : 'never'}</td>
    <td class="num">${w.active_tokens} / ${w.tokens}</td>
  </tr>`
}

export function workspaceListBody(
  admin: AdminIdentity,
  list: WorkspaceListItem[],
  activity: Map<string, WorkspaceActivity>,
  now: Date,
  form: Record<string, string | undefined>,
): SafeHtml {
  return html`<h1>Workspaces</h1>
    <table>
      <thead><tr><th>Workspace</th><th>Slug</th><th>Status</th><th class="num">Sessions today</th><th class="num">This week</th><th>Last upload</th><th class="num">Active tokens</th></tr></thead>
      <tbody>${list.map((w) => workspaceRow(w, activity.get(w.id), now))}</tbody>
    </table>
    ${list.length === 0 ? html`<p class="muted">No workspace yet.</p>` : ''}
    <p class="muted">Counts are sessions received since 00:00 UTC today and since Monday 00:00 UTC; the last upload is the newest session, log batch or photo received.</p>
    ${admin.superadmin ? newWorkspaceForm(admin, form) : html`<p class="muted">You see the workspaces you have a role in. A superadmin grants roles and creates workspaces.</p>`}`
}

function newWorkspaceForm(admin: AdminIdentity, form: Record<string, string | undefined>): SafeHtml {
  return html`<h2>New workspace</h2>
    <form method="post" action="/workspaces" class="row">
      ${csrfField(admin)}
      <label>Slug <input name="slug" required placeholder="clinic-a" value="${form.slug ?? ''}"></label>
      <label>Name <input name="name" placeholder="Clinic A" value="${form.name ?? ''}"></label>
      <button type="submit">Create workspace</button>
    </form>`
}

function statusCard(admin: AdminIdentity, ws: WorkspaceRef): SafeHtml {
  return html`<div class="card">
    <h2>Status</h2>
    ${
      ws.active
        ? html`<p>Active: its tokens are accepted.</p>
        <form method="post" action="/workspaces/${seg(ws.id)}/deactivate" data-confirm="Deactivate ${ws.slug}? Every device using its tokens will be refused.">
          ${csrfField(admin)}<button class="danger" type="submit">Deactivate workspace</button>
        </form>
        <p class="muted">Deactivating refuses every token of this workspace (403) within a second; data already received stays.</p>`
        : html`<p>Inactive: its tokens are refused.</p>
        <form method="post" action="/workspaces/${seg(ws.id)}/activate">${csrfField(admin)}<button type="submit">Reactivate workspace</button></form>`
    }
  </div>`
}

/** `more`: further cards every owner sees (e.g. retention). */
export function settingsBody(admin: AdminIdentity, ws: WorkspaceRef, more: SafeHtml | '' = ''): SafeHtml {
  if (!admin.superadmin) {
    return html`<div class="card">
        <h2>Name and slug</h2>
        <p>${ws.name} · <span class="mono">${ws.slug}</span> · ${ws.active ? 'active' : 'inactive'}</p>
        <p class="muted">Only a superadmin renames, deactivates or reactivates a workspace.</p>
      </div>
      ${more}
      <p><a href="/audit?workspace=${seg(ws.id)}">Audit log of this workspace</a></p>`
  }
  return html`<div class="card">
      <h2>Name and slug</h2>
      <form method="post" action="/workspaces/${seg(ws.id)}/rename" class="row">
        ${csrfField(admin)}
        <label>Name <input name="name" required value="${ws.name}"></label>
        <label>Slug <input name="slug" required value="${ws.slug}"></label>
        <button type="submit">Save</button>
      </form>
      <p class="muted">The slug is what the CLI uses; DSNs do not contain it, so renaming never breaks a device.</p>
    </div>
    ${statusCard(admin, ws)}
    ${more}
    <p><a href="/audit?workspace=${seg(ws.id)}">Audit log of this workspace</a></p>`
}
