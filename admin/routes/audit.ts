// The audit log: who did what, when (admin panel, CLI, log-ins), newest first, paged by time.
import type { FastifyInstance } from 'fastify'
import type { Document, Filter } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { WORKSPACE_ID_PATTERN } from '../../tokens/rules.ts'
import { newestFirst } from '../data/paging.ts'
import { auditBody } from '../views/audit.ts'
import { page } from '../views/layout.ts'
import { beforeCursor, sendHtml, who, type Query } from './common.ts'

const PAGE = 100

export default async function auditRoutes(app: FastifyInstance) {
  app.get<{ Querystring: Query }>('/audit', async (request, reply) => {
    const q = request.query
    const filter: Filter<Document> = {}
    const ws = q.workspace && WORKSPACE_ID_PATTERN.test(q.workspace) ? q.workspace : null
    if (ws) filter['target.workspace_id'] = ws
    const before = beforeCursor(q)
    if (before) filter.at = { $lt: before }
    const { rows, more } = await newestFirst(app.db, COLLECTIONS.audit, filter, { field: 'at', size: PAGE })
    return sendHtml(reply, page({ title: 'Audit log', admin: who(request), top: 'audit', body: auditBody(rows, more, ws) }))
  })
}
