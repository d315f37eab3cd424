// Workspaces: the list with activity counts, create, rename, deactivate and reactivate. Every
// change goes through the tokens module (tokens/), which writes the audit log and re-publishes
// the token mirror (a deactivated workspace's tokens are refused by every gateway within a second).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { TokenAdminError } from '../../tokens/errors.ts'
import { workspaceActivity } from '../data/activity.ts'
import { html, seg } from '../views/html.ts'
import { purgeCard } from '../views/deletion.ts'
import { page } from '../views/layout.ts'
import { retentionCard } from '../views/retention.ts'
import { settingsBody, workspaceListBody } from '../views/workspaces.ts'
import { workspaceFilter, workspaceOf } from '../security/roles.ts'
import { actorOf, loadWorkspace, notice, sendHtml, UNCONFIRMED_PUSH, who, type Query } from './common.ts'

type Body = Record<string, string | undefined>
type WorkspaceRequest = FastifyRequest<{ Params: { ws: string }; Querystring: Query; Body: Body }>

export default async function workspaceRoutes(app: FastifyInstance) {
  const any = { config: { access: 'any' as const } }
  // Creating, renaming and (de)activating workspaces is a superadmin's job; an owner sees the settings.
  const superadmin = { config: { access: 'superadmin' as const } }
  app.get('/', any, async (_request, reply) => reply.redirect('/workspaces', 303))
  app.get('/workspaces', any, async (request: FastifyRequest<{ Querystring: Query }>, reply) =>
    sendHtml(reply, await listPage(app, request, request.query)),
  )
  app.post('/workspaces', superadmin, (request: FastifyRequest<{ Body: Body }>, reply) => createWorkspace(app, request, reply))
  app.get('/workspaces/:ws', { config: { access: 'analyst' } }, async (request: WorkspaceRequest, reply) =>
    reply.redirect(`/workspaces/${seg(workspaceOf(request).id)}/dashboard`, 303),
  )
  app.get('/workspaces/:ws/settings', { config: { access: 'owner' } }, async (request: WorkspaceRequest, reply) =>
    sendHtml(reply, await settingsPage(app, request, request.params.ws, request.query)),
  )
  app.post('/workspaces/:ws/rename', superadmin, (request: WorkspaceRequest, reply) => renameWorkspace(app, request, reply))
  for (const action of ['activate', 'deactivate'] as const) {
    app.post(`/workspaces/:ws/${action}`, superadmin, (request: WorkspaceRequest, reply) => setActive(app, request, reply, action))
  }
}

async function listPage(app: FastifyInstance, request: FastifyRequest, q: Query, error: string | null = null, form: Body = {}) {
  const admin = who(request)
  const only = workspaceFilter(admin)
  const list = (await app.tokenAdmin.listWorkspaces()).filter((w) => only === null || only.includes(w.id))
  const activity = await workspaceActivity(
    app.db,
    list.map((w) => w.id),
    app.now(),
  )
  const body = workspaceListBody(admin, list, activity, app.now(), form)
  return page({ title: 'Workspaces', admin, top: 'workspaces', body, notice: notice(q), error })
}

export async function settingsPage(app: FastifyInstance, request: FastifyRequest, wsId: string, q: Query, error: string | null = null) {
  const admin = who(request)
  const ws = await loadWorkspace(app, wsId)
  const { retention } = await app.tokenAdmin.getWorkspace(ws.id)
  return page({
    title: `${ws.slug} · settings`,
    admin,
    workspace: ws,
    tab: 'settings',
    body: settingsBody(admin, ws, html`${retentionCard(admin, ws, retention)}${purgeCard(ws)}`),
    notice: notice(q),
    error,
  })
}

async function createWorkspace(app: FastifyInstance, request: FastifyRequest<{ Body: Body }>, reply: FastifyReply) {
  const b = request.body
  try {
    const ws = await app.tokenAdmin.createWorkspace(b.slug ?? '', { name: b.name || null, actor: actorOf(request) })
    return reply.redirect(`/workspaces/${seg(ws.id)}/tokens?done=created`, 303)
  } catch (err) {
    if (!(err instanceof TokenAdminError)) throw err
    return sendHtml(reply, await listPage(app, request, {}, err.message, b), 400)
  }
}

async function renameWorkspace(app: FastifyInstance, request: WorkspaceRequest, reply: FastifyReply) {
  const ws = await loadWorkspace(app, request.params.ws)
  try {
    await app.tokenAdmin.renameWorkspace(ws.id, { name: request.body.name, slug: request.body.slug }, actorOf(request))
  } catch (err) {
    if (!(err instanceof TokenAdminError)) throw err
    return sendHtml(reply, await settingsPage(app, request, ws.id, {}, err.message), 400)
  }
  return reply.redirect(`/workspaces/${seg(ws.id)}/settings?done=renamed`, 303)
}

async function setActive(app: FastifyInstance, request: WorkspaceRequest, reply: FastifyReply, action: 'activate' | 'deactivate') {
  const ws = await loadWorkspace(app, request.params.ws)
  const res = await app.tokenAdmin.setWorkspaceActive(ws.id, action === 'activate', actorOf(request))
  if (res.tokens_republished === null) return sendHtml(reply, await settingsPage(app, request, ws.id, {}, UNCONFIRMED_PUSH), 503)
  return reply.redirect(`/workspaces/${seg(ws.id)}/settings?done=${action}d`, 303)
}
