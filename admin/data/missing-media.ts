// The missing-media report: sessions whose `result.images` name keys for which no photo has
// been stored, although the session arrived more than ADMIN_MISSING_MEDIA_DELAY_MS ago. Grouped
// per token too, since one stuck phone shows up as one token with many gaps.
import type { Db, Document } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { missingImages } from './sessions.ts'

export const REPORT_SCAN_CAP = 20_000
export const REPORT_MAX_ROWS = 500

export interface MissingRow {
  session_id: string
  token_id: string | null
  received_at: Date
  missing: string[]
  expected: number
}

export interface MissingReport {
  rows: MissingRow[]
  byToken: { token_id: string | null; sessions: number; images: number; newest: Date }[]
  scanned: number
  capped: boolean
  cutoff: Date
  since: Date
}

export async function missingMediaReport(
  db: Db,
  workspaceId: string,
  opts: { delayMs: number; lookbackDays: number; now?: Date },
): Promise<MissingReport> {
  const now = opts.now ?? new Date()
  const cutoff = new Date(now.getTime() - opts.delayMs)
  const since = new Date(now.getTime() - opts.lookbackDays * 86400_000)
  const cursor = db
    .collection(COLLECTIONS.sessions)
    .find(
      { workspace_id: workspaceId, received_at: { $gte: since, $lte: cutoff }, 'result.images': { $type: 'object' } },
      { projection: { _id: 0, session_id: 1, token_id: 1, received_at: 1, 'result.images': 1 } },
    )
    .sort({ received_at: -1 })
    .limit(REPORT_SCAN_CAP)
    .batchSize(500)
  const rows: MissingRow[] = []
  const byToken = new Map<string | null, { token_id: string | null; sessions: number; images: number; newest: Date }>()
  let scanned = 0
  let batch: Document[] = []
  const flush = async () => {
    const miss = await missingImages(db, workspaceId, batch)
    for (const d of batch) {
      const m = miss.get(d.session_id as string)
      if (!m) continue
      const token = typeof d.token_id === 'string' ? d.token_id : null
      const row: MissingRow = {
        session_id: d.session_id as string,
        token_id: token,
        received_at: d.received_at as Date,
        missing: m,
        expected: Object.keys((d.result as { images: object }).images).length,
      }
      if (rows.length < REPORT_MAX_ROWS) rows.push(row)
      const t = byToken.get(token) ?? { token_id: token, sessions: 0, images: 0, newest: row.received_at }
      t.sessions++
      t.images += m.length
      if (row.received_at > t.newest) t.newest = row.received_at
      byToken.set(token, t)
    }
    batch = []
  }
  for await (const d of cursor) {
    scanned++
    batch.push(d)
    if (batch.length >= 500) await flush()
  }
  if (batch.length) await flush()
  return {
    rows,
    byToken: [...byToken.values()].sort((a, b) => b.sessions - a.sessions),
    scanned,
    capped: scanned >= REPORT_SCAN_CAP,
    cutoff,
    since,
  }
}
