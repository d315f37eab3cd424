// The workspace dashboard, the missing-media report and the conflicts list.
import type { FastifyInstance } from 'fastify'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { buildDashboard } from '../data/dashboard.ts'
import { missingMediaReport } from '../data/missing-media.ts'
import { dayString } from '../data/sessions.ts'
import { columnChart, rateChart, splitBar } from '../views/charts.ts'
import { fmtAgo, fmtDate, prettyBody } from '../views/format.ts'
import { href, html, seg, type SafeHtml } from '../views/html.ts'
import { page } from '../views/layout.ts'
import { checkId, loadWorkspace, who, type Query } from './common.ts'

const RANGES = [7, 30, 90]
const pct = (a: number, b: number) => (b === 0 ? '—' : `${Math.round((a / b) * 1000) / 10}%`)

/** Marks the lines of `text` that do not occur in `other`, so a conflict's changes stand out. */
function markedLines(text: string, other: string): SafeHtml {
  const counts = new Map<string, number>()
  for (const l of other.split('\n')) counts.set(l, (counts.get(l) ?? 0) + 1)
  return html`${text.split('\n').map((l) => {
    const n = counts.get(l) ?? 0
    if (n > 0) {
      counts.set(l, n - 1)
      return html`${l}\n`
    }
    return html`<span class="diff">${l}</span>\n`
  })}`
}

