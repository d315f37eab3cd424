// Sessions of a workspace: the filtered list, the detail page, photos (streamed from the private
// bucket after the log-in check and a workspace/session/media lookup) and the exports.
import type { FastifyInstance } from 'fastify'
import type { Document } from 'mongodb'
import { objectKeys } from '../../shared/keys.ts'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { SESSION_STATES } from '../../shared/session-schema.ts'
import { dayString, filterChoices, listSessions, missingImages, parseDay, parseFilters, RESULT_FILTERS } from '../data/sessions.ts'
import { exportStream, type ExportFormat } from '../data/export.ts'
import { contentDisposition, openMedia } from '../data/media.ts'
import { readingOf, validityOf, VALIDITY_LABELS } from '../data/readings.ts'
import { fmtBytes, fmtDate, prettyBody, prettyJson, str, stringMap } from '../views/format.ts'
import { href, html, seg, type SafeHtml } from '../views/html.ts'
import { page, type WorkspaceRef } from '../views/layout.ts'
import { actorOf, checkId, loadWorkspace, NotFound, who, type Query } from './common.ts'

const LOG_LIMIT = 2000

function resultBadge(doc: Document): SafeHtml {
  const r = readingOf(doc)
  if (r.overall === 'positive') return html`<span class="badge bad">positive</span>`
  if (r.overall === 'negative') return html`<span class="badge good">negative</span>`
  return html`<span class="badge">no result</span>`
}

function exportForm(ws: WorkspaceRef, q: Query): SafeHtml {
  const today = new Date()
  const from = parseDay(q.from) ? q.from! : dayString(new Date(today.getTime() - 30 * 86400_000))
  const to = parseDay(q.to) ? q.to! : dayString(today)
  return html`<form method="get" action="/workspaces/${seg(ws.id)}/export" class="row">
    <label>From <input type="date" name="from" value="${from}" required></label>
    <label>To (inclusive) <input type="date" name="to" value="${to}" required></label>
    <label>Format <select name="format"><option value="csv">CSV</option><option value="ndjson">NDJSON</option></select></label>
    <button type="submit" class="secondary">Export</button>
  </form>`
}

