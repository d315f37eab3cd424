// The dashboard's figures, from MongoDB aggregations that run on MongoDB and on FerretDB v1.
//
// FerretDB v1 supports $match, $group (with $sum and $count only), $project (inclusion only),
// $sort, $limit, $unwind and $count, but no date operators ($dateToString, $year …), no $cond,
// no $objectToArray and no $max/$min. So each figure is one pipeline that does the filtering and
// the projection in the database ($match on the indexed {workspace_id, received_at} range, then
// $project of the few fields needed, then $limit MAX_DOCS) and the bucketing (per UTC day, per
// hour, per diagnosis key) in the process while the cursor streams. Counts per state use a real
// $group. With MAX_DOCS at 200,000 a figure stays exact for any 90-day range below that volume;
// beyond it the page says the figures are truncated.
import type { Db, Document } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { outcomeOf, validityOf, type Validity } from './readings.ts'
import { stringMap } from '../views/format.ts'

export const MAX_DOCS = 200_000

export interface DiagnosisStats {
  key: string
  positive: number
  negative: number
  other: number
  /** Sessions where both the user and the classifier gave a value for this diagnosis. */
  compared: number
  agreed: number
}

export interface Dashboard {
  from: Date
  to: Date
  days: string[]
  perDay: { total: number[]; flagged: number[] }
  diagnoses: DiagnosisStats[]
  validity: Record<Validity, number>
  byState: { state: string; n: number }[]
  sessions: number
  flagged: number
  truncated: boolean
  hours: string[]
  perHour: { sessions: number[]; logs: number[]; media: number[] }
  uploadsTruncated: boolean
}

const DAY = 86400_000
const HOUR = 3600_000

type Range = { $gte: Date; $lt: Date }

export async function buildDashboard(
  db: Db,
  workspaceId: string,
  opts: { from: Date; to: Date; now?: Date; hours?: number },
): Promise<Dashboard> {
  const { from, to } = opts
  const range = { $gte: from, $lt: to }
  const readings = await readingFigures(db, workspaceId, from, to)
  const byState = await stateCounts(db, workspaceId, range)
  const uploads = await uploadsPerHour(db, workspaceId, opts.now ?? new Date(), opts.hours ?? 48)
  return { from, to, ...readings, byState, ...uploads }
}

/** Readings per day, per diagnosis and by read timing: one pass over the range's sessions. */
async function readingFigures(
  db: Db,
  workspaceId: string,
  from: Date,
  to: Date,
): Promise<Pick<Dashboard, 'days' | 'perDay' | 'diagnoses' | 'validity' | 'sessions' | 'flagged' | 'truncated'>> {
  const days: string[] = []
  for (let t = from.getTime(); t < to.getTime(); t += DAY) days.push(new Date(t).toISOString().slice(0, 10))
  const dayIndex = new Map(days.map((d, i) => [d, i]))
  const perDay = { total: days.map(() => 0), flagged: days.map(() => 0) }
  const diag = new Map<string, DiagnosisStats>()
  const validity: Record<Validity, number> = { too_early: 0, on_time: 0, too_late: 0, unknown: 0 }
  let count = 0
  let flagged = 0
  for await (const d of readingsCursor(db, workspaceId, { $gte: from, $lt: to })) {
    count++
    const ok = (d.validation as { ok?: unknown } | undefined)?.ok === true
    if (!ok) flagged++
    const i = d.received_at instanceof Date ? dayIndex.get(d.received_at.toISOString().slice(0, 10)) : undefined
    if (i !== undefined) {
      perDay.total[i]!++
      if (!ok) perDay.flagged[i]!++
    }
    validity[validityOf(d)]++
    countDiagnoses(diag, d.result as { results?: unknown; results_classifier?: unknown } | null | undefined)
  }
  const diagnoses = [...diag.values()].sort((a, b) => a.key.localeCompare(b.key))
  return { days, perDay, diagnoses, validity, sessions: count, flagged, truncated: count >= MAX_DOCS }
}

function readingsCursor(db: Db, workspaceId: string, range: Range) {
  return db.collection(COLLECTIONS.sessions).aggregate<Document>(
    [
      { $match: { workspace_id: workspaceId, received_at: range } },
      {
        $project: {
          _id: 0,
          received_at: 1,
          time_resolved: 1,
          time_expired: 1,
          'validation.ok': 1,
          'result.time_read': 1,
          'result.results': 1,
          'result.results_classifier': 1,
        },
      },
      { $limit: MAX_DOCS },
    ],
    { batchSize: 2000 },
  )
}

/** Adds one session's user results (and their agreement with the classifier's) to the per-diagnosis counts. */
function countDiagnoses(
  diag: Map<string, DiagnosisStats>,
  r: { results?: unknown; results_classifier?: unknown } | null | undefined,
): void {
  const results = stringMap(r?.results)
  const classifier = stringMap(r?.results_classifier)
  for (const [k, v] of results) {
    let s = diag.get(k)
    if (!s) diag.set(k, (s = { key: k, positive: 0, negative: 0, other: 0, compared: 0, agreed: 0 }))
    s[outcomeOf(v)]++
    const cv = classifier.get(k)
    if (cv !== undefined) {
      s.compared++
      if (cv === v) s.agreed++
    }
  }
}

async function stateCounts(db: Db, workspaceId: string, range: Range): Promise<Dashboard['byState']> {
  const rows = await db
    .collection(COLLECTIONS.sessions)
    .aggregate<{ _id: unknown; n: number }>([
      { $match: { workspace_id: workspaceId, received_at: range } },
      { $group: { _id: '$state', n: { $sum: 1 } } },
      { $sort: { n: -1 } },
    ])
    .toArray()
  return rows.map((r) => ({ state: typeof r._id === 'string' ? r._id : '(none)', n: r.n }))
}

/** Ingest health: uploads of each kind per hour over the last `hoursN` hours (sessions, log batches, media). */
async function uploadsPerHour(
  db: Db,
  workspaceId: string,
  now: Date,
  hoursN: number,
): Promise<Pick<Dashboard, 'hours' | 'perHour' | 'uploadsTruncated'>> {
  const endHour = Math.floor(now.getTime() / HOUR) * HOUR + HOUR
  const startHour = endHour - hoursN * HOUR
  const hours: string[] = []
  for (let t = startHour; t < endHour; t += HOUR) hours.push(new Date(t).toISOString().slice(5, 13).replace('T', ' ') + ':00')
  const perHour = { sessions: hours.map(() => 0), logs: hours.map(() => 0), media: hours.map(() => 0) }
  const kinds = [
    ['sessions', COLLECTIONS.sessions],
    ['logs', COLLECTIONS.logBatches],
    ['media', COLLECTIONS.media],
  ] as const
  const counted = await Promise.all(
    kinds.map(async ([kind, name]) => {
      let n = 0
      const c = db
        .collection(name)
        .aggregate<Document>([
          { $match: { workspace_id: workspaceId, received_at: { $gte: new Date(startHour), $lt: new Date(endHour) } } },
          { $project: { _id: 0, received_at: 1 } },
          { $limit: MAX_DOCS },
        ])
      for await (const d of c) {
        n++
        if (!(d.received_at instanceof Date)) continue
        const i = Math.floor((d.received_at.getTime() - startHour) / HOUR)
        if (i >= 0 && i < hoursN) perHour[kind][i]!++
      }
      return n
    }),
  )
  return { hours, perHour, uploadsTruncated: counted.some((n) => n >= MAX_DOCS) }
}
