// Tombstones: what a deletion leaves behind so that the deleted data does not come back (README
// "Deletion"). A phone that had not finished uploading a session, or whose user taps "resend
// everything", sends it again; a job may still be queued for it when it is deleted.
//
// - MongoDB's `deleted_sessions` is the source of truth: one document per deleted session
//   (workspace, session GUID, deleted_at; no content), and one per purged workspace (session_id
//   null: every session it received up to deleted_at).
// - Redis holds a mirror of the session tombstones, one hash per workspace in the workspace's
//   shard (keys.deletedSessions), which the gateway's claim script reads: an upload of a deleted
//   session (its JSON, logs or a photo) is answered 409 in the claim's own round trip, without a
//   database query. A purged workspace needs no mirror: its tokens are revoked.
// - Workers check MongoDB before they store a record and again after (isDeleted below), and drop
//   what a deleted session's job would have stored. The check after closes the race with a
//   deletion running meanwhile: the deletion writes its tombstone before it looks for records, and
//   the worker looks for the tombstone after its record is in, so one of the two sees the other.
// - The mirror can lose keys (a flushed or failed-over Redis, a workspace moved to another shard):
//   workers re-mirror from MongoDB on the token-sync timer (syncTombstoneMirror), and until then a
//   retry is answered 201 and dropped by the worker's check, never stored again.
import type { Db } from 'mongodb'
import type { RedisClient } from '../shared/redis.ts'
import { keys } from '../shared/keys.ts'
import { collections, type WorkspaceDoc } from '../shared/mongo.ts'
import { shardPrefix } from '../shared/redis-shards.ts'

export const sessionTombstoneId = (ws: string, session: string): string => `${ws}/${session}`
export const workspaceTombstoneId = (ws: string): string => `${ws}/*`

/** Writes a session's tombstone; a second deletion keeps the first deleted_at. */
export async function writeSessionTombstone(db: Db, ws: string, session: string, at: Date): Promise<void> {
  await collections(db).deletedSessions.updateOne(
    { _id: sessionTombstoneId(ws, session) },
    { $setOnInsert: { workspace_id: ws, session_id: session, deleted_at: at } },
    { upsert: true },
  )
}

/** Writes (or moves forward) a purged workspace's tombstone: jobs it received up to `at` are dropped. */
export async function writeWorkspaceTombstone(db: Db, ws: string, at: Date): Promise<void> {
  await collections(db).deletedSessions.updateOne(
    { _id: workspaceTombstoneId(ws) },
    { $set: { workspace_id: ws, session_id: null, deleted_at: at } },
    { upsert: true },
  )
}

/** The shards a workspace's uploads may reach now: its shard, and the one it is leaving during a move. */
function shardsOf(ws: Pick<WorkspaceDoc, 'redis_shard' | 'redis_shard_moving_from'>): number[] {
  const now = ws.redis_shard ?? 0
  const from = ws.redis_shard_moving_from
  return typeof from === 'number' && from !== now ? [now, from] : [now]
}

/** Mirrors session tombstones of one workspace into the gateways' Redis (every shard its uploads may reach). */
export async function mirrorTombstones(
  redis: RedisClient,
  basePrefix: string,
  ws: Pick<WorkspaceDoc, '_id' | 'redis_shard' | 'redis_shard_moving_from'>,
  tombstones: { session_id: string; deleted_at: Date }[],
): Promise<void> {
  for (const shard of shardsOf(ws)) {
    const key = keys(shardPrefix(basePrefix, shard)).deletedSessions(ws._id)
    // Chunks keep each command short: Redis runs nothing else meanwhile.
    for (let i = 0; i < tombstones.length; i += 500) {
      const chunk = tombstones.slice(i, i + 500)
      await redis.hset(key, Object.fromEntries(chunk.map((t) => [t.session_id, String(t.deleted_at.getTime())])))
    }
  }
}

