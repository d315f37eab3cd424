// Sessions of a workspace: the filtered list, the detail page, photos (streamed from the private
// bucket after the log-in check and a workspace/session/media lookup) and the exports.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { objectKeys } from '../../shared/keys.ts'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { SESSION_STATES } from '../../shared/session-schema.ts'
import { filterChoices, listSessions, missingImages, parseDay, parseFilters } from '../data/sessions.ts'
import { exportStream, type ExportFormat } from '../data/export.ts'
import { contentDisposition, openMedia } from '../data/media.ts'
import { str } from '../views/format.ts'
import { page } from '../views/layout.ts'
import { exportForm, LOG_LIMIT, sessionDetailBody, sessionListBody } from '../views/sessions.ts'
import { hasWorkspaceRole, workspaceOf } from '../security/roles.ts'
import { html } from '../views/html.ts'
import { deleteSessionLink } from '../views/deletion.ts'
import { actorOf, checkId, NotFound, sendHtml, who, type Query } from './common.ts'

type SessionRequest = FastifyRequest<{ Params: { ws: string; sid: string; mid: string }; Querystring: Query }>

export default async function sessionRoutes(app: FastifyInstance) {
  const analyst = { config: { access: 'analyst' as const } }
  app.get('/workspaces/:ws/sessions', analyst, (request: SessionRequest, reply) => sessionList(app, request, reply))
  app.get('/workspaces/:ws/sessions/:sid', analyst, (request: SessionRequest, reply) => sessionDetail(app, request, reply))
  app.get('/workspaces/:ws/sessions/:sid/media/:mid', analyst, (request: SessionRequest, reply) => sessionMedia(app, request, reply))
  app.get('/workspaces/:ws/export', analyst, (request: SessionRequest, reply) => exportSessions(app, request, reply))
}

async function sessionList(app: FastifyInstance, request: SessionRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  const q = request.query
  const f = parseFilters(q)
  const [res, choices] = await Promise.all([listSessions(app.db, ws.id, f, q.after), filterChoices(app.db, ws.id)])
  const states = [...new Set([...SESSION_STATES, ...choices.states])]
  const body = sessionListBody({ ws, q, f, states, profiles: choices.profiles, res })
  return sendHtml(reply, page({ title: `${ws.slug} · sessions`, admin: who(request), workspace: ws, tab: 'sessions', body }))
}

async function sessionDetail(app: FastifyInstance, request: SessionRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  const sid = checkId(request.params.sid, 'session')
  const doc = await app.db.collection(COLLECTIONS.sessions).findOne({ workspace_id: ws.id, session_id: sid })
  if (!doc) throw new NotFound('No such session in this workspace.')
  const of = { workspace_id: ws.id, session_id: sid }
  const [logs, media, conflicts, missingMap] = await Promise.all([
    app.db.collection(COLLECTIONS.logs).find(of).sort({ timestamp: 1, batch_index: 1 }).limit(LOG_LIMIT).toArray(),
    app.db.collection(COLLECTIONS.media).find(of).sort({ media_id: 1 }).toArray(),
    app.db.collection(COLLECTIONS.conflicts).countDocuments(of),
    missingImages(app.db, ws.id, [doc]),
  ])
  const detail = sessionDetailBody({ ws, sid, doc, logs, media, conflicts, missingMap })
  // Deleting is an owner's (admin/routes/deletion.ts); an analyst does not see the way to it.
  const body = hasWorkspaceRole(who(request), ws.id, 'owner') ? html`${detail}${deleteSessionLink(ws, sid)}` : detail
  return sendHtml(reply, page({ title: `${ws.slug} · session ${sid}`, admin: who(request), workspace: ws, tab: 'sessions', body }))
}

async function sessionMedia(app: FastifyInstance, request: SessionRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  const sid = checkId(request.params.sid, 'session')
  const mid = checkId(request.params.mid, 'image')
  const m = await app.db.collection(COLLECTIONS.media).findOne({ workspace_id: ws.id, session_id: sid, media_id: mid })
  if (!m) throw new NotFound('No such image.')
  // The document names the canonical upload (or, for a photo stored before uploads stayed where
  // they were written, its final key). Only a key that belongs to these validated ids is opened,
  // in the configured bucket: a document can never point the panel at another photo's object.
  const key = typeof m.key === 'string' ? m.key : objectKeys.final(ws.id, sid, mid)
  if (!objectKeys.isPhotoOf(key, ws.id, sid, mid)) throw new NotFound('No such image.')
  const media = await openMedia(app.s3, app.config.s3.bucket, key, str(m.filename) ?? `${mid}`)
  reply.header('content-type', media.type)
  reply.header('content-disposition', media.disposition)
  reply.header('x-content-type-options', 'nosniff')
  reply.header('cache-control', 'private, no-store')
  if (media.length !== null) reply.header('content-length', String(media.length))
  return reply.send(media.body)
}

async function exportSessions(app: FastifyInstance, request: SessionRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  const q = request.query
  const from = parseDay(q.from)
  const toDay = parseDay(q.to)
  const format: ExportFormat | null = q.format === 'csv' || q.format === 'ndjson' ? q.format : null
  if (!from || !toDay || !format || toDay < from) {
    const error = 'Choose a valid date range (from ≤ to) and a format.'
    return sendHtml(
      reply,
      page({ title: 'Export', admin: who(request), workspace: ws, tab: 'sessions', error, body: exportForm(ws, q) }),
      400,
    )
  }
  const to = new Date(toDay.getTime() + 86400_000)
  await app.db.collection(COLLECTIONS.audit).insertOne({
    at: app.now(),
    actor: actorOf(request),
    action: 'sessions.export',
    target: { workspace_id: ws.id, slug: ws.slug, from: q.from, to: q.to, format },
  })
  const name = `${ws.slug}-sessions-${q.from}-to-${q.to}.${format}`
  reply.header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
  reply.header('content-disposition', contentDisposition('attachment', name))
  return reply.send(exportStream(app.db, ws.id, from, to, format))
}
