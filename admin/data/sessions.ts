// The session list: filters, and range-based paging on (received_at, _id) descending.
//
// Date range, state, test profile and "flagged" are MongoDB filters (the {workspace_id,
// received_at} index serves the range). "Result" and "missing media" depend on keys inside
// client maps, which FerretDB v1 cannot query ($objectToArray and $expr are missing), so they are
// applied to the scanned documents in the process: the scan reads at most SCAN_CAP documents per
// page and, when it stops early, the page offers "continue" from where it stopped.
import { ObjectId, type Db, type Document, type Filter } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { imageKeysOf, readingOf } from './readings.ts'

export const PAGE_SIZE = 50
export const SCAN_CAP = 5000
const BATCH = 200

export type ResultFilter = '' | 'positive' | 'negative' | 'none' | 'disagree'
export const RESULT_FILTERS: ResultFilter[] = ['', 'positive', 'negative', 'none', 'disagree']

export interface SessionFilters {
  from: Date | null
  /** Exclusive. */
  to: Date | null
  state: string
  profile: string
  result: ResultFilter
  flagged: boolean
  missingMedia: boolean
}

/** `YYYY-MM-DD` (UTC day); null when absent or malformed. */
export function parseDay(s: unknown): Date | null {
  if (typeof s !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(s)) return null
  const d = new Date(`${s}T00:00:00.000Z`)
  return Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== s ? null : d
}

export const dayString = (d: Date): string => d.toISOString().slice(0, 10)

export function parseFilters(q: Record<string, unknown>): SessionFilters {
  const to = parseDay(q.to)
  const text = (v: unknown) => (typeof v === 'string' ? v.trim().slice(0, 200) : '')
  const result = text(q.result) as ResultFilter
  return {
    from: parseDay(q.from),
    to: to ? new Date(to.getTime() + 86400_000) : null, // the "to" day is included
    state: text(q.state),
    profile: text(q.profile),
    result: RESULT_FILTERS.includes(result) ? result : '',
    flagged: q.flagged === '1' || q.flagged === 'on',
    missingMedia: q.missing === '1' || q.missing === 'on',
  }
}

export function baseFilter(
  workspaceId: string,
  f: Pick<SessionFilters, 'from' | 'to' | 'state' | 'profile' | 'flagged'>,
): Filter<Document> {
  const filter: Filter<Document> = { workspace_id: workspaceId }
  if (f.from || f.to) filter.received_at = { ...(f.from ? { $gte: f.from } : {}), ...(f.to ? { $lt: f.to } : {}) }
  if (f.state) filter.state = f.state
  if (f.profile) filter.test_profile_id = f.profile
  if (f.flagged) filter['validation.ok'] = { $ne: true }
  return filter
}

/** Paging cursor: `<received_at ms>.<_id hex>`. */
export function encodeCursor(doc: Document): string {
  return `${(doc.received_at as Date).getTime()}.${String(doc._id)}`
}

function decodeCursor(s: unknown): { at: Date; id: ObjectId | string } | null {
  if (typeof s !== 'string') return null
  const m = /^(\d{1,15})\.([0-9a-zA-Z_-]{1,64})$/.exec(s)
  if (!m) return null
  return { at: new Date(Number(m[1])), id: /^[0-9a-f]{24}$/.test(m[2]!) ? new ObjectId(m[2]!) : m[2]! }
}

const LIST_PROJECTION = {
  raw_body: 0,
  metrics: 0,
  extra: 0,
  'configuration.extra': 0,
  'result.extra': 0,
} as const

