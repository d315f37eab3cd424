// Turns "a record was stored" into delivery jobs, one per subscribed endpoint of the record's
// workspace. Called by the sessions, logs and media processors after the record is durably in
// MongoDB and before their job completes: if adding the deliveries fails (Redis away), the
// record's job fails this attempt and runs again, finds the record already stored, and adds the
// deliveries then. Delivery job ids are deterministic per (endpoint, record), so a re-run adds
// nothing that is already queued, and receivers see one X-RDT-Delivery id per record.
import { Queue } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import { ObjectId, type Db, type Document } from 'mongodb'
import { collections, type WebhookDoc } from '../shared/mongo.ts'
import type { DeliveryJob } from '../shared/queues.ts'
import { deliveryId, type RecordRef } from '../webhooks/events.ts'
import { deliveryJobOptions, type RetrySchedule } from '../webhooks/retry-schedule.ts'

/**
 * How long a workspace's endpoint list is reused. One MongoDB read per record would add a query
 * to every job of the busiest queues; with this, an endpoint added in the panel gets the records
 * stored from a few seconds later on (README "Forwarding"). A removed endpoint stops at once:
 * the delivery reads the endpoint again before sending.
 */
export const ENDPOINT_CACHE_MS = 5000

/** The _id the driver gave a document it inserted (it sets _id in place), as hex; else undefined. */
export function insertedId(doc: Document): string | undefined {
  return doc._id instanceof ObjectId ? doc._id.toHexString() : undefined
}

export interface WebhookFanout {
  /** Adds the record's deliveries; resolves with how many endpoints it was queued for. */
  recordStored(ref: RecordRef): Promise<number>
  close(): Promise<void>
}

type Endpoint = Pick<WebhookDoc, '_id' | 'events'>

export function createWebhookFanout(deps: {
  db: Db
  redis: RedisClient
  prefix: string
  schedule: RetrySchedule
  cacheMs?: number
}): WebhookFanout {
  const c = collections(deps.db)
  const cacheMs = deps.cacheMs ?? ENDPOINT_CACHE_MS
  const cache = new Map<string, { at: number; endpoints: Promise<Endpoint[]> }>()
  const jobOptions = deliveryJobOptions(deps.schedule)
  let queue: Queue | null = null

  function endpointsOf(workspaceId: string): Promise<Endpoint[]> {
    const hit = cache.get(workspaceId)
    if (hit && Date.now() - hit.at < cacheMs) return hit.endpoints
    const endpoints = c.webhooks.find({ workspace_id: workspaceId, disabled: false }, { projection: { _id: 1, events: 1 } }).toArray()
    cache.set(workspaceId, { at: Date.now(), endpoints })
    // A failed read is not kept: the next record asks again.
    endpoints.catch(() => cache.delete(workspaceId))
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!)
    return endpoints
  }

  return {
    async recordStored(ref) {
      const endpoints = (await endpointsOf(ref.workspace_id)).filter((e) => e.events.includes(ref.event))
      if (endpoints.length === 0) return 0
      // Opened on first use: most workers of a deployment without webhooks never need it.
      queue ??= new Queue('deliveries', { connection: deps.redis, prefix: deps.prefix })
      const extra =
        ref.event === 'logs.stored' ? { sha256: ref.extra } : ref.event === 'media.stored' ? { media_id: ref.extra } : ({} as const)
      await queue.addBulk(
        endpoints.map((e) => {
          const id = deliveryId(e._id, ref)
          const data: DeliveryJob = {
            kind: 'delivery',
            event: ref.event,
            endpoint_id: e._id,
            delivery_id: id,
            workspace_id: ref.workspace_id,
            session_id: ref.session_id,
            ...extra,
            ...(ref.record_id ? { record_id: ref.record_id } : {}),
          }
          return { name: ref.event, data, opts: { ...jobOptions, jobId: id } }
        }),
      )
      return endpoints.length
    },
    async close() {
      await queue?.close()
    },
  }
}
