// Tokens of a workspace: list (with last use), create, revoke, rotate. A new token's DSN is
// shown once, in the answer to the POST that created it (never stored, never in a URL), with a
// copy button and a QR code for provisioning phones.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { TokenAdminError } from '../../tokens/errors.ts'
import type { CreatedToken } from '../../tokens/tokens.ts'
import { tokenLastUsed } from '../data/activity.ts'
import { fmtDate } from '../views/format.ts'
import { seg, type SafeHtml } from '../views/html.ts'
import { page } from '../views/layout.ts'
import { GRACE_CHOICES, one, secretBox, tokensBody, type FormBody } from '../views/tokens.ts'
import { workspaceOf } from '../security/roles.ts'
import { actorOf, loadWorkspace, notice, sendHtml, UNCONFIRMED_PUSH, who, type Query } from './common.ts'

type TokenRequest = FastifyRequest<{ Params: { ws: string; tid: string }; Body: FormBody }>

export default async function tokenRoutes(app: FastifyInstance) {
  const owner = { config: { access: 'owner' as const } } // tokens are an owner's business, analysts never see them
  app.get('/workspaces/:ws/tokens', owner, async (request: FastifyRequest<{ Params: { ws: string }; Querystring: Query }>, reply) =>
    sendHtml(reply, await tokensPage(app, request, request.params.ws, { q: request.query })),
  )
  app.post('/workspaces/:ws/tokens', owner, (request: FastifyRequest<{ Params: { ws: string }; Body: FormBody }>, reply) =>
    createToken(app, request, reply),
  )
  app.post('/workspaces/:ws/tokens/:tid/revoke', owner, (request: TokenRequest, reply) => revokeToken(app, request, reply))
  app.post('/workspaces/:ws/tokens/:tid/rotate', owner, (request: TokenRequest, reply) => rotateToken(app, request, reply))
}

async function tokensPage(
  app: FastifyInstance,
  request: FastifyRequest,
  wsId: string,
  opts: { q?: Query; error?: string | null; secret?: SafeHtml; form?: FormBody } = {},
): Promise<string> {
  const admin = who(request)
  const ws = await loadWorkspace(app, wsId)
  const tokens = await app.tokenAdmin.listTokens({ workspace: ws.id })
  const lastUsed = await tokenLastUsed(
    app.db,
    ws.id,
    tokens.map((t) => t.id),
  )
  const body = tokensBody({ admin, ws, tokens, lastUsed, now: app.now(), secret: opts.secret, form: opts.form ?? {} })
  const shown = opts.q ? notice(opts.q) : null
  return page({ title: `${ws.slug} · tokens`, admin, workspace: ws, tab: 'tokens', body, notice: shown, error: opts.error })
}

async function createToken(app: FastifyInstance, request: FastifyRequest<{ Params: { ws: string }; Body: FormBody }>, reply: FastifyReply) {
  const ws = workspaceOf(request)
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
    return sendHtml(reply, await tokensPage(app, request, ws.id, { error: err.message, form: b }), 400)
  }
  const secret = await secretBox(created, 'New token created')
  return sendHtml(reply, await tokensPage(app, request, ws.id, { secret }))
}

async function revokeToken(app: FastifyInstance, request: TokenRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  await ownToken(app, ws.id, request.params.tid)
  const res = await app.tokenAdmin.revokeToken(request.params.tid, actorOf(request))
  if (!res.mirrored) return sendHtml(reply, await tokensPage(app, request, ws.id, { error: UNCONFIRMED_PUSH }), 503)
  return reply.redirect(`/workspaces/${seg(ws.id)}/tokens?done=revoked`, 303)
}

async function rotateToken(app: FastifyInstance, request: TokenRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  await ownToken(app, ws.id, request.params.tid)
  const grace = Number(one(request.body.grace) ?? 'x')
  if (!GRACE_CHOICES.some(([ms]) => ms === grace)) throw new TokenAdminError('bad_expiry', 'choose a grace period from the list')
  const res = await app.tokenAdmin.rotateToken(request.params.tid, grace, actorOf(request))
  const secret = await secretBox(res.created, `Token ${res.old_id} rotated: the old one works until ${fmtDate(res.old_expires_at)}`)
  // The new DSN is shown only once, so it is shown even when the old token's new expiry was not pushed.
  return sendHtml(reply, await tokensPage(app, request, ws.id, { secret, error: res.old_mirrored ? null : UNCONFIRMED_PUSH }))
}

/** A token is only ever changed through the workspace it belongs to. */
async function ownToken(app: FastifyInstance, wsId: string, tokenId: string): Promise<void> {
  const t =
    typeof tokenId === 'string'
      ? await app.db.collection(COLLECTIONS.tokens).findOne({ _id: tokenId as never, workspace_id: wsId }, { projection: { _id: 1 } })
      : null
  if (!t) throw new TokenAdminError('unknown_token', 'No such token in this workspace.')
}