/** Which `result.images` keys have no test_session_media document, for a batch of sessions. */
export async function missingImages(db: Db, workspaceId: string, docs: Document[]): Promise<Map<string, string[]>> {
  const want = docs.filter((d) => imageKeysOf(d).length > 0)
  const out = new Map<string, string[]>()
  if (want.length === 0) return out
  const have = new Set<string>()
  const cursor = db
    .collection(COLLECTIONS.media)
    .find(
      { workspace_id: workspaceId, session_id: { $in: want.map((d) => d.session_id as string) } },
      { projection: { _id: 0, session_id: 1, media_id: 1 } },
    )
  for await (const m of cursor) have.add(`${m.session_id}/${m.media_id}`)
  for (const d of want) {
    const missing = imageKeysOf(d).filter((k) => !have.has(`${d.session_id}/${k}`))
    if (missing.length) out.set(d.session_id as string, missing)
  }
  return out
}

export function matchesResult(doc: Document, want: ResultFilter): boolean {
  if (!want) return true
  const r = readingOf(doc)
  if (want === 'positive') return r.overall === 'positive'
  if (want === 'negative') return r.overall === 'negative'
  if (want === 'none') return r.overall === null
  return r.compared > r.agreed // disagree
}

export interface SessionPage {
  rows: Document[]
  missing: Map<string, string[]>
  /** Cursor for the next page, or null at the end. */
  next: string | null
  /** True when the scan cap stopped the page before it was full. */
  capped: boolean
  scanned: number
}

export async function listSessions(
  db: Db,
  workspaceId: string,
  f: SessionFilters,
  after: unknown,
  pageSize = PAGE_SIZE,
): Promise<SessionPage> {
  const filter = baseFilter(workspaceId, f)
  const cur = decodeCursor(after)
  if (cur) {
    filter.$or = [{ received_at: { $lt: cur.at } }, { received_at: cur.at, _id: { $lt: cur.id as ObjectId } }]
  }
  const inProcess = Boolean(f.result || f.missingMedia)
  const cursor = db
    .collection(COLLECTIONS.sessions)
    .find(filter, { projection: LIST_PROJECTION })
    .sort({ received_at: -1, _id: -1 })
    .limit(inProcess ? SCAN_CAP : pageSize + 1)
    .batchSize(BATCH)
  const rows: Document[] = []
  const missing = new Map<string, string[]>()
  let scanned = 0
  let last: Document | null = null
  let more = false
  let batch: Document[] = []
  const flush = async (): Promise<boolean> => {
    const miss = await missingImages(db, workspaceId, batch)
    for (const d of batch) {
      if (rows.length >= pageSize) {
        more = true
        return true
      }
      last = d
      const m = miss.get(d.session_id as string)
      if (f.missingMedia && !m) continue
      if (!matchesResult(d, f.result)) continue
      rows.push(d)
      if (m) missing.set(d.session_id as string, m)
    }
    batch = []
    return false
  }
  try {
    for await (const d of cursor) {
      scanned++
      batch.push(d)
      if (batch.length >= (inProcess ? BATCH : pageSize + 1) && (await flush())) break
    }
    if (!more && batch.length) await flush()
  } finally {
    await cursor.close()
  }
  const capped = inProcess && !more && scanned >= SCAN_CAP
  const lastDoc = last as Document | null
  // In-process filters: continue after the last scanned document; otherwise after the last row shown.
  const nextFrom = more || capped ? (inProcess && lastDoc ? lastDoc : rows[rows.length - 1]) : null
  return { rows, missing, next: nextFrom ? encodeCursor(nextFrom) : null, capped, scanned }
}

/** Distinct states and test profiles in the workspace, for the filter menus (bounded). */
export async function filterChoices(db: Db, workspaceId: string): Promise<{ states: string[]; profiles: string[] }> {
  const c = db.collection(COLLECTIONS.sessions)
  const group = async (field: string) => {
    const rows = await c
      .aggregate<{ _id: unknown }>([
        { $match: { workspace_id: workspaceId } },
        { $group: { _id: `$${field}`, n: { $sum: 1 } } },
        { $sort: { n: -1 } },
        { $limit: 200 },
      ])
      .toArray()
    return rows
      .map((r) => r._id)
      .filter((v): v is string => typeof v === 'string')
      .sort()
  }
  const [states, profiles] = await Promise.all([group('state'), group('test_profile_id')])
  return { states, profiles }
}
