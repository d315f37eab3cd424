// The audit log: who did what, when (admin panel, CLI, log-ins), newest first, paged by time.
import type { FastifyInstance } from 'fastify'
import type { Document, Filter } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { WORKSPACE_ID_PATTERN } from '../../tokens/rules.ts'
import { decodeKeys, fmtDate } from '../views/format.ts'
import { href, html } from '../views/html.ts'
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
    const list = await app.db
      .collection(COLLECTIONS.audit)
      .find(filter)
      .sort({ at: -1 })
      .limit(PAGE + 1)
      .toArray()
    const rows = list.slice(0, PAGE)
    const last = rows[rows.length - 1]
    const body = html`<h1>Audit log${ws ? html` <small>workspace ${ws} · <a href="/audit">all</a></small>` : ''}</h1>
      <table id="audit"><thead><tr><th>When (UTC)</th><th>Who</th><th>What</th><th>Target</th></tr></thead>
      <tbody>${rows.map((r) => {
        const target = (decodeKeys(r.target ?? {}) ?? {}) as Record<string, unknown>
        return html`<tr><td>${fmtDate(r.at)}</td><td>${String(r.actor ?? '')}</td><td class="mono">${String(r.action ?? '')}</td>
          <td class="mono">${Object.entries(target).map(([k, v]) => html`${k}=${v instanceof Date ? v.toISOString() : typeof v === 'string' ? v : JSON.stringify(v)} `)}</td></tr>`
      })}</tbody></table>
      <div class="pager">${list.length > PAGE && last?.at instanceof Date ? html`<a href="${href('/audit', { workspace: ws, before: last.at.getTime() })}">Older »</a>` : ''}</div>`
    return sendHtml(reply, page({ title: 'Audit log', admin: who(request), top: 'audit', body }))
  })
}
