// The admins page (superadmins only): every account with its global flag and its role per
// workspace, and the forms that change them (the same actions as `npm run cli -- admin …`).
import type { AdminListItem } from '../../tokens/roles.ts'
import type { AdminIdentity } from '../security/auth.ts'
import { html, type SafeHtml } from './html.ts'
import { csrfField } from './layout.ts'

export interface WorkspaceChoice {
  id: string
  slug: string
}

function roleCell(admin: AdminIdentity, u: AdminListItem): SafeHtml {
  if (u.roles.length === 0) return html`<span class="muted">${u.superadmin ? 'owner of every workspace (superadmin)' : 'none'}</span>`
  return html`${u.roles.map(
    (r) => html`<div><span class="mono">${r.slug}</span>: ${r.role}
      <form method="post" action="/admins/revoke" class="inline" data-confirm="Remove ${u.email}'s role in ${r.slug}?">
        ${csrfField(admin)}<input type="hidden" name="email" value="${u.email}"><input type="hidden" name="workspace" value="${r.workspace_id}">
        <button class="link" type="submit">remove</button>
      </form></div>`,
  )}`
}

function superadminCell(admin: AdminIdentity, u: AdminListItem): SafeHtml {
  const next = u.superadmin ? 'off' : 'on'
  return html`${u.superadmin ? html`<span class="badge good">superadmin</span>` : html`<span class="muted">no</span>`}
    <form method="post" action="/admins/superadmin" class="inline"${u.superadmin ? html` data-confirm="Take superadmin away from ${u.email}?"` : ''}>
      ${csrfField(admin)}<input type="hidden" name="email" value="${u.email}"><input type="hidden" name="superadmin" value="${next}">
      <button class="link" type="submit">${u.superadmin ? 'turn off' : 'make superadmin'}</button>
    </form>`
}

export function adminsBody(
  admin: AdminIdentity,
  users: AdminListItem[],
  workspaces: WorkspaceChoice[],
  form: Record<string, string | undefined>,
): SafeHtml {
  return html`<h1>Admins</h1>
    <table id="admins">
      <thead><tr><th>Email</th><th>Status</th><th>Superadmin</th><th>Roles</th></tr></thead>
      <tbody>${users.map(
        (u) => html`<tr>
          <td>${u.email}</td>
          <td>${u.disabled ? html`<span class="badge bad">disabled</span>` : 'active'}</td>
          <td>${superadminCell(admin, u)}</td>
          <td>${roleCell(admin, u)}</td>
        </tr>`,
      )}</tbody>
    </table>
    <h2>Give a role</h2>
    <form method="post" action="/admins/grant" class="row">
      ${csrfField(admin)}
      <label>Admin <select name="email" required>${users.map((u) => html`<option value="${u.email}"${form.email === u.email ? html` selected` : ''}>${u.email}</option>`)}</select></label>
      <label>Workspace <select name="workspace" required>${workspaces.map((w) => html`<option value="${w.id}"${form.workspace === w.id ? html` selected` : ''}>${w.slug}</option>`)}</select></label>
      <label>Role <select name="role"><option value="analyst">analyst</option><option value="owner"${form.role === 'owner' ? html` selected` : ''}>owner</option></select></label>
      <button type="submit">Give role</button>
    </form>
    <p class="muted">An analyst reads a workspace's sessions, photos, dashboards and audit entries and exports them. An owner also manages its tokens (and its webhooks, retention and deletions). A superadmin does everything, in every workspace, and manages workspaces and admins. A role replaces the one the admin had in that workspace; changes apply at their next click. New accounts are made with <span class="mono">npm run cli -- admin create</span>.</p>`
}
