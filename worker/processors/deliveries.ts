// The `deliveries` queue: POSTs one stored record to one webhook endpoint (README "Forwarding").
// The job holds only references; each attempt reads the endpoint (a removed or disabled one gets
// nothing more) and the record (one deleted since is not sent), signs the body and sends it
// through the address guard. A failed attempt rethrows, so BullMQ retries it on the delivery
// schedule (webhooks/retry-schedule.ts); at its end the job stays in the failed set: the dead letters.
import { UnrecoverableError, type Job } from 'bullmq'
import { ObjectId, type Document } from 'mongodb'
import { collections } from '../../shared/mongo.ts'
import type { DeliveryJob } from '../../shared/queues.ts'
import { BlockedAddressError } from '../../webhooks/address-guard.ts'
import { sendDelivery } from '../../webhooks/send.ts'
import { deliveryHeaders } from '../../webhooks/signing.ts'
import { checkNotCancelled, validatePayload, type ProcessorDeps } from '../context.ts'

export type DeliveryOutcome =
  { outcome: 'delivered'; status: number; ms: number } | { outcome: 'endpoint_removed' } | { outcome: 'record_deleted' }

type Collections = ReturnType<typeof collections>

/** The record a delivery is about, as stored (without MongoDB's _id); null once deleted. */
async function loadRecord(c: Collections, d: DeliveryJob): Promise<Document | null> {
  if (d.event === 'webhook.test') return { message: 'A test delivery from rdt-ingest (npm run cli -- webhook test, or the admin panel).' }
  const [collection, filter] =
    d.event === 'session.stored'
      ? [c.sessions, { workspace_id: d.workspace_id, session_id: d.session_id }]
      : d.event === 'logs.stored'
        ? [c.logBatches, { workspace_id: d.workspace_id, session_id: d.session_id, sha256: d.sha256 }]
        : [c.media, { workspace_id: d.workspace_id, session_id: d.session_id, media_id: d.media_id }]
  // By _id first (a primary-key read everywhere), with the ids in the filter too, so a sharded
  // cluster (shard key {workspace_id, session_id}) routes it to one shard; by the ids alone when
  // the _id is unknown or names another document (the run stored a fallback document instead).
  if (d.record_id) {
    const byId = await collection.findOne({ _id: new ObjectId(d.record_id), ...filter }, { projection: { _id: 0 } })
    if (byId) return byId
  }
  return collection.findOne(filter, { projection: { _id: 0 } })
}

/** The JSON body: the same fields for every event; `data` is the stored record (README "Forwarding"). */
export function deliveryBody(d: DeliveryJob, record: Document): string {
  return JSON.stringify({
    id: d.delivery_id,
    event: d.event,
    workspace_id: d.workspace_id,
    session_id: d.session_id ?? null,
    data: record,
  })
}

export function createDeliveriesProcessor(deps: ProcessorDeps) {
  const c = collections(deps.db)
  const settings = deps.config.webhooks
  return async function processDelivery(job: Job, _token?: string, signal?: AbortSignal): Promise<DeliveryOutcome> {
    const data = validatePayload('deliveries', job.data)
    const endpoint = await c.webhooks.findOne({ _id: data.endpoint_id })
    if (!endpoint || endpoint.disabled) return { outcome: 'endpoint_removed' }
    if (endpoint.workspace_id !== data.workspace_id) throw new UnrecoverableError('the endpoint belongs to another workspace')
    const record = await loadRecord(c, data)
    if (!record) return { outcome: 'record_deleted' }
    const body = deliveryBody(data, record)
    checkNotCancelled(signal)
    const headers = deliveryHeaders({ event: data.event, deliveryId: data.delivery_id, secret: endpoint.secret, body })
    try {
      const res = await sendDelivery({
        url: endpoint.url,
        headers,
        body,
        timeoutMs: settings.timeoutMs,
        allowPrivate: settings.allowPrivate,
      })
      return { outcome: 'delivered', status: res.status, ms: res.ms }
    } catch (err) {
      // A URL that points at a non-public address is a configuration to fix, not an outage to
      // wait out: straight to the dead letters, where the panel shows why.
      if (err instanceof BlockedAddressError) throw new UnrecoverableError(err.message)
      throw err
    }
  }
}
