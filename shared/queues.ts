// Queue names and job payload schemas, shared by the gateway (producer) and the workers.
//
// The queue names are persisted in Redis as part of every BullMQ key, so renaming one
// strands the jobs already queued under the old name: change them only with a migration.
import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import type { JobsOptions } from 'bullmq'

export const QUEUE_NAMES = ['sessions', 'logs', 'media'] as const
export type QueueName = (typeof QUEUE_NAMES)[number]

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

/** A session body accepted by the gateway. `body` is the exact request text, kept verbatim. */
export const SessionJob = Type.Object({
  kind: Type.Literal('session'),
  ...Origin,
  sha256: Sha256,
  body: Type.String(),
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
})

export const SessionsQueueJob = Type.Union([SessionJob, ConflictJob])

export const LogsJob = Type.Object({
  kind: Type.Literal('logs'),
  ...Origin,
  sha256: Sha256,
  body: Type.String(),
})

/** Media is never carried in Redis: the job is a claim check on the staged object. */
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
})

export type SessionJob = Static<typeof SessionJob>
export type ConflictJob = Static<typeof ConflictJob>
export type SessionsQueueJob = Static<typeof SessionsQueueJob>
export type LogsJob = Static<typeof LogsJob>
export type MediaJob = Static<typeof MediaJob>

export interface JobPayloads {
  sessions: SessionsQueueJob
  logs: LogsJob
  media: MediaJob
}

/** Compiled validators, one per queue: the worker checks every payload before touching it. */
export const jobValidators = {
  sessions: Compile(SessionsQueueJob),
  logs: Compile(LogsJob),
  media: Compile(MediaJob),
} as const

/**
 * Defaults for every job. Transient failures (a server down) retry with capped exponential
 * backoff and jitter for about a day; after that, and for permanent failures, the job stays in
 * the failed set for inspection and retry: it is never dropped.
 */
export const defaultJobOptions: JobsOptions = {
  attempts: 300,
  backoff: { type: 'capped-jitter', delay: 1000 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: false,
}

/** Capped exponential backoff with full jitter; BullMQ's built-in exponential has no cap. */
export function backoffDelay(attemptsMade: number, baseMs = 1000, capMs = 5 * 60_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attemptsMade, 20))
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2))
}