/**
 * Re-mirrors the session tombstones of every workspace whose hash in its shard holds fewer fields
 * than MongoDB has tombstones (Redis flushed or failed over, a mirror write that never landed, a
 * shard move). Deletions are rare, so reading them all each time is cheap; a workspace whose
 * count matches costs one HLEN.
 */
export async function syncTombstoneMirror(
  db: Db,
  redis: RedisClient,
  basePrefix: string,
): Promise<{ workspaces: number; repaired: number }> {
  const c = collections(db)
  const byWs = new Map<string, { session_id: string; deleted_at: Date }[]>()
  for await (const t of c.deletedSessions.find(
    { session_id: { $ne: null } },
    { projection: { workspace_id: 1, session_id: 1, deleted_at: 1 } },
  )) {
    if (typeof t.session_id !== 'string') continue
    byWs.set(t.workspace_id, [...(byWs.get(t.workspace_id) ?? []), { session_id: t.session_id, deleted_at: t.deleted_at }])
  }
  let repaired = 0
  for (const [wsId, list] of byWs) {
    const ws = await c.workspaces.findOne({ _id: wsId }, { projection: { _id: 1, redis_shard: 1, redis_shard_moving_from: 1 } })
    if (!ws) continue
    const lens = await Promise.all(shardsOf(ws).map((s) => redis.hlen(keys(shardPrefix(basePrefix, s)).deletedSessions(wsId))))
    if (lens.every((n) => n >= list.length)) continue
    await mirrorTombstones(redis, basePrefix, ws, list)
    repaired++
  }
  return { workspaces: byWs.size, repaired }
}

/**
 * A worker's tombstone check, coalesced: concurrent jobs' checks within a few milliseconds go to
 * MongoDB as one query (like the batch writer's inserts), so checking every job before and after
 * it stores does not cap the pipeline at the database's single-query rate.
 */
export function createTombstoneCheck(db: Db, opts: { maxWaitMs?: number; maxItems?: number } = {}) {
  const c = collections(db)
  const maxWaitMs = opts.maxWaitMs ?? 2
  const maxItems = opts.maxItems ?? 200
  type Waiter = { ws: string; session: string; receivedAt: Date; resolve: (v: boolean) => void; reject: (e: unknown) => void }
  let waiting: Waiter[] = []
  let timer: NodeJS.Timeout | null = null

  async function run(batch: Waiter[]): Promise<void> {
    try {
      const ids = new Set<string>()
      for (const w of batch) {
        ids.add(sessionTombstoneId(w.ws, w.session))
        ids.add(workspaceTombstoneId(w.ws))
      }
      const found = new Map<string, Date>()
      for await (const t of c.deletedSessions.find({ _id: { $in: [...ids] } }, { projection: { deleted_at: 1 } }))
        found.set(t._id, t.deleted_at)
      for (const w of batch) {
        const purged = found.get(workspaceTombstoneId(w.ws))
        w.resolve(found.has(sessionTombstoneId(w.ws, w.session)) || (purged !== undefined && w.receivedAt.getTime() <= purged.getTime()))
      }
    } catch (err) {
      for (const w of batch) w.reject(err)
    }
  }

  function flush(): void {
    if (timer) clearTimeout(timer)
    timer = null
    const batch = waiting
    waiting = []
    if (batch.length > 0) void run(batch)
  }

  return {
    /**
     * Whether a record of this session, received at `receivedAt`, must not be stored: the session
     * was deleted (whenever it was received), or its workspace was purged after it was received.
     */
    isDeleted(ws: string, session: string, receivedAt: Date): Promise<boolean> {
      return new Promise((resolve, reject) => {
        waiting.push({ ws, session, receivedAt, resolve, reject })
        if (waiting.length >= maxItems) flush()
        else timer ??= setTimeout(flush, maxWaitMs)
      })
    },
  }
}

export type TombstoneCheck = ReturnType<typeof createTombstoneCheck>
