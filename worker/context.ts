// What every processor is given, and the steps they share: payload validation, marking the
// idempotency key accepted, and "insert, or store a fallback document if this one can never go in".
import { UnrecoverableError } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import type { Client as S3Client } from 'minio'
import type { Db, Document } from 'mongodb'
import type { Logger } from 'pino'
import type { WorkerConfig } from './config.ts'
import { jobValidators, type JobPayloads } from '../shared/queues.ts'
import type { BatchWriter, InsertOutcome } from './batch-writer.ts'
import { AppError } from '../shared/errors.ts'
import { describeError, isPermanentDocumentError } from './mongo-errors.ts'
import type { WebhookFanout } from './webhook-fanout.ts'
import type { TombstoneCheck } from '../deletion/tombstones.ts'

export interface Writers {
  sessions: BatchWriter
  conflicts: BatchWriter
  logs: BatchWriter
  logBatches: BatchWriter
  media: BatchWriter
}

export interface ProcessorDeps {
  config: WorkerConfig
  logger: Logger
  redis: RedisClient
  db: Db
  s3: S3Client
  writers: Writers
  /** Queues a stored record's outbound webhook deliveries (before the record's job completes). */
  webhooks: WebhookFanout
  /** Whether a job's session was deleted (worker/deleted-sessions.ts). */
  tombstones: TombstoneCheck
}

/** Checks a job payload against its queue's schema; a payload that fails can never succeed. */
export function validatePayload<Q extends keyof JobPayloads>(queue: Q, data: unknown): JobPayloads[Q] {
  const validator = jobValidators[queue]
  if (!validator.Check(data)) {
    const first = [...validator.Errors(data)].slice(0, 3).map((e) => `${e.instancePath || '/'} ${e.message}`)
    throw new UnrecoverableError(`invalid ${queue} job payload: ${first.join('; ')}`)
  }
  return data as JobPayloads[Q]
}

/** The gateway's received_at; a payload whose timestamp is not a date is invalid. */
export function parseReceivedAt(value: string): Date {
  const d = new Date(value)
  if (Number.isNaN(d.getTime())) throw new UnrecoverableError('invalid job payload: received_at is not a date')
  return d
}

/**
 * Inserts `doc`; if the database can never accept it (shape, size), inserts `fallback(err)`
 * instead, so the record is still kept. Transient errors are rethrown for BullMQ to retry. If
 * even the fallback is refused, the job fails for good (its payload stays in the failed set).
 */
export async function insertWithFallback(
  writer: BatchWriter,
  doc: Document,
  fallback: (reason: string) => Document,
  logger: Logger,
  what: string,
): Promise<InsertOutcome> {
  try {
    return await writer.insert(doc)
  } catch (err) {
    if (!isPermanentDocumentError(err)) throw err
    const reason = describeError(err)
    logger.warn({ what, reason }, 'document refused; storing the fallback document')
    try {
      return await writer.insert(fallback(reason))
    } catch (err2) {
      if (isPermanentDocumentError(err2))
        throw new UnrecoverableError(`${what}: even the fallback document was refused: ${describeError(err2)}`)
      throw err2
    }
  }
}

/**
 * Throws when the worker is shutting down and has cancelled this job (BullMQ passes the
 * processor an AbortSignal). Called between steps, so a cancelled job stops at a step boundary;
 * it is retried later, and every step is idempotent.
 */
export function checkNotCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new JobCancelledError()
}

/**
 * A step found things not yet as they must be (an object not visible yet, a copy of the wrong
 * size): this attempt fails, and BullMQ runs the job again after its backoff.
 */
export class RetryLaterError extends AppError {
  readonly code = 'retry_later'
}

/** A job stopped at a step boundary because the worker is shutting down; BullMQ runs it again later. */
export class JobCancelledError extends AppError {
  readonly code = 'job_cancelled'
  constructor() {
    super('job cancelled: the worker is shutting down; it will run again')
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Reads an own property only: a client key named "constructor" must not find Object.prototype's. */
export function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined
}
