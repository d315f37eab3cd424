// Per-workspace counts and per-token "last used", read from what the workers already store.
//
// Last used: the gateway does no MongoDB work, and writing a timestamp per request would put a
// write on its critical path. Every stored upload already carries `token_id` and `received_at`
// (set by the gateway when it accepted the request), so "last used" is the newest `received_at`
// for that token over test_sessions, test_session_log_batches and test_session_media: one
// indexed sort+limit(1) query per token and collection ({workspace_id, token_id, received_at}).
// It is exact for accepted uploads; refused requests (403, 413 …) are not counted.
// FerretDB v1 has no $max accumulator, hence sort+limit rather than $group.
import type { Db } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { UPLOAD_COLLECTIONS } from './indexes.ts'

async function newest(db: Db, filter: Record<string, unknown>): Promise<Date | null> {
  const found = await Promise.all(
    UPLOAD_COLLECTIONS.map((name) =>
      db
        .collection(name)
        .find(filter, { projection: { _id: 0, received_at: 1 } })
        .sort({ received_at: -1 })
        .limit(1)
        .next(),
    ),
  )
  let best: Date | null = null
  for (const doc of found) {
    const at = doc?.received_at
    if (at instanceof Date && (!best || at > best)) best = at
  }
  return best
}

export async function tokenLastUsed(db: Db, workspaceId: string, tokenIds: string[]): Promise<Map<string, Date | null>> {
  const out = new Map<string, Date | null>()
  await Promise.all(tokenIds.map(async (id) => out.set(id, await newest(db, { workspace_id: workspaceId, token_id: id }))))
  return out
}

/** Start of the current UTC day, and of the current ISO week (Monday 00:00 UTC). */
export function periodStarts(now: Date): { today: Date; week: Date } {
  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()))
  const dow = (today.getUTCDay() + 6) % 7 // Monday = 0
  return { today, week: new Date(today.getTime() - dow * 86400_000) }
}

export interface WorkspaceActivity {
  today: number
  week: number
  lastUpload: Date | null
}

/** Sessions received today and this week (one $group each over all workspaces), and the last upload of any kind. */
export async function workspaceActivity(db: Db, workspaceIds: string[], now = new Date()): Promise<Map<string, WorkspaceActivity>> {
  const { today, week } = periodStarts(now)
  const sessions = db.collection(COLLECTIONS.sessions)
  const counts = async (since: Date) => {
    const m = new Map<string, number>()
    const rows = await sessions
      .aggregate<{ _id: string; n: number }>([
        { $match: { workspace_id: { $in: workspaceIds }, received_at: { $gte: since } } },
        { $group: { _id: '$workspace_id', n: { $sum: 1 } } },
      ])
      .toArray()
    for (const r of rows) m.set(r._id, r.n)
    return m
  }
  const [t, w] = await Promise.all([counts(today), counts(week)])
  const out = new Map<string, WorkspaceActivity>()
  await Promise.all(
    workspaceIds.map(async (id) =>
      out.set(id, { today: t.get(id) ?? 0, week: w.get(id) ?? 0, lastUpload: await newest(db, { workspace_id: id }) }),
    ),
  )
  return out
}
