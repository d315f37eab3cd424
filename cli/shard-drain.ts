// `workspace move-shard`'s wait: how many of a workspace's jobs are still to run in the shard it
// left. Job ids carry the workspace (shared/keys.ts jobIds: "<kind>.<workspace>.<…>"), so ids
// are enough: no job body (a patient's data) is read. Failed jobs are not waited for: they stay
// in the old shard's failed set, where `jobs failed` (which covers every shard) shows them.
import { Queue } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import { QUEUE_NAMES } from '../shared/queue-settings.ts'

// 'waiting' covers BullMQ's wait and paused lists.
const PENDING = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'] as const
const PAGE = 1000

/** The workspace's jobs not yet finished in the shard under `prefix`. */
export async function pendingWorkspaceJobs(redis: RedisClient, prefix: string, workspaceId: string): Promise<number> {
  const marker = `.${workspaceId}.`
  let n = 0
  for (const name of QUEUE_NAMES) {
    const q = new Queue(name, { connection: redis, prefix })
    try {
      // One state at a time: getRanges applies start and end to each state it is given.
      for (const state of PENDING) {
        for (let start = 0; ; start += PAGE) {
          const ids = await q.getRanges([state], start, start + PAGE - 1)
          n += ids.filter((id) => id.includes(marker)).length
          if (ids.length < PAGE) break
        }
      }
    } finally {
      await q.close()
    }
  }
  return n
}
