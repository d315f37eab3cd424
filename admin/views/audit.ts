// The audit log page's HTML.
import type { Document } from 'mongodb'
import { decodeKeys, fmtDate } from './format.ts'
import { href, html, type SafeHtml } from './html.ts'

function auditRow(r: Document): SafeHtml {
  const target = (decodeKeys(r.target ?? {}) ?? {}) as Record<string, unknown>
  return html`<tr><td>${fmtDate(r.at)}</td><td>${String(r.actor ?? '')}</td><td class="mono">${String(r.action ?? '')}</td>
    <td class="mono">${Object.entries(target).map(([k, v]) => html`${k}=${v instanceof Date ? v.toISOString() : typeof v === 'string' ? v : JSON.stringify(v)} `)}</td></tr>`
}

/** `workspace`: the workspace id the list is narrowed to, or null for all. */
export function auditBody(rows: Document[], more: boolean, workspace: string | null): SafeHtml {
  const last = rows[rows.length - 1]
  return html`<h1>Audit log${workspace ? html` <small>workspace ${workspace} · <a href="/audit">all</a></small>` : ''}</h1>
    <table id="audit"><thead><tr><th>When (UTC)</th><th>Who</th><th>What</th><th>Target</th></tr></thead>
    <tbody>${rows.map(auditRow)}</tbody></table>
    <div class="pager">${more && last?.at instanceof Date ? html`<a href="${href('/audit', { workspace, before: last.at.getTime() })}">Older »</a>` : ''}</div>`
}
