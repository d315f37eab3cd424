// Event names and delivery ids of outbound webhooks, shared by the worker (which enqueues and
// sends deliveries), the admin panel and the CLI.
import { createHash } from 'node:crypto'
import { WEBHOOK_EVENTS, type WebhookEvent } from '../shared/mongo.ts'

export { WEBHOOK_EVENTS, type WebhookEvent }

/** The event `webhook test` sends; never subscribed to, never retried. */
export const TEST_EVENT = 'webhook.test'

export const WEBHOOK_ID_PATTERN = /^h[0-9a-f]{16}$/

/** What a delivery is about: one stored record. `extra` is the logs batch's sha256 or the media id. */
export interface RecordRef {
  event: WebhookEvent
  workspace_id: string
  session_id: string
  extra?: string
  /**
   * The stored document's _id (hex ObjectId), when this run inserted it: the delivery reads the
   * record by _id first, which every server answers from its primary key (FerretDB, the local
   * stack's MongoDB, would otherwise scan the collection), and by its ids when that misses.
   */
  record_id?: string
}

/**
 * The delivery id: the same for one (endpoint, record) pair however often the record's job runs,
 * so it is both the BullMQ job id (a re-run adds nothing while the delivery is queued) and the
 * `X-RDT-Delivery` header receivers deduplicate on. Hashed: ids are up to 128 characters each,
 * and a job id must hold no ':' and not be all digits (the leading letter sees to that).
 */
export function deliveryId(endpointId: string, ref: RecordRef): string {
  const h = createHash('sha256')
    .update(`${ref.event}\n${ref.workspace_id}\n${ref.session_id}\n${ref.extra ?? ''}`)
    .digest('hex')
  return `d.${endpointId}.${h.slice(0, 40)}`
}
