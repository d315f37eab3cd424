// Human-readable output. Machine-readable output is --json; nothing here is meant to be parsed.
import type { AdminListItem } from '../tokens/roles.ts'
import type { CreatedToken, TokenInfo } from '../tokens/tokens.ts'
import { describeDays, type RetentionSettings } from '../shared/retention.ts'
import type { WorkspaceListItem } from '../tokens/workspaces.ts'
import type { FailedJobInfo, RetryOutcome } from './jobs.ts'
import type { RevalidateCounts, RevalidateResult } from './sessions-revalidate.ts'

/** UTC, to the minute: short enough for a table, unambiguous across operators' time zones. */
export function shortDate(d: Date | string | null | undefined): string {
  if (d == null) return '-'
  const iso = (typeof d === 'string' ? new Date(d) : d).toISOString()
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z`
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(headers), ...rows.map(line)].join('\n') + '\n'
}

export function workspaceTable(list: readonly WorkspaceListItem[]): string {
  if (list.length === 0) return 'No workspaces.\n'
  return table(
    ['ID', 'SLUG', 'NAME', 'STATUS', 'TOKENS', 'CREATED', 'RETENTION'],
    list.map((w) => [
      w.id,
      w.slug,
      w.name,
      w.active ? 'active' : 'inactive',
      `${w.active_tokens}/${w.tokens}`,
      shortDate(w.created_at),
      retentionCell(w.retention),
    ]),
  )
}

export function adminTable(list: readonly AdminListItem[]): string {
  if (list.length === 0) return 'No admins.\n'
  return table(
    ['EMAIL', 'STATUS', 'SUPERADMIN', 'ROLES'],
    list.map((u) => [
      u.email,
      u.disabled ? 'disabled' : 'active',
      u.superadmin ? 'yes' : 'no',
      u.roles.map((r) => `${r.slug}:${r.role}`).join(',') || '-',
    ]),
  )
}

/** "keep", or e.g. "photos 30d, logs keep, sessions 365d". */
function retentionCell(r: RetentionSettings): string {
  if (r.photos === null && r.logs === null && r.sessions === null) return 'keep'
  const d = (n: number | null) => (n === null ? describeDays(null) : `${n}d`)
  return `photos ${d(r.photos)}, logs ${d(r.logs)}, sessions ${d(r.sessions)}`
}

export function tokenTable(list: readonly TokenInfo[]): string {
  if (list.length === 0) return 'No tokens.\n'
  return table(
    ['ID', 'WORKSPACE', 'LABEL', 'PERMISSIONS', 'CREATED', 'EXPIRES', 'STATUS'],
    list.map((t) => [
      t.id,
      (t.workspace ?? t.workspace_id) + (t.workspace_active ? '' : ' (inactive)'),
      t.label ?? '-',
      t.permissions.join(','),
      shortDate(t.created_at),
      t.expires_at ? shortDate(t.expires_at) : 'never',
      t.status,
    ]),
  )
}

export function createdTokenBlock(t: CreatedToken): string {
  return [
    `Token ${t.id} created for workspace "${t.workspace}".`,
    `  permissions: ${t.permissions.join(', ')}`,
    `  label:       ${t.label ?? '-'}`,
    `  expires:     ${t.expires_at ? t.expires_at : 'never'}`,
    '',
    'DSN (configure the device app with this URL):',
    '',
    `  ${t.dsn}`,
    '',
    'The DSN contains the secret token. It is shown ONLY ONCE and cannot be recovered:',
    'store it now. If it is lost, revoke this token and create a new one.',
    '',
  ].join('\n')
}

/** Reasons can be long (stack-free, but still): one line each, cut to keep the table readable. */
const oneLine = (s: string, max = 100) => {
  const flat = s.replace(/\s+/g, ' ').trim()
  return flat.length > max ? flat.slice(0, max - 1) + '…' : flat
}

export function failedJobsTable(res: { total: Partial<Record<string, number>>; jobs: readonly FailedJobInfo[] }): string {
  const totals = Object.entries(res.total)
    .map(([q, n]) => `${q} ${n}`)
    .join(', ')
  const all = Object.values(res.total).reduce<number>((a, n) => a + (n ?? 0), 0)
  if (res.jobs.length === 0) return `No failed jobs (${totals}).\n`
  const shown = res.jobs.length < all ? `; showing the newest ${res.jobs.length}` : ''
  return (
    table(
      ['QUEUE', 'JOB ID', 'ATTEMPTS', 'FAILED', 'REASON'],
      res.jobs.map((j) => [j.queue, j.id, String(j.attempts_made), shortDate(j.failed_at), oneLine(j.failed_reason)]),
    ) + `Failed jobs: ${totals}${shown}. Retry with: jobs retry <id> | jobs retry --all [--queue Q]\n`
  )
}

export function retryBlock(res: RetryOutcome): string {
  const lines = res.retried.map(
    (j) => `Retried ${j.queue} job ${j.id} (failed after ${j.attempts_made} attempt(s): ${oneLine(j.failed_reason, 80)}).`,
  )
  for (const s of res.skipped) lines.push(`Skipped ${s.queue} job ${s.id}: ${s.reason}`)
  if (lines.length === 0) lines.push('No failed jobs to retry.')
  return lines.join('\n') + '\n'
}

const reasons = (c: RevalidateCounts) =>
  Object.entries(c.skipped_by_reason)
    .map(([r, n]) => `${n} ${r.replace(/_/g, ' ')}`)
    .join(', ')

export function revalidateBlock(res: RevalidateResult): string {
  const scope = res.workspace ? `workspace "${res.workspace.slug}"` : 'all workspaces'
  return (
    `Sessions revalidated (${scope}): ${res.scanned} scanned, ${res.changed} changed, ${res.unchanged} unchanged, ${res.skipped} skipped` +
    (res.skipped > 0 ? ` (${reasons(res)}).\n` : '.\n')
  )
}

export function revalidateProgress(c: RevalidateCounts): string {
  return `… ${c.scanned} scanned, ${c.changed} changed so far, ${c.unchanged} unchanged, ${c.skipped} skipped\n`
}
