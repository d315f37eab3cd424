// The missing-media report's and the conflicts list's HTML. The routes (admin/routes/reports.ts)
// load the data (admin/data/missing-media.ts, admin/data/conflicts.ts).
import type { Document } from 'mongodb'
import type { ConflictsPage } from '../data/conflicts.ts'
import type { MissingReport } from '../data/missing-media.ts'
import { fmtAgo, fmtDate, prettyBody } from './format.ts'
import { href, html, seg, type SafeHtml } from './html.ts'
import type { WorkspaceRef } from './layout.ts'

export const LOOKBACK_CHOICES = [7, 30, 90]

export function missingMediaBody(
  ws: WorkspaceRef,
  r: MissingReport,
  opts: { lookback: number; delayMs: number; tokenLabels: Map<string, string | null>; now: Date },
): SafeHtml {
  const base = `/workspaces/${seg(ws.id)}/sessions`
  return html`<form method="get" class="row">
      <label>Sessions received in the <select name="days">${LOOKBACK_CHOICES.map((x) => html`<option value="${x}" ${x === opts.lookback ? 'selected' : ''}>last ${x} days</option>`)}</select></label>
      <button type="submit" class="secondary">Show</button>
    </form>
    <p class="muted">Sessions whose <code>result.images</code> name a photo that has not been stored, received more than ${Math.round(opts.delayMs / 60_000)} minutes ago
      (<code>ADMIN_MISSING_MEDIA_DELAY_MS</code>), between ${fmtDate(r.since)} and ${fmtDate(r.cutoff)}. ${r.scanned} sessions checked${r.capped ? ' (limit reached: narrow the range)' : ''}.</p>
    <h2>By token (phone)</h2>
    <table><thead><tr><th>Token</th><th>Label</th><th class="num">Sessions with gaps</th><th class="num">Photos missing</th><th>Newest such session</th></tr></thead>
    <tbody>${r.byToken.map((t) => html`<tr><td class="mono">${t.token_id ?? '—'}</td><td>${(t.token_id && opts.tokenLabels.get(t.token_id)) ?? '—'}</td><td class="num">${t.sessions}</td><td class="num">${t.images}</td><td>${fmtDate(t.newest)} (${fmtAgo(t.newest, opts.now)})</td></tr>`)}</tbody></table>
    <h2>Sessions</h2>
    <table id="missing"><thead><tr><th>Received</th><th>Session</th><th>Token</th><th>Missing</th></tr></thead>
    <tbody>${r.rows.map((row) => html`<tr><td>${fmtDate(row.received_at)}</td><td class="mono"><a href="${base}/${seg(row.session_id)}">${row.session_id}</a></td><td class="mono">${row.token_id ?? '—'}</td><td>${row.missing.join(', ')} <span class="muted">(${row.missing.length} of ${row.expected})</span></td></tr>`)}</tbody></table>
    ${r.rows.length === 0 ? html`<p class="muted">Nothing missing.</p>` : ''}`
}

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

function conflictCard(c: Document, base: string, originals: Map<string, Document>): SafeHtml {
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
}

export function conflictsBody(ws: WorkspaceRef, p: ConflictsPage, session: string | undefined): SafeHtml {
  const base = `/workspaces/${seg(ws.id)}`
  const last = p.rows[p.rows.length - 1]
  return html`<p class="muted">Resubmissions that reused a session GUID (or a photo id) with different content. The device was answered 409; the new content is kept here, never dropped. Changed lines are highlighted.</p>
    ${p.rows.map((c) => conflictCard(c, base, p.originals))}
    ${p.rows.length === 0 ? html`<p class="muted">No conflict.</p>` : ''}
    <div class="pager">${p.more && last?.received_at instanceof Date ? html`<a href="${href(`${base}/conflicts`, { session, before: last.received_at.getTime() })}">Older »</a>` : ''}</div>`
}
