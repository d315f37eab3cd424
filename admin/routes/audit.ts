// The audit log: who did what, when (admin panel, CLI, log-ins), newest first, paged by time.
// A superadmin sees every entry; anyone else only the entries about workspaces they have a role
// in (log-ins, admin accounts and CLI-wide actions name no workspace, so only superadmins see them).
import type { FastifyInstance } from 'fastify'
import type { Document, Filter } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { WORKSPACE_ID_PATTERN } from '../../tokens/rules.ts'
import { newestFirst } from '../data/paging.ts'
import { auditBody } from '../views/audit.ts'
import { page } from '../views/layout.ts'
import { workspaceFilter } from '../security/roles.ts'
import { beforeCursor, NotFound, sendHtml, who, type Query } from './common.ts'

const PAGE = 100

export default async function auditRoutes(app: FastifyInstance) {
  app.get<{ Querystring: Query }>('/audit', { config: { access: 'any' } }, async (request, reply) => {
    const q = request.query
    const filter: Filter<Document> = {}
    const ws = q.workspace && WORKSPACE_ID_PATTERN.test(q.workspace) ? q.workspace : null
    const only = workspaceFilter(who(request))
    // Another team's workspace answers like one that does not exist (admin/security/roles.ts).
    if (ws && only && !only.includes(ws)) throw new NotFound('No such workspace.')
    if (ws) filter['target.workspace_id'] = ws
    else if (only) filter['target.workspace_id'] = { $in: only }
    const before = beforeCursor(q)
    if (before) filter.at = { $lt: before }
    const { rows, more } = await newestFirst(app.db, COLLECTIONS.audit, filter, { field: 'at', size: PAGE })
    return sendHtml(reply, page({ title: 'Audit log', admin: who(request), top: 'audit', body: auditBody(rows, more, ws) }))
  })
}
