// One table row per scenario. Each scenario file writes its rows as JSON into the directory the
// runner (faults/run.ts) names in FAULTS_RESULTS_DIR; the runner prints the whole table at the
// end and writes it to faults/last-run.md. Each row is also printed as a TAP comment at once.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Figures } from './verify.ts'

export interface Row {
  scenario: string
  sent: number
  ok201: number
  ok409: number
  answers503: number
  stored: number
  lost: number
  duplicated: number
  connErrors: number
  gaveUp: number
  notes: string
  /** For ordering the table: file name and position in it. */
  order: string
}

let position = 0

export function rowOf(scenario: string, f: Figures, notes: string[] = []): Row {
  const extra = [...notes]
  if (Object.keys(f.otherStatuses).length) extra.push(`other statuses: ${JSON.stringify(f.otherStatuses)}`)
  if (f.queues.failed) extra.push(`${f.queues.failed} failed jobs`)
  if (f.queues.pending || f.queues.active) extra.push(`queues not idle: ${f.queues.pending} pending, ${f.queues.active} active`)
  if (f.unsettledLeft) extra.push(`${f.unsettledLeft} unsettled uploads left`)
  if (f.unsettledPhantoms)
    extra.push(`${f.unsettledPhantoms} upload keys listed that S3 says do not exist (a DELETE cut by the node's death)`)
  return {
    scenario,
    sent: f.sent,
    ok201: f.ok201,
    ok409: f.ok409,
    answers503: f.answers503,
    stored: f.stored,
    lost: f.lost,
    duplicated: f.duplicated,
    connErrors: f.connErrors,
    gaveUp: f.gaveUp,
    notes: extra.join('; '),
    order: `${process.argv[1] ?? ''}#${String(++position).padStart(3, '0')}`,
  }
}

interface Comments {
  comment(...args: unknown[]): void
}

/** Prints the row as a TAP comment and hands it to the runner. */
export function report(t: Comments, row: Row): void {
  t.comment(`${HEADER}\n${formatRow(row)}`)
  const dir = process.env.FAULTS_RESULTS_DIR
  if (!dir) return
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${row.order.replace(/[^A-Za-z0-9#._-]+/g, '_')}.json`)
  writeFileSync(file, JSON.stringify(row))
}

export const HEADER = [
  '| scenario | sent | 201 | 409 | 503 | stored | lost | duplicated | conn. errors | gave up | notes |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
].join('\n')

export function formatRow(r: Row): string {
  const cells = [
    r.scenario,
    r.sent,
    r.ok201,
    r.ok409,
    r.answers503,
    r.stored,
    r.lost,
    r.duplicated,
    r.connErrors,
    r.gaveUp,
    r.notes.replaceAll('|', '/'),
  ]
  return `| ${cells.join(' | ')} |`
}

export function readRows(dir: string): Row[] {
  let names: string[]
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'))
  } catch {
    return []
  }
  return names
    .map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as Row)
    .sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0))
}
