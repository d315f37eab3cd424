// The tokens page's HTML: the list with last use and actions, the new-token form, and the box
// that shows a new DSN once (with a QR code for provisioning phones).
import QRCode from 'qrcode'
import { PERMISSIONS } from '../../shared/permissions.ts'
import type { TokenInfo, CreatedToken } from '../../tokens/tokens.ts'
import type { AdminIdentity } from '../security/auth.ts'
import { fmtAgo, fmtDate } from './format.ts'
import { html, seg, type SafeHtml } from './html.ts'
import { csrfField, type WorkspaceRef } from './layout.ts'

export type FormBody = Record<string, string | string[] | undefined>

export const GRACE_CHOICES: [number, string][] = [
  [0, 'none (stops now)'],
  [3600_000, '1 hour'],
  [86400_000, '1 day'],
  [7 * 86400_000, '7 days'],
  [30 * 86400_000, '30 days'],
]

/** The first value of a form field that may be repeated. */
export const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

export async function secretBox(created: CreatedToken, heading: string): Promise<SafeHtml> {
  const qr = await QRCode.toDataURL(created.dsn, { errorCorrectionLevel: 'M', margin: 2, width: 240 })
  return html`<div class="secret" id="new-token">
    <div>
      <h2>${heading}</h2>
      <p>Copy this DSN into the device now. <strong>It is shown only once</strong>: only a hash of the token is kept.</p>
      <code class="dsn" id="dsn">${created.dsn}</code>
      <button type="button" class="secondary" data-copy="dsn">Copy</button>
      <p class="muted">Token id <span class="mono">${created.id}</span> · permissions ${created.permissions.join(', ')}${created.expires_at ? ` · expires ${created.expires_at}` : ''}</p>
    </div>
    <img class="qr" alt="QR code of the DSN" src="${qr}">
  </div>`
}

function tokenActions(admin: AdminIdentity, ws: WorkspaceRef, t: TokenInfo): SafeHtml | '' {
  if (t.status !== 'active') return ''
  return html`<form method="post" action="/workspaces/${seg(ws.id)}/tokens/${seg(t.id)}/revoke" class="inline" data-confirm="Revoke ${t.id}? Devices using it will be refused at once.">
      ${csrfField(admin)}<button class="danger" type="submit">Revoke</button>
    </form>
    <form method="post" action="/workspaces/${seg(ws.id)}/tokens/${seg(t.id)}/rotate" class="inline">
      ${csrfField(admin)}
      <select name="grace" aria-label="Grace period for the old token">${GRACE_CHOICES.map(([ms, label]) => html`<option value="${ms}" ${ms === 86400_000 ? 'selected' : ''}>old works ${label}</option>`)}</select>
      <button class="secondary" type="submit">Rotate</button>
    </form>`
}

function tokenRow(admin: AdminIdentity, ws: WorkspaceRef, t: TokenInfo, used: Date | null, now: Date): SafeHtml {
  return html`<tr data-token="${t.id}">
    <td class="mono">${t.id}</td>
    <td>${t.label ?? html`<span class="muted">—</span>`}</td>
    <td>${t.permissions.join(', ')}</td>
    <td>${t.status === 'active' ? html`<span class="badge good">active</span>` : html`<span class="badge bad">${t.status}</span>`}</td>
    <td>${fmtDate(t.created_at)}</td>
    <td>${t.expires_at ? fmtDate(t.expires_at) : html`<span class="muted">never</span>`}</td>
    <td title="${fmtDate(used)}">${used ? fmtAgo(used, now) : 'never'}</td>
    <td>${tokenActions(admin, ws, t)}</td>
  </tr>`
}

export interface TokensView {
  admin: AdminIdentity
  ws: WorkspaceRef
  /** Oldest first, as listTokens returns them; shown newest first. */
  tokens: TokenInfo[]
  lastUsed: Map<string, Date | null>
  now: Date
  secret?: SafeHtml
  /** The refused form's fields, to fill it again. */
  form: FormBody
}

export function tokensBody({ admin, ws, tokens, lastUsed, now, secret, form }: TokensView): SafeHtml {
  return html`${secret ?? ''}
    <table>
      <thead><tr><th>Token</th><th>Label</th><th>Permissions</th><th>Status</th><th>Created</th><th>Expires</th><th>Last used</th><th>Actions</th></tr></thead>
      <tbody>${tokens
        .slice()
        .reverse()
        .map((t) => tokenRow(admin, ws, t, lastUsed.get(t.id) ?? null, now))}</tbody>
    </table>
    ${tokens.length === 0 ? html`<p class="muted">No token yet.</p>` : ''}
    <p class="muted">Last used: the newest session, log batch or photo stored for the token (accepted uploads only).
      Rotate issues a new token with the same label and permissions; the old one keeps working for the grace period.</p>
    <h2>New token</h2>
    <form method="post" action="/workspaces/${seg(ws.id)}/tokens" class="row">
      ${csrfField(admin)}
      <label>Label <input name="label" placeholder="tablet 7" value="${one(form.label) ?? ''}"></label>
      <fieldset class="row"><legend class="muted">Permissions</legend>
        ${PERMISSIONS.map((p) => html`<label><input type="checkbox" name="permissions" value="${p}" checked> ${p}</label>`)}
      </fieldset>
      <label>Expires (optional, 00:00 UTC) <input type="date" name="expires" value="${one(form.expires) ?? ''}"></label>
      <button type="submit">Create token</button>
    </form>`
}
