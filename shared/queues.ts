// Queue names and job payload schemas, shared by the gateway (producer) and the workers.
//
// The queue names are persisted in Redis as part of every BullMQ key, so renaming one
// strands the jobs already queued under the old name: change them only with a migration.
import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'

// Names and job options are in queue-settings.ts: the gateway imports those, and must not load TypeBox.

const Id = Type.String({ pattern: '^[0-9A-Za-z_-]{1,128}$' })
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' })
const IsoDate = Type.String({ minLength: 10, maxLength: 40 })

/** Where the request came from; kept with every stored record. */
const Origin = {
  workspace_id: Id,
  session_id: Id,
  token_id: Type.String({ maxLength: 64 }),
  received_at: IsoDate,
}

/**
 * Set (true) when the request bytes were not valid UTF-8: `body` then has U+FFFD where they were
 * (gateway/routes/json-ingest.ts), and the stored record is flagged. Absent otherwise.
 */
const BodyInvalidUtf8 = Type.Optional(Type.Literal(true))

/** A session body accepted by the gateway. `body` is the exact request text, kept verbatim. */
export const SessionJob = Type.Object({
  kind: Type.Literal('session'),
  ...Origin,
  sha256: Sha256,
  body: Type.String(),
  body_invalid_utf8: BodyInvalidUtf8,
})

/**
 * A body that reused an existing GUID with different content. The device got 409 (as the spec
 * says), but the body is never dropped: it is stored for operators in test_session_conflicts.
 */
export const ConflictJob = Type.Object({
  kind: Type.Literal('conflict'),
  ...Origin,
  sha256: Sha256,
  body: Type.String(),
  body_invalid_utf8: BodyInvalidUtf8,
})

export const SessionsQueueJob = Type.Union([SessionJob, ConflictJob])

export const LogsJob = Type.Object({
  kind: Type.Literal('logs'),
  ...Origin,
  sha256: Sha256,
  body: Type.String(),
  body_invalid_utf8: BodyInvalidUtf8,
})

/**
 * Media is never carried in Redis: the job is a claim check on the uploaded object.
 *
 * `staging_key` is the upload's key. Under media/ (objectKeys.upload) the bytes are where they
 * stay, and the gateway hashed and sniffed them while streaming (`sniffed_type` is set): the job
 * only records which upload is canonical. Under staging/ (jobs from before that layout) the job
 * reads the object back, verifies and moves it. The field keeps its name so that jobs queued
 * across an upgrade still validate.
 */
export const MediaJob = Type.Object({
  kind: Type.Literal('media'),
  ...Origin,
  media_id: Id,
  bucket: Type.String({ minLength: 3, maxLength: 63 }),
  staging_key: Type.String({ maxLength: 1024 }),
  size: Type.Integer({ minimum: 0 }),
  sha256: Sha256,
  filename: Type.Union([Type.String({ maxLength: 1024 }), Type.Null()]),
  content_type: Type.Union([Type.String({ maxLength: 256 }), Type.Null()]),
  /** What the first bytes are (shared/sniff.ts), sniffed by the gateway; absent in staged jobs. */
  sniffed_type: Type.Optional(Type.String({ maxLength: 100 })),
})

/**
 * One delivery of one stored record to one webhook endpoint (README "Forwarding"). It carries
 * only references: the worker reads the endpoint and the record from MongoDB at each attempt,
 * so Redis never holds a second copy of the record, and a removed endpoint gets nothing more.
 * `kind: 'test'` is `webhook test`'s one-off request (no record, no retries).
 */
export const DeliveryJob = Type.Object({
  kind: Type.Union([Type.Literal('delivery'), Type.Literal('test')]),
  event: Type.Union([
    Type.Literal('session.stored'),
    Type.Literal('media.stored'),
    Type.Literal('logs.stored'),
    Type.Literal('webhook.test'),
  ]),
  endpoint_id: Type.String({ pattern: '^h[0-9a-f]{16}$' }),
  /** Also the job id and the X-RDT-Delivery header (webhooks/events.ts deliveryId). */
  delivery_id: Type.String({ pattern: '^d\\.h[0-9a-f]{16}\\.[0-9a-z]{1,64}$' }),
  workspace_id: Id,
  session_id: Type.Optional(Id),
  /** logs.stored: the batch's sha256. */
  sha256: Type.Optional(Sha256),
  /** media.stored: the media id. */
  media_id: Type.Optional(Id),
  /** The stored document's _id, when known (a fast first lookup; webhooks/events.ts RecordRef). */
  record_id: Type.Optional(Type.String({ pattern: '^[0-9a-f]{24}$' })),
})

export type SessionJob = Static<typeof SessionJob>
export type ConflictJob = Static<typeof ConflictJob>
export type SessionsQueueJob = Static<typeof SessionsQueueJob>
export type LogsJob = Static<typeof LogsJob>
export type MediaJob = Static<typeof MediaJob>
export type DeliveryJob = Static<typeof DeliveryJob>

export interface JobPayloads {
  sessions: SessionsQueueJob
  logs: LogsJob
  media: MediaJob
  deliveries: DeliveryJob
}

/** Compiled validators, one per queue: the worker checks every payload before touching it. */
export const jobValidators = {
  sessions: Compile(SessionsQueueJob),
  logs: Compile(LogsJob),
  media: Compile(MediaJob),
  deliveries: Compile(DeliveryJob),
} as const
