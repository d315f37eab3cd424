// Tokens of a workspace: list (with last use), create, revoke, rotate. A new token's DSN is
// shown once, in the answer to the POST that created it (never stored, never in a URL), with a
// copy button and a QR code for provisioning phones.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import QRCode from 'qrcode'
import { PERMISSIONS } from '../../shared/permissions.ts'
import { TokenAdminError } from '../../tokens/errors.ts'
import type { CreatedToken } from '../../tokens/tokens.ts'
import { tokenLastUsed } from '../data/activity.ts'
import { fmtAgo, fmtDate } from '../views/format.ts'
import { html, seg, type SafeHtml } from '../views/html.ts'
import { csrfField, page } from '../views/layout.ts'
import { actorOf, loadWorkspace, notice, UNCONFIRMED_PUSH, who, type Query } from './common.ts'

type Body = Record<string, string | string[] | undefined>

export const GRACE_CHOICES: [number, string][] = [
  [0, 'none (stops now)'],
  [3600_000, '1 hour'],
  [86400_000, '1 day'],
  [7 * 86400_000, '7 days'],
  [30 * 86400_000, '30 days'],
]

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

async function secretBox(created: CreatedToken, heading: string): Promise<SafeHtml> {
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

export default async function tokenRoutes(app: FastifyInstance) {
  const tokensPage = async (
    request: FastifyRequest,
    wsId: string,
    opts: { q?: Query; error?: string | null; secret?: SafeHtml; form?: Body } = {},
  ) => {
    const admin = who(request)
    const ws = await loadWorkspace(app, wsId)
    const tokens = await app.tokenAdmin.listTokens({ workspace: ws.id })
    const lastUsed = await tokenLastUsed(
      app.db,
      ws.id,
      tokens.map((t) => t.id),
    )
    const now = app.now()
    const form = opts.form ?? {}
    const body = html`${opts.secret ?? ''}
      <table>
        <thead><tr><th>Token</th><th>Label</th><th>Permissions</th><th>Status</th><th>Created</th><th>Expires</th><th>Last used</th><th>Actions</th></tr></thead>
        <tbody>${tokens
          .slice()
          .reverse()
          .map((t) => {
            const used = lastUsed.get(t.id) ?? null
            return html`<tr data-token="${t.id}">
              <td class="mono">${t.id}</td>
              <td>${t.label ?? html`<span class="muted">—</span>`}</td>
              <td>${t.permissions.join(', ')}</td>
              <td>${t.status === 'active' ? html`<span class="badge good">active</span>` : html`<span class="badge bad">${t.status}</span>`}</td>
              <td>${fmtDate(t.created_at)}</td>
              <td>${t.expires_at ? fmtDate(t.expires_at) : html`<span class="muted">never</span>`}</td>
              <td title="${fmtDate(used)}">${used ? fmtAgo(used, now) : 'never'}</td>
              <td>${
                t.status === 'active'
                  ? html`<form method="post" action="/workspaces/${seg(ws.id)}/tokens/${seg(t.id)}/revoke" class="inline" data-confirm="Revoke ${t.id}? Devices using it will be refused at once.">
                    ${csrfField(admin)}<button class="danger" type="submit">Revoke</button>
                  </form>
                  <form method="post" action="/workspaces/${seg(ws.id)}/tokens/${seg(t.id)}/rotate" class="inline">
                    ${csrfField(admin)}
                    <select name="grace" aria-label="Grace period for the old token">${GRACE_CHOICES.map(([ms, label]) => html`<option value="${ms}" ${ms === 86400_000 ? 'selected' : ''}>old works ${label}</option>`)}</select>
                    <button class="secondary" type="submit">Rotate</button>
                  </form>`
                  : ''
              }</td>
            </tr>`
          })}</tbody>
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
    return page({
      title: `${ws.slug} · tokens`,
      admin,
      workspace: ws,
      tab: 'tokens',
      body,
      notice: opts.q ? notice(opts.q) : null,
      error: opts.error,
    })
  }

  app.get<{ Params: { ws: string }; Querystring: Query }>('/workspaces/:ws/tokens', async (request, reply) =>
    reply.type('text/html; charset=utf-8').send(await tokensPage(request, request.params.ws, { q: request.query })),
  )

  app.post<{ Params: { ws: string }; Body: Body }>('/workspaces/:ws/tokens', async (request, reply) => {
    const ws = await loadWorkspace(app, request.params.ws)
    const b = request.body
    const perms = b.permissions === undefined ? [] : [b.permissions].flat()
    let created: CreatedToken
    try {
      created = await app.tokenAdmin.createToken({
        workspace: ws.id,
        permissions: perms,
        label: one(b.label) || null,
        expiresAt: one(b.expires) || null,
        actor: actorOf(request),
      })
    } catch (err) {
      if (!(err instanceof TokenAdminError)) throw err
      return reply
        .code(400)
        .type('text/html; charset=utf-8')
        .send(await tokensPage(request, ws.id, { error: err.message, form: b }))
    }
    const secret = await secretBox(created, 'New token created')
    return reply.type('text/html; charset=utf-8').send(await tokensPage(request, ws.id, { secret }))
  })

  app.post<{ Params: { ws: string; tid: string } }>('/workspaces/:ws/tokens/:tid/revoke', async (request, reply) => {
    const ws = await loadWorkspace(app, request.params.ws)
    await ownToken(app, ws.id, request.params.tid)
    const res = await app.tokenAdmin.revokeToken(request.params.tid, actorOf(request))
    if (!res.mirrored)
      return reply
        .code(503)
        .type('text/html; charset=utf-8')
        .send(await tokensPage(request, ws.id, { error: UNCONFIRMED_PUSH }))
    return reply.redirect(`/workspaces/${seg(ws.id)}/tokens?done=revoked`, 303)
  })

  app.post<{ Params: { ws: string; tid: string }; Body: Body }>('/workspaces/:ws/tokens/:tid/rotate', async (request, reply) => {
    const ws = await loadWorkspace(app, request.params.ws)
    await ownToken(app, ws.id, request.params.tid)
    const grace = Number(one(request.body.grace) ?? 'x')
    if (!GRACE_CHOICES.some(([ms]) => ms === grace)) throw new TokenAdminError('bad_expiry', 'choose a grace period from the list')
    const res = await app.tokenAdmin.rotateToken(request.params.tid, grace, actorOf(request))
    const secret = await secretBox(res.created, `Token ${res.old_id} rotated: the old one works until ${fmtDate(res.old_expires_at)}`)
    // The new DSN is shown only once, so it is shown even when the old token's new expiry was not pushed.
    return reply
      .type('text/html; charset=utf-8')
      .send(await tokensPage(request, ws.id, { secret, error: res.old_mirrored ? null : UNCONFIRMED_PUSH }))
  })
}

/** A token is only ever changed through the workspace it belongs to. */
async function ownToken(app: FastifyInstance, wsId: string, tokenId: string): Promise<void> {
  const t =
    typeof tokenId === 'string'
      ? await app.db.collection('tokens').findOne({ _id: tokenId as never, workspace_id: wsId }, { projection: { _id: 1 } })
      : null
  if (!t) throw new TokenAdminError('unknown_token', 'No such token in this workspace.')
}
