// `webhook test <id>` (CLI and admin panel): one signed test request to an endpoint, sent by a
// deliveries worker like any delivery (same address guard, same network), and its result.
// The caller needs no way out to the internet and no WEBHOOK_ALLOW_PRIVATE of its own.
import { randomBytes } from 'node:crypto'
import { Job, Queue } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import type { Db } from 'mongodb'
import { collections } from '../shared/mongo.ts'
import { shardPrefix } from '../shared/redis-shards.ts'
import type { DeliveryJob } from '../shared/queues.ts'
import { getWebhook } from './endpoints.ts'
import { WebhookError } from './errors.ts'
import { TEST_EVENT } from './events.ts'

export interface TestResult {
  id: string
  delivery_id: string
  delivered: boolean
  /** The receiver's status, when it answered 2xx. */
  status: number | null
  ms: number | null
  /** Why it failed (as the worker saw it). */
  reason: string | null
}

/** `prefix` is REDIS_PREFIX; the test goes to the endpoint's workspace's shard. */
export async function testWebhook(
  deps: { db: Db; redis: RedisClient; prefix: string; actor: string; waitMs?: number },
  id: string,
): Promise<TestResult> {
  const endpoint = await getWebhook(deps.db, id)
  // The workspace's own shard, where its deliveries workers are (shared/redis-shards.ts).
  const ws = await collections(deps.db).workspaces.findOne({ _id: endpoint.workspace_id }, { projection: { redis_shard: 1 } })
  const queue = new Queue('deliveries', { connection: deps.redis, prefix: shardPrefix(deps.prefix, ws?.redis_shard ?? 0) })
  try {
    const deliveryId = `d.${endpoint._id}.t${randomBytes(8).toString('hex')}`
    const data: DeliveryJob = {
      kind: 'test',
      event: TEST_EVENT,
      endpoint_id: endpoint._id,
      delivery_id: deliveryId,
      workspace_id: endpoint.workspace_id,
    }
    // One attempt: the operator is waiting for this answer, not for a retry in ten seconds.
    await queue.add(TEST_EVENT, data, { jobId: deliveryId, attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: false })
    await collections(deps.db).audit.insertOne({
      at: new Date(),
      actor: deps.actor,
      action: 'webhook.test',
      target: { webhook_id: endpoint._id, workspace_id: endpoint.workspace_id, delivery_id: deliveryId },
    })
    const result = await waitFor(queue, deliveryId, deps.waitMs ?? 30_000)
    return { id: endpoint._id, delivery_id: deliveryId, ...result }
  } finally {
    await queue.close()
  }
}

async function waitFor(queue: Queue, jobId: string, waitMs: number): Promise<Omit<TestResult, 'id' | 'delivery_id'>> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const state = await queue.getJobState(jobId)
    if (state === 'completed' || state === 'failed') {
      const job = await Job.fromId(queue, jobId)
      if (state === 'completed') {
        const rv = (job?.returnvalue ?? {}) as { outcome?: string; status?: number; ms?: number }
        if (rv.outcome === 'delivered') return { delivered: true, status: rv.status ?? null, ms: rv.ms ?? null, reason: null }
        return { delivered: false, status: null, ms: null, reason: `not sent: ${rv.outcome ?? 'unknown outcome'}` }
      }
      const reason = job?.failedReason ?? 'failed'
      // A failed test is an answer, not a dead letter to keep.
      await job?.remove().catch(() => {})
      return { delivered: false, status: null, ms: null, reason }
    }
    if (Date.now() > deadline) {
      // Nobody took it: do not leave a test request to fire long after the operator gave up.
      await queue.remove(jobId).catch(() => {})
      throw new WebhookError(
        'no_deliveries_worker',
        `no deliveries worker sent the test within ${Math.round(waitMs / 1000)} s: is a worker serving the deliveries queue running (WORKER_QUEUES)?`,
      )
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}
