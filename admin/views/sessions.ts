// The sessions pages' HTML: the filtered list, one session's detail, the export form. The routes
// (admin/routes/sessions.ts) load the data; these only present it, escaped by html``.
import type { Document } from 'mongodb'
import { dayString, parseDay, RESULT_FILTERS, type listSessions, type parseFilters } from '../data/sessions.ts'
import { readingOf, validityOf, VALIDITY_LABELS } from '../data/readings.ts'
import { fmtBytes, fmtDate, prettyBody, prettyJson, str, stringMap } from './format.ts'
import { href, html, seg, type SafeHtml } from './html.ts'
import type { WorkspaceRef } from './layout.ts'
import type { Query } from '../routes/common.ts'

/** At most this many log entries on a session's page. */
export const LOG_LIMIT = 2000

function resultBadge(doc: Document): SafeHtml {
  const r = readingOf(doc)
  if (r.overall === 'positive') return html`<span class="badge bad">positive</span>`
  if (r.overall === 'negative') return html`<span class="badge good">negative</span>`
  return html`<span class="badge">no result</span>`
}

export function exportForm(ws: WorkspaceRef, q: Query): SafeHtml {
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

export interface SessionListView {
  ws: WorkspaceRef
  q: Query
  f: ReturnType<typeof parseFilters>
  states: string[]
  profiles: string[]
  res: Awaited<ReturnType<typeof listSessions>>
}

export function sessionListBody({ ws, q, f, states, profiles, res }: SessionListView): SafeHtml {
  const keep = {
    from: q.from,
    to: q.to,
    state: f.state,
    profile: f.profile,
    result: f.result,
    flagged: f.flagged ? '1' : '',
    missing: f.missingMedia ? '1' : '',
  }
  const base = `/workspaces/${seg(ws.id)}/sessions`
  return html`<form method="get" action="${base}" class="filters">
      <label>From <input type="date" name="from" value="${q.from ?? ''}"></label>
      <label>To <input type="date" name="to" value="${q.to ?? ''}"></label>
      <label>State <select name="state"><option value="">any</option>${states.map((s) => html`<option ${s === f.state ? 'selected' : ''}>${s}</option>`)}</select></label>
      <label>Test profile <select name="profile"><option value="">any</option>${profiles.map((p) => html`<option ${p === f.profile ? 'selected' : ''}>${p}</option>`)}</select></label>
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
}

export interface SessionDetailView {
  ws: WorkspaceRef
  sid: string
  doc: Document
  logs: Document[]
  media: Document[]
  conflicts: number
  missingMap: Map<string, string[]>
}

export function sessionDetailBody({ ws, sid, doc, logs, media, conflicts, missingMap }: SessionDetailView): SafeHtml {
  const cfg = (doc.configuration ?? {}) as Record<string, unknown>
  const res = (doc.result ?? {}) as Record<string, unknown>
  const reading = readingOf(doc)
  const images = stringMap(res.images)
  const mediaById = new Map(media.map((m) => [String(m.media_id), m]))
  const keys = [...new Set([...images.keys(), ...mediaById.keys()])]
  const validation = (doc.validation ?? { ok: false, errors: [] }) as { ok?: boolean; errors?: { path?: string; message?: string }[] }
  const base = `/workspaces/${seg(ws.id)}/sessions/${seg(sid)}`
  const field = (label: string, value: unknown) =>
    html`<dt>${label}</dt><dd>${value === null || value === undefined || value === '' ? html`<span class="muted">—</span>` : value}</dd>`
  const diagKeys = [...new Set([...reading.results.keys(), ...reading.classifier.keys()])]
  return html`<p><a href="/workspaces/${seg(ws.id)}/sessions">« Sessions</a></p>
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
        ${field(
          'Flags',
          [...stringMap(cfg.flags)].map(([k, v]) => html`<span class="badge">${k}=${v}</span> `),
        )}
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
        ${
          validation.ok === true
            ? html`<p><span class="badge good">valid</span> The body matches the session schema.</p>`
            : html`<p><span class="badge bad">flagged</span> Stored anyway; what is wrong:</p>
            <ul>${(validation.errors ?? []).map((e) => html`<li><code>${e.path || '(body)'}</code> ${e.message}</li>`)}</ul>`
        }
        ${Array.isArray(doc.storage_notes) ? html`<p class="muted">Storage notes: ${(doc.storage_notes as { path: string; rule: string }[]).map((n) => html`<code>${n.path}</code> ${n.rule}; `)}</p>` : ''}
        ${conflicts ? html`<p><span class="badge warn">${conflicts} conflicting resubmission(s)</span> <a href="/workspaces/${seg(ws.id)}/conflicts?session=${seg(sid)}">see them</a></p>` : ''}
      </div>
    </div>
    <h2>Images</h2>
    <div class="gallery">${keys.map((k) => {
      const m = mediaById.get(k)
      const caption = html`<figcaption><b>${k}</b>${m ? html` · ${fmtBytes(m.size)} · ${str(m.sniffed_type) ?? ''}` : ''}${images.has(k) ? html`<br><span class="mono">${images.get(k)}</span>` : ''}</figcaption>`
      if (!m)
        return html`<figure><div class="missing">${missingMap.get(sid)?.includes(k) ? 'not uploaded yet' : 'missing'}</div>${caption}</figure>`
      const src = `${base}/media/${seg(k)}`
      return html`<figure><a href="${src}"><img src="${src}" alt="${k}" loading="lazy"></a>${caption}</figure>`
    })}</div>
    ${keys.length === 0 ? html`<p class="muted">No image named or uploaded.</p>` : ''}
    <h2>Log timeline (${logs.length}${logs.length >= LOG_LIMIT ? '+' : ''})</h2>
    <ul class="timeline">${logs.map(
      (
        l,
      ) => html`<li><span class="mono">${fmtDate(l.timestamp)}</span> <span class="badge">${str(l.tag) ?? '—'}</span> ${str(l.message) ?? ''}
        ${typeof l.media_key === 'string' ? html` · media ${mediaById.has(l.media_key) ? html`<a href="${base}/media/${seg(l.media_key)}">${l.media_key}</a>` : html`<span class="mono">${l.media_key}</span> <span class="muted">(not uploaded)</span>`}` : ''}
        ${l.json !== null && l.json !== undefined ? html`<pre>${prettyJson(l.json)}</pre>` : ''}
        ${(l.validation as { ok?: boolean } | undefined)?.ok === false ? html` <span class="badge warn">flagged</span>` : ''}</li>`,
    )}</ul>
    ${logs.length === 0 ? html`<p class="muted">No log entries.</p>` : ''}
    ${doc.metrics ? html`<h2>Metrics</h2><pre>${prettyJson(doc.metrics)}</pre>` : ''}
    <h2>Raw body <small class="muted">(exactly as received, pretty-printed; sha256 ${str(doc.raw_sha256) ?? '—'})</small></h2>
    <pre id="raw-body">${prettyBody(doc.raw_body)}</pre>`
}
