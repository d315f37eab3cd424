// The retention card of a workspace's settings page: how many days photos, logs and sessions are
// kept (empty = keep). Shortening a period deletes data at the next retention run, so the form
// asks for a confirmation that says so.
import { RETENTION_KINDS, type RetentionSettings } from '../../shared/retention.ts'
import type { AdminIdentity } from '../security/auth.ts'
import { html, seg, type SafeHtml } from './html.ts'
import { csrfField, type WorkspaceRef } from './layout.ts'

const LABELS: Record<keyof RetentionSettings, string> = { photos: 'Photos', logs: 'Logs', sessions: 'Sessions' }

export function retentionCard(admin: AdminIdentity, ws: WorkspaceRef, r: RetentionSettings): SafeHtml {
  return html`<div class="card" id="retention">
    <h2>Retention</h2>
    <form method="post" action="/workspaces/${seg(ws.id)}/retention" class="row"
      data-confirm="Save these retention periods for ${ws.slug}? Records older than a period are deleted for good at the next retention run (within the hour).">
      ${csrfField(admin)}
      ${RETENTION_KINDS.map(
        (k) =>
          html`<label>${LABELS[k]} (days) <input name="${k}" inputmode="numeric" pattern="[0-9]*" placeholder="keep" value="${r[k] === null ? '' : String(r[k])}"></label>`,
      )}
      <button type="submit">Save retention</button>
    </form>
    <p class="muted">Days after a record was received; empty = keep for ever. A session that expires takes its logs and photos with it, and nothing is kept longer than the sessions period. See the README, "Retention".</p>
  </div>`
}