export default async function sessionRoutes(app: FastifyInstance) {
  app.get<{ Params: { ws: string }; Querystring: Query }>('/workspaces/:ws/sessions', async (request, reply) => {
    const admin = who(request)
    const ws = await loadWorkspace(app, request.params.ws)
    const q = request.query
    const f = parseFilters(q)
    const [res, choices] = await Promise.all([listSessions(app.db, ws.id, f, q.after), filterChoices(app.db, ws.id)])
    const states = [...new Set([...SESSION_STATES, ...choices.states])]
    const keep = { from: q.from, to: q.to, state: f.state, profile: f.profile, result: f.result, flagged: f.flagged ? '1' : '', missing: f.missingMedia ? '1' : '' }
    const base = `/workspaces/${seg(ws.id)}/sessions`
    const body = html`<form method="get" action="${base}" class="filters">
        <label>From <input type="date" name="from" value="${q.from ?? ''}"></label>
        <label>To <input type="date" name="to" value="${q.to ?? ''}"></label>
        <label>State <select name="state"><option value="">any</option>${states.map((s) => html`<option ${s === f.state ? 'selected' : ''}>${s}</option>`)}</select></label>
        <label>Test profile <select name="profile"><option value="">any</option>${choices.profiles.map((p) => html`<option ${p === f.profile ? 'selected' : ''}>${p}</option>`)}</select></label>
        <label>Result <select name="result">${RESULT_FILTERS.map((r) => html`<option value="${r}" ${r === f.result ? 'selected' : ''}>${r === '' ? 'any' : r === 'disagree' ? 'user ≠ classifier' : r === 'none' ? 'no result' : r}</option>`)}</select></label>
        <label><span>Flagged</span><input type="checkbox" name="flagged" value="1" ${f.flagged ? 'checked' : ''}></label>
        <label><span>Missing media</span><input type="checkbox" name="missing" value="1" ${f.missingMedia ? 'checked' : ''}></label>
        <button type="submit">Filter</button>
        <a href="${base}">Clear</a>
      </form>
      <table id="sessions">
        <thead><tr><th>Received (UTC)</th><th>Session</th><th>State</th><th>Test profile</th><th>Result</th><th>Read</th><th>Checks</th></tr></thead>
        <tbody>${res.rows.map((d) => {
          const flagged = (d.validation as { ok?: unknown } | undefined)?.ok !== true
          const miss = res.missing.get(d.session_id as string)
          return html`<tr class="${flagged ? 'flagged' : ''}">
            <td>${fmtDate(d.received_at)}</td>
            <td class="mono"><a href="${base}/${seg(String(d.session_id))}">${d.session_id}</a></td>
            <td>${str(d.state) ?? '—'}</td>
            <td>${str(d.test_profile_id) ?? '—'}</td>
            <td>${resultBadge(d)}</td>
            <td>${VALIDITY_LABELS[validityOf(d)]}</td>
            <td>${flagged ? html`<span class="badge bad">flagged</span> ` : ''}${miss ? html`<span class="badge warn">missing ${miss.join(', ')}</span>` : ''}</td>
          </tr>`
        })}</tbody>
      </table>
      ${res.rows.length === 0 ? html`<p class="muted">No session matches.</p>` : ''}
      <div class="pager">
        ${q.after ? html`<a href="${href(base, keep)}">« Newest</a>` : ''}
        ${res.next ? html`<a href="${href(base, { ...keep, after: res.next })}">${res.capped ? `Continue (scanned ${res.scanned} sessions) »` : 'Older »'}</a>` : ''}
      </div>
      <h2>Export</h2>
      ${exportForm(ws, q)}
      <p class="muted">Sessions received in the range (UTC days), oldest first. The columns are listed in the README.</p>`
    return reply.type('text/html; charset=utf-8').send(page({ title: `${ws.slug} · sessions`, admin, workspace: ws, tab: 'sessions', body }))
  })

  app.get<{ Params: { ws: string; sid: string } }>('/workspaces/:ws/sessions/:sid', async (request, reply) => {
    const admin = who(request)
    const ws = await loadWorkspace(app, request.params.ws)
    const sid = checkId(request.params.sid, 'session')
    const doc = await app.db.collection(COLLECTIONS.sessions).findOne({ workspace_id: ws.id, session_id: sid })
    if (!doc) throw new NotFound('No such session in this workspace.')
    const [logs, media, conflicts, missingMap] = await Promise.all([
      app.db.collection(COLLECTIONS.logs).find({ workspace_id: ws.id, session_id: sid }).sort({ timestamp: 1, batch_index: 1 }).limit(LOG_LIMIT).toArray(),
      app.db.collection(COLLECTIONS.media).find({ workspace_id: ws.id, session_id: sid }).sort({ media_id: 1 }).toArray(),
      app.db.collection(COLLECTIONS.conflicts).countDocuments({ workspace_id: ws.id, session_id: sid }),
      missingImages(app.db, ws.id, [doc]),
    ])
    const cfg = (doc.configuration ?? {}) as Record<string, unknown>
    const res = (doc.result ?? {}) as Record<string, unknown>
    const reading = readingOf(doc)
    const images = stringMap(res.images)
    const mediaById = new Map(media.map((m) => [String(m.media_id), m]))
    const keys = [...new Set([...images.keys(), ...mediaById.keys()])]
    const validation = (doc.validation ?? { ok: false, errors: [] }) as { ok?: boolean; errors?: { path?: string; message?: string }[] }
    const base = `/workspaces/${seg(ws.id)}/sessions/${seg(sid)}`
    const field = (label: string, value: unknown) => html`<dt>${label}</dt><dd>${value === null || value === undefined || value === '' ? html`<span class="muted">—</span>` : value}</dd>`
    const diagKeys = [...new Set([...reading.results.keys(), ...reading.classifier.keys()])]
    const body = html`<p><a href="/workspaces/${seg(ws.id)}/sessions">« Sessions</a></p>
      <h2 class="mono">Session ${sid}</h2>
      <div class="grid">
        <div class="card"><dl class="fields">
          ${field('Received', fmtDate(doc.received_at))}
          ${field('Token', doc.token_id)}
          ${field('State', str(doc.state))}
          ${field('Test profile', str(doc.test_profile_id))}
          ${field('Session type', str(cfg.session_type))}
          ${field('Provision mode', str(cfg.provision_mode))}
          ${field('Classifier mode', str(cfg.classifier_mode))}
          ${field('Cloudworks context', str(cfg.cloudworks_context))}
          ${field('Started', fmtDate(doc.time_started))}
          ${field('Resolved', fmtDate(doc.time_resolved))}
          ${field('Expires', fmtDate(doc.time_expired))}
          ${field('Read', fmtDate(res.time_read))}
          ${field('Read timing', VALIDITY_LABELS[validityOf(doc)])}
          ${field('Flags', [...stringMap(cfg.flags)].map(([k, v]) => html`<span class="badge">${k}=${v}</span> `))}
        </dl></div>
        <div class="card">
          <h2>Results</h2>
          <table><thead><tr><th>Diagnosis</th><th>User</th><th>Classifier</th><th></th></tr></thead>
          <tbody>${diagKeys.map((k) => {
            const u = reading.results.get(k)
            const c = reading.classifier.get(k)
            return html`<tr><td>${k}</td><td>${u ?? '—'}</td><td>${c ?? '—'}</td><td>${u !== undefined && c !== undefined ? (u === c ? html`<span class="badge good">agree</span>` : html`<span class="badge bad">disagree</span>`) : ''}</td></tr>`
          })}</tbody></table>
          <h2>Validation</h2>
          ${validation.ok === true
            ? html`<p><span class="badge good">valid</span> The body matches the session schema.</p>`
            : html`<p><span class="badge bad">flagged</span> Stored anyway; what is wrong:</p>
              <ul>${(validation.errors ?? []).map((e) => html`<li><code>${e.path || '(body)'}</code> ${e.message}</li>`)}</ul>`}
          ${Array.isArray(doc.storage_notes) ? html`<p class="muted">Storage notes: ${(doc.storage_notes as { path: string; rule: string }[]).map((n) => html`<code>${n.path}</code> ${n.rule}; `)}</p>` : ''}
          ${conflicts ? html`<p><span class="badge warn">${conflicts} conflicting resubmission(s)</span> <a href="/workspaces/${seg(ws.id)}/conflicts?session=${seg(sid)}">see them</a></p>` : ''}
        </div>
      </div>
      <h2>Images</h2>
      <div class="gallery">${keys.map((k) => {
        const m = mediaById.get(k)
        const caption = html`<figcaption><b>${k}</b>${m ? html` · ${fmtBytes(m.size)} · ${str(m.sniffed_type) ?? ''}` : ''}${images.has(k) ? html`<br><span class="mono">${images.get(k)}</span>` : ''}</figcaption>`
        if (!m) return html`<figure><div class="missing">${missingMap.get(sid)?.includes(k) ? 'not uploaded yet' : 'missing'}</div>${caption}</figure>`
        const src = `${base}/media/${seg(k)}`
        return html`<figure><a href="${src}"><img src="${src}" alt="${k}" loading="lazy"></a>${caption}</figure>`
      })}</div>
      ${keys.length === 0 ? html`<p class="muted">No image named or uploaded.</p>` : ''}
      <h2>Log timeline (${logs.length}${logs.length >= LOG_LIMIT ? '+' : ''})</h2>
      <ul class="timeline">${logs.map(
        (l) => html`<li><span class="mono">${fmtDate(l.timestamp)}</span> <span class="badge">${str(l.tag) ?? '—'}</span> ${str(l.message) ?? ''}
          ${typeof l.media_key === 'string' ? html` · media ${mediaById.has(l.media_key) ? html`<a href="${base}/media/${seg(l.media_key)}">${l.media_key}</a>` : html`<span class="mono">${l.media_key}</span> <span class="muted">(not uploaded)</span>`}` : ''}
          ${l.json !== null && l.json !== undefined ? html`<pre>${prettyJson(l.json)}</pre>` : ''}
          ${(l.validation as { ok?: boolean } | undefined)?.ok === false ? html` <span class="badge warn">flagged</span>` : ''}</li>`,
      )}</ul>
      ${logs.length === 0 ? html`<p class="muted">No log entries.</p>` : ''}
      ${doc.metrics ? html`<h2>Metrics</h2><pre>${prettyJson(doc.metrics)}</pre>` : ''}
      <h2>Raw body <small class="muted">(exactly as received, pretty-printed; sha256 ${str(doc.raw_sha256) ?? '—'})</small></h2>
      <pre id="raw-body">${prettyBody(doc.raw_body)}</pre>`
    return reply.type('text/html; charset=utf-8').send(page({ title: `${ws.slug} · session ${sid}`, admin, workspace: ws, tab: 'sessions', body }))
  })

  app.get<{ Params: { ws: string; sid: string; mid: string } }>('/workspaces/:ws/sessions/:sid/media/:mid', async (request, reply) => {
    const ws = await loadWorkspace(app, request.params.ws)
    const sid = checkId(request.params.sid, 'session')
    const mid = checkId(request.params.mid, 'image')
    const m = await app.db.collection(COLLECTIONS.media).findOne({ workspace_id: ws.id, session_id: sid, media_id: mid })
    if (!m) throw new NotFound('No such image.')
    // The key is rebuilt from validated ids, never read from the document.
    const media = await openMedia(app.s3, app.config.s3.bucket, objectKeys.final(ws.id, sid, mid), str(m.filename) ?? `${mid}`)
    reply.header('content-type', media.type)
    reply.header('content-disposition', media.disposition)
    reply.header('x-content-type-options', 'nosniff')
    reply.header('cache-control', 'private, no-store')
    if (media.length !== null) reply.header('content-length', String(media.length))
    return reply.send(media.body)
  })

  app.get<{ Params: { ws: string }; Querystring: Query }>('/workspaces/:ws/export', async (request, reply) => {
    const ws = await loadWorkspace(app, request.params.ws)
    const q = request.query
    const from = parseDay(q.from)
    const toDay = parseDay(q.to)
    const format: ExportFormat | null = q.format === 'csv' || q.format === 'ndjson' ? q.format : null
    if (!from || !toDay || !format || toDay < from) {
      return reply.code(400).type('text/html; charset=utf-8').send(
        page({ title: 'Export', admin: who(request), workspace: ws, tab: 'sessions', error: 'Choose a valid date range (from ≤ to) and a format.', body: exportForm(ws, q) }),
      )
    }
    const to = new Date(toDay.getTime() + 86400_000)
    await app.db.collection('audit_log').insertOne({ at: app.now(), actor: actorOf(request), action: 'sessions.export', target: { workspace_id: ws.id, slug: ws.slug, from: q.from, to: q.to, format } })
    const name = `${ws.slug}-sessions-${q.from}-to-${q.to}.${format}`
    reply.header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
    reply.header('content-disposition', contentDisposition('attachment', name))
    return reply.send(exportStream(app.db, ws.id, from, to, format))
  })
}
