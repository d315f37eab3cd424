// The webhooks page's HTML: a workspace's endpoints (never their secrets) with remove and test
// buttons, the add form, and the dead letters (deliveries that failed for good) with a retry button.
import { WEBHOOK_EVENTS } from '../../shared/mongo.ts'
import type { DeadLetter } from '../../webhooks/dead-letters.ts'
import type { WebhookInfo } from '../../webhooks/endpoints.ts'
import type { AdminIdentity } from '../security/auth.ts'
import { fmtDate } from './format.ts'
import { html, seg, type SafeHtml } from './html.ts'
import { csrfField, type WorkspaceRef } from './layout.ts'

export type WebhookForm = Record<string, string | string[] | undefined>

export interface WebhooksView {
  admin: AdminIdentity
  ws: WorkspaceRef
  hooks: WebhookInfo[]
  dead: { total: number; jobs: DeadLetter[] }
  /** The refused form's fields (never the secret), to fill it again. */
  form: WebhookForm
  /** A test's result, shown above the list. */
  result?: SafeHtml
}

function hookRow(admin: AdminIdentity, ws: WorkspaceRef, w: WebhookInfo): SafeHtml {
  const base = `/workspaces/${seg(ws.id)}/webhooks/${seg(w.id)}`
  return html`<tr data-webhook="${w.id}">
    <td class="mono">${w.id}</td>
    <td class="mono">${w.url}</td>
    <td>${w.events.join(', ')}</td>
    <td>${fmtDate(w.created_at)}</td>
    <td>
      <form method="post" action="${base}/test" class="inline">${csrfField(admin)}<button class="secondary" type="submit">Send test</button></form>
      <form method="post" action="${base}/remove" class="inline" data-confirm="Remove the endpoint ${w.url}? Deliveries still queued for it will not be sent.">
        ${csrfField(admin)}<button class="danger" type="submit">Remove</button>
      </form>
    </td>
  </tr>`
}

function deadRow(admin: AdminIdentity, ws: WorkspaceRef, d: DeadLetter, urls: Map<string, string>): SafeHtml {
  return html`<tr data-delivery="${d.id}">
    <td class="mono">${d.id}</td>
    <td>${d.event}</td>
    <td class="mono">${d.session_id ?? ''}</td>
    <td class="mono">${urls.get(d.endpoint_id) ?? html`<span class="muted">removed endpoint</span>`}</td>
    <td>${d.attempts_made}</td>
    <td>${fmtDate(d.failed_at)}</td>
    <td>${d.failed_reason}</td>
    <td>
      <form method="post" action="/workspaces/${seg(ws.id)}/webhooks/dead-letters/${seg(d.id)}/retry" class="inline">
        ${csrfField(admin)}<button class="secondary" type="submit">Retry</button>
      </form>
    </td>
  </tr>`
}

export function webhooksBody({ admin, ws, hooks, dead, form, result }: WebhooksView): SafeHtml {
  const urls = new Map(hooks.map((h) => [h.id, h.url]))
  const checked = (e: string) => (form.events === undefined ? true : [form.events].flat().includes(e))
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)
  return html`${result ?? ''}
    <p class="muted">Each stored session, log batch and photo record is sent as a signed JSON POST to the endpoints that
      subscribe to its event, retried for about 3 days (README "Forwarding").</p>
    <table>
      <thead><tr><th>Endpoint</th><th>URL</th><th>Events</th><th>Added</th><th>Actions</th></tr></thead>
      <tbody>${hooks.map((w) => hookRow(admin, ws, w))}</tbody>
    </table>
    ${hooks.length === 0 ? html`<p class="muted">No endpoint yet.</p>` : ''}
    <h2>New endpoint</h2>
    <form method="post" action="/workspaces/${seg(ws.id)}/webhooks" class="row">
      ${csrfField(admin)}
      <label>URL <input name="url" type="url" required placeholder="https://example.org/rdt-hook" value="${one(form.url) ?? ''}"></label>
      <label>Signing secret <input name="secret" type="password" required minlength="16" autocomplete="off"></label>
      <fieldset class="row"><legend class="muted">Events</legend>
        ${WEBHOOK_EVENTS.map((e) => html`<label><input type="checkbox" name="events" value="${e}" ${checked(e) ? 'checked' : ''}> ${e}</label>`)}
      </fieldset>
      <button type="submit">Add endpoint</button>
    </form>
    <h2>Failed deliveries</h2>
    <p class="muted">Deliveries whose retries ran out (or whose address is refused). Retry sends one again with a new
      3-day schedule, under the same X-RDT-Delivery id.</p>
    <table>
      <thead><tr><th>Delivery</th><th>Event</th><th>Session</th><th>Endpoint</th><th>Attempts</th><th>Failed</th><th>Reason</th><th></th></tr></thead>
      <tbody>${dead.jobs.map((d) => deadRow(admin, ws, d, urls))}</tbody>
    </table>
    ${dead.jobs.length === 0 ? html`<p class="muted">No failed deliveries.</p>` : ''}`
}

export function testResultBox(r: {
  delivered: boolean
  status: number | null
  ms: number | null
  reason: string | null
  delivery_id: string
}): SafeHtml {
  return r.delivered
    ? html`<p class="notice" id="test-result">Test delivered: the endpoint answered ${r.status} in ${r.ms} ms (X-RDT-Delivery <span class="mono">${r.delivery_id}</span>).</p>`
    : html`<p class="error" role="alert" id="test-result">Test not delivered: ${r.reason}</p>`
}