export default async function reportRoutes(app: FastifyInstance) {
  app.get<{ Params: { ws: string }; Querystring: Query }>('/workspaces/:ws/dashboard', async (request, reply) => {
    const admin = who(request)
    const ws = await loadWorkspace(app, request.params.ws)
    const days = RANGES.includes(Number(request.query.days)) ? Number(request.query.days) : 30
    const now = app.now()
    const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) + 86400_000)
    const from = new Date(to.getTime() - days * 86400_000)
    const d = await buildDashboard(app.db, ws.id, { from, to, now })
    const v = d.validity
    const judged = v.too_early + v.on_time + v.too_late
    const compared = d.diagnoses.reduce((s, x) => s + x.compared, 0)
    const agreed = d.diagnoses.reduce((s, x) => s + x.agreed, 0)
    const body = html`<form method="get" class="row">
        <label>Range <select name="days">${RANGES.map((r) => html`<option value="${r}" ${r === days ? 'selected' : ''}>last ${r} days</option>`)}</select></label>
        <button type="submit" class="secondary">Show</button>
        <span class="muted">${dayString(from)} to ${dayString(new Date(to.getTime() - 1))} (UTC), by the day each session was received</span>
      </form>
      ${d.truncated ? html`<p class="error">More than ${d.sessions} sessions in this range: the figures cover the first ${d.sessions} only. Choose a shorter range.</p>` : ''}
      <div class="stats">
        <div class="stat"><b>${d.sessions}</b><span>readings</span></div>
        <div class="stat"><b>${d.flagged}</b><span>flagged (schema)</span></div>
        <div class="stat"><b>${pct(agreed, compared)}</b><span>user = classifier</span></div>
        <div class="stat"><b>${pct(v.on_time, judged)}</b><span>read on time</span></div>
        ${d.byState.map((s) => html`<div class="stat"><b>${s.n}</b><span>${s.state}</span></div>`)}
      </div>
      <div class="grid">
        <div class="card" id="fig-readings"><h2>Readings per day</h2>
          ${columnChart(
            d.days.map((x) => x.slice(5)),
            [
              { label: 'valid', cls: 'bar', values: d.perDay.total.map((t, i) => t - (d.perDay.flagged[i] ?? 0)) },
              { label: 'flagged', cls: 'bar2', values: d.perDay.flagged },
            ],
            { title: 'Readings per day' },
          )}
          <div class="legend"><span><i class="c1"></i>valid</span><span><i class="c2"></i>flagged by validation</span></div>
        </div>
        <div class="card" id="fig-positivity"><h2>Positivity per diagnosis</h2>
          ${
            d.diagnoses.length
              ? rateChart(
                  d.diagnoses.map((x) => ({
                    label: x.key,
                    fraction: x.positive + x.negative ? x.positive / (x.positive + x.negative) : 0,
                    text: `${pct(x.positive, x.positive + x.negative)} of ${x.positive + x.negative}${x.other ? ` (+${x.other} other)` : ''}`,
                    cls: 'bar2',
                  })),
                  { title: 'Positivity per diagnosis' },
                )
              : html`<p class="muted">No results in this range.</p>`
          }
          <p class="muted">Positive: a user result ending in <code>_pos</code> or equal to <code>positive</code>; rate = positive / (positive + negative).</p>
        </div>
        <div class="card" id="fig-agreement"><h2>User versus classifier</h2>
          ${
            d.diagnoses.some((x) => x.compared)
              ? rateChart(
                  d.diagnoses
                    .filter((x) => x.compared)
                    .map((x) => ({
                      label: x.key,
                      fraction: x.agreed / x.compared,
                      text: `${pct(x.agreed, x.compared)} agree of ${x.compared}`,
                      cls: 'bar3',
                    })),
                  { title: 'Agreement per diagnosis' },
                )
              : html`<p class="muted">No session with both user and classifier results in this range.</p>`
          }
        </div>
        <div class="card" id="fig-validity"><h2>Read timing</h2>
          ${splitBar(
            [
              { label: 'too early', value: v.too_early, cls: 'bar4' },
              { label: 'on time', value: v.on_time, cls: 'bar3' },
              { label: 'too late', value: v.too_late, cls: 'bar2' },
              { label: 'unknown', value: v.unknown, cls: 'bar5' },
            ],
            { title: 'Read timing' },
          )}
          <div class="legend"><span><i class="c4"></i>too early ${v.too_early}</span><span><i class="c3"></i>on time ${v.on_time}</span><span><i class="c2"></i>too late ${v.too_late}</span><span><i class="c5"></i>unknown ${v.unknown}</span></div>
          <p class="muted"><code>result.time_read</code> before <code>time_resolved</code>: too early; up to <code>time_expired</code>: on time; after: too late.</p>
        </div>
        <div class="card" id="fig-uploads"><h2>Ingest health: uploads per hour (last 48 h)</h2>
          ${columnChart(
            d.hours,
            [
              { label: 'sessions', cls: 'bar', values: d.perHour.sessions },
              { label: 'log batches', cls: 'bar4', values: d.perHour.logs },
              { label: 'photos', cls: 'bar3', values: d.perHour.media },
            ],
            { title: 'Uploads per hour', labelEvery: 12 },
          )}
          <div class="legend"><span><i class="c1"></i>sessions</span><span><i class="c4"></i>log batches</span><span><i class="c3"></i>photos</span></div>
          <p class="muted">Accepted uploads, by the hour the gateway received them (UTC). Refused requests are not recorded in MongoDB; the gateway counts them by reason in its <code>rdt_gateway_refusals_total</code> metric, for all workspaces together (README, Metrics).</p>
        </div>
      </div>`
    return reply
      .type('text/html; charset=utf-8')
      .send(page({ title: `${ws.slug} · dashboard`, admin, workspace: ws, tab: 'dashboard', body }))
  })

  app.get<{ Params: { ws: string }; Querystring: Query }>('/workspaces/:ws/missing-media', async (request, reply) => {
    const admin = who(request)
    const ws = await loadWorkspace(app, request.params.ws)
    const lookback = [7, 30, 90].includes(Number(request.query.days)) ? Number(request.query.days) : 30
    const delayMs = app.adminConfig.missingMediaDelayMs
    const r = await missingMediaReport(app.db, ws.id, { delayMs, lookbackDays: lookback, now: app.now() })
    const base = `/workspaces/${seg(ws.id)}/sessions`
    const tokenLabels = new Map((await app.tokenAdmin.listTokens({ workspace: ws.id })).map((t) => [t.id, t.label]))
    const body = html`<form method="get" class="row">
        <label>Sessions received in the <select name="days">${[7, 30, 90].map((x) => html`<option value="${x}" ${x === lookback ? 'selected' : ''}>last ${x} days</option>`)}</select></label>
        <button type="submit" class="secondary">Show</button>
      </form>
      <p class="muted">Sessions whose <code>result.images</code> name a photo that has not been stored, received more than ${Math.round(delayMs / 60_000)} minutes ago
        (<code>ADMIN_MISSING_MEDIA_DELAY_MS</code>), between ${fmtDate(r.since)} and ${fmtDate(r.cutoff)}. ${r.scanned} sessions checked${r.capped ? ' (limit reached: narrow the range)' : ''}.</p>
      <h2>By token (phone)</h2>
      <table><thead><tr><th>Token</th><th>Label</th><th class="num">Sessions with gaps</th><th class="num">Photos missing</th><th>Newest such session</th></tr></thead>
      <tbody>${r.byToken.map((t) => html`<tr><td class="mono">${t.token_id ?? '—'}</td><td>${(t.token_id && tokenLabels.get(t.token_id)) ?? '—'}</td><td class="num">${t.sessions}</td><td class="num">${t.images}</td><td>${fmtDate(t.newest)} (${fmtAgo(t.newest, app.now())})</td></tr>`)}</tbody></table>
      <h2>Sessions</h2>
      <table id="missing"><thead><tr><th>Received</th><th>Session</th><th>Token</th><th>Missing</th></tr></thead>
      <tbody>${r.rows.map((row) => html`<tr><td>${fmtDate(row.received_at)}</td><td class="mono"><a href="${base}/${seg(row.session_id)}">${row.session_id}</a></td><td class="mono">${row.token_id ?? '—'}</td><td>${row.missing.join(', ')} <span class="muted">(${row.missing.length} of ${row.expected})</span></td></tr>`)}</tbody></table>
      ${r.rows.length === 0 ? html`<p class="muted">Nothing missing.</p>` : ''}`
    return reply
      .type('text/html; charset=utf-8')
      .send(page({ title: `${ws.slug} · missing media`, admin, workspace: ws, tab: 'missing', body }))
  })

  app.get<{ Params: { ws: string }; Querystring: Query }>('/workspaces/:ws/conflicts', async (request, reply) => {
    const admin = who(request)
    const ws = await loadWorkspace(app, request.params.ws)
    const q = request.query
    const filter: Record<string, unknown> = { workspace_id: ws.id }
    if (q.session) filter.session_id = checkId(q.session, 'session')
    const before = q.before && /^\d{1,15}$/.test(q.before) ? new Date(Number(q.before)) : null
    if (before) filter.received_at = { $lt: before }
    const PAGE = 20
    const list = await app.db
      .collection(COLLECTIONS.conflicts)
      .find(filter)
      .sort({ received_at: -1 })
      .limit(PAGE + 1)
      .toArray()
    const more = list.length > PAGE
    const rows = list.slice(0, PAGE)
    const sessionIds = [...new Set(rows.filter((c) => !c.media_id).map((c) => String(c.session_id)))]
    const originals = new Map(
      (
        await app.db
          .collection(COLLECTIONS.sessions)
          .find(
            { workspace_id: ws.id, session_id: { $in: sessionIds } },
            { projection: { session_id: 1, raw_body: 1, received_at: 1, raw_sha256: 1 } },
          )
          .toArray()
      ).map((d) => [String(d.session_id), d]),
    )
    const base = `/workspaces/${seg(ws.id)}`
    const last = rows[rows.length - 1]
    const body = html`<p class="muted">Resubmissions that reused a session GUID (or a photo id) with different content. The device was answered 409; the new content is kept here, never dropped. Changed lines are highlighted.</p>
      ${rows.map((c) => {
        const sid = String(c.session_id)
        if (c.media_id) {
          return html`<div class="card"><h2>Photo <span class="mono">${c.media_id}</span> of <a class="mono" href="${base}/sessions/${seg(sid)}">${sid}</a></h2>
            <p>Received ${fmtDate(c.received_at)}: ${c.size ?? '?'} bytes, sha256 <code>${c.sha256}</code>; the stored photo has sha256 <code>${c.original_sha256 ?? '?'}</code>. The new bytes are kept under <code>conflicts/</code> in the bucket.</p></div>`
        }
        const orig = originals.get(sid)
        const a = prettyBody(orig?.raw_body)
        const b = prettyBody(c.raw_body)
        return html`<div class="card conflict"><h2>Session <a class="mono" href="${base}/sessions/${seg(sid)}">${sid}</a></h2>
          <div class="sidebyside">
            <div><b>Original</b> <span class="muted">received ${fmtDate(orig?.received_at)}, sha256 ${c.original_sha256 ?? '?'}</span><pre>${orig ? markedLines(a, b) : 'not stored'}</pre></div>
            <div><b>Resubmission</b> <span class="muted">received ${fmtDate(c.received_at)}, sha256 ${c.sha256}</span><pre>${markedLines(b, a)}</pre></div>
          </div></div>`
      })}
      ${rows.length === 0 ? html`<p class="muted">No conflict.</p>` : ''}
      <div class="pager">${more && last?.received_at instanceof Date ? html`<a href="${href(`${base}/conflicts`, { session: q.session, before: last.received_at.getTime() })}">Older »</a>` : ''}</div>`
    return reply
      .type('text/html; charset=utf-8')
      .send(page({ title: `${ws.slug} · conflicts`, admin, workspace: ws, tab: 'conflicts', body }))
  })
}
