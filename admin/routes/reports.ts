// The workspace dashboard, the missing-media report and the conflicts list.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { listConflicts } from '../data/conflicts.ts'
import { buildDashboard } from '../data/dashboard.ts'
import { missingMediaReport } from '../data/missing-media.ts'
import { DASHBOARD_RANGES, dashboardBody } from '../views/dashboard.ts'
import { page } from '../views/layout.ts'
import { conflictsBody, LOOKBACK_CHOICES, missingMediaBody } from '../views/reports.ts'
import { workspaceOf } from '../security/roles.ts'
import { beforeCursor, checkId, sendHtml, who, type Query } from './common.ts'

type WorkspaceRequest = FastifyRequest<{ Params: { ws: string }; Querystring: Query }>

/** One of `choices` from the `days` query, else 30. */
const daysOf = (q: Query, choices: number[]): number => (choices.includes(Number(q.days)) ? Number(q.days) : 30)

export default async function reportRoutes(app: FastifyInstance) {
  const analyst = { config: { access: 'analyst' as const } }
  app.get('/workspaces/:ws/dashboard', analyst, (request: WorkspaceRequest, reply) => dashboard(app, request, reply))
  app.get('/workspaces/:ws/missing-media', analyst, (request: WorkspaceRequest, reply) => missingMedia(app, request, reply))
  app.get('/workspaces/:ws/conflicts', analyst, (request: WorkspaceRequest, reply) => conflicts(app, request, reply))
}

async function dashboard(app: FastifyInstance, request: WorkspaceRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  const days = daysOf(request.query, DASHBOARD_RANGES)
  const now = app.now()
  const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) + 86400_000)
  const from = new Date(to.getTime() - days * 86400_000)
  const d = await buildDashboard(app.db, ws.id, { from, to, now })
  const body = dashboardBody(d, days)
  return sendHtml(reply, page({ title: `${ws.slug} · dashboard`, admin: who(request), workspace: ws, tab: 'dashboard', body }))
}

async function missingMedia(app: FastifyInstance, request: WorkspaceRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  const lookback = daysOf(request.query, LOOKBACK_CHOICES)
  const delayMs = app.adminConfig.missingMediaDelayMs
  const r = await missingMediaReport(app.db, ws.id, { delayMs, lookbackDays: lookback, now: app.now() })
  const tokenLabels = new Map((await app.tokenAdmin.listTokens({ workspace: ws.id })).map((t) => [t.id, t.label]))
  const body = missingMediaBody(ws, r, { lookback, delayMs, tokenLabels, now: app.now() })
  return sendHtml(reply, page({ title: `${ws.slug} · missing media`, admin: who(request), workspace: ws, tab: 'missing', body }))
}

async function conflicts(app: FastifyInstance, request: WorkspaceRequest, reply: FastifyReply) {
  const ws = workspaceOf(request)
  const q = request.query
  const sessionId = q.session ? checkId(q.session, 'session') : undefined
  const p = await listConflicts(app.db, ws.id, { sessionId, before: beforeCursor(q) })
  const body = conflictsBody(ws, p, q.session)
  return sendHtml(reply, page({ title: `${ws.slug} · conflicts`, admin: who(request), workspace: ws, tab: 'conflicts', body }))
}
