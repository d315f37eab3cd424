// The confirmation pages of `session delete` and `workspace purge` (deletion/admin.ts): each
// names what will go, counted now, before anything is deleted. A purge also asks for the slug
// typed out, so that a purge is never one misplaced click.
import type { DeletionPreview } from '../../deletion/erase.ts'
import type { AdminIdentity } from '../security/auth.ts'
import { fmtBytes } from './format.ts'
import { html, seg, type SafeHtml } from './html.ts'
import { csrfField, type WorkspaceRef } from './layout.ts'

const LABELS: Record<string, string> = {
  test_sessions: 'session documents',
  test_session_logs: 'log entries',
  test_session_log_batches: 'log batches',
  test_session_media: 'photo records',
  test_session_conflicts: 'conflicting uploads',
}

function whatGoes(p: DeletionPreview): SafeHtml {
  return html`<ul>
    ${Object.entries(p.documents).map(([coll, n]) => html`<li>${n} ${LABELS[coll] ?? coll} <span class="muted mono">(${coll})</span></li>`)}
    <li>${p.objects} stored photo object(s), ${fmtBytes(p.bytes)}, and any staged upload not yet stored</li>
  </ul>`
}

export function sessionDeleteBody(admin: AdminIdentity, ws: WorkspaceRef, sid: string, p: DeletionPreview): SafeHtml {
  const base = `/workspaces/${seg(ws.id)}/sessions/${seg(sid)}`
  return html`<p><a href="${base}">« Session</a></p>
    <div class="card">
      <h2>Delete session <span class="mono">${sid}</span>?</h2>
      <p>This deletes, for good (no backup is kept by this server):</p>
      ${whatGoes(p)}
      <p>A tombstone (workspace, session id, time; no content) is kept: if the phone sends this session again it is answered 409 and nothing is stored. The deletion is written to the audit log. See the README, "Deletion".</p>
      <form method="post" action="${base}/delete" class="row">
        ${csrfField(admin)}
        <button type="submit" class="danger">Delete this session</button>
        <a href="${base}">Cancel</a>
      </form>
    </div>`
}

export function workspacePurgeBody(admin: AdminIdentity, ws: WorkspaceRef, p: DeletionPreview & { tokens: number }): SafeHtml {
  const settings = `/workspaces/${seg(ws.id)}/settings`
  return html`<p><a href="${settings}">« Settings</a></p>
    <div class="card">
      <h2>Purge workspace <span class="mono">${ws.slug}</span>?</h2>
      <p>This deletes every session of the workspace, for good (no backup is kept by this server):</p>
      ${whatGoes(p)}
      <p>The workspace is deactivated and its ${p.tokens} active token(s) are revoked: its phones are refused from now on. The purge is written to the audit log. See the README, "Deletion".</p>
      <form method="post" action="/workspaces/${seg(ws.id)}/purge" class="row">
        ${csrfField(admin)}
        <label>Type the slug, <span class="mono">${ws.slug}</span>, to confirm <input name="slug" required autocomplete="off"></label>
        <button type="submit" class="danger">Purge this workspace</button>
        <a href="${settings}">Cancel</a>
      </form>
    </div>`
}

/** On the settings page of an owner. */
export function purgeCard(ws: WorkspaceRef): SafeHtml {
  return html`<div class="card" id="purge">
    <h2>Purge</h2>
    <p>Delete every session, log and photo of this workspace, deactivate it and revoke its tokens. The next page says what will go and asks you to confirm.</p>
    <p><a href="/workspaces/${seg(ws.id)}/purge">Purge this workspace…</a></p>
  </div>`
}

/** On a session's page, for an owner. */
export function deleteSessionLink(ws: WorkspaceRef, sid: string): SafeHtml {
  return html`<p><a href="/workspaces/${seg(ws.id)}/sessions/${seg(sid)}/delete">Delete this session…</a></p>`
}

/** After a deletion: what went (the same figures as the CLI's). */
export function deletedBody(
  what: SafeHtml,
  counts: { removed: Record<string, number>; objects: number; bytes: number },
  back: string,
): SafeHtml {
  return html`<div class="card">
      <h2>${what}</h2>
      <ul>
        ${Object.entries(counts.removed).map(([coll, n]) => html`<li>${n} ${LABELS[coll] ?? coll} <span class="muted mono">(${coll})</span></li>`)}
        <li>${counts.objects} object(s), ${fmtBytes(counts.bytes)}</li>
      </ul>
      <p><a href="${back}">Continue</a></p>
    </div>`
}
