// The `sessions` queue: stores a session body in test_sessions, or, when its GUID already holds
// a different body, keeps the new body in test_session_conflicts. Every step is idempotent, so a
// job that runs twice (stalled lock, restart) stores one document.
import { UnrecoverableError, type Job } from 'bullmq'
import type { Document } from 'mongodb'
import type { Logger } from 'pino'
import { collections } from '../../shared/mongo.ts'
import type { ConflictJob, SessionJob } from '../../shared/queues.ts'
import type { ValidationIssue } from '../../shared/session-schema.ts'
import {
  checkNotCancelled,
  insertWithFallback,
  isPlainObject,
  parseReceivedAt,
  RetryLaterError,
  validatePayload,
  type ProcessorDeps,
} from '../context.ts'
import { markAccepted } from '../../shared/idempotency.ts'
import { describeError, isPermanentDocumentError } from '../mongo-errors.ts'
import { buildSessionDocument, sessionFallbackDocument } from '../session-document.ts'
import { insertedId } from '../webhook-fanout.ts'
import { deletedBefore, erasedAfter } from '../deleted-sessions.ts'

export type SessionOutcome = 'stored' | 'replay' | 'conflict' | 'conflict_stored' | 'deleted'

type Collections = ReturnType<typeof collections>
type Run = { deps: ProcessorDeps; c: Collections; log: Logger; job: Job }

export function createSessionsProcessor(deps: ProcessorDeps) {
  const c = collections(deps.db)
  const log = deps.logger.child({ queue: 'sessions' })
  return async function processSession(job: Job, _token?: string, signal?: AbortSignal): Promise<{ outcome: SessionOutcome }> {
    const data = validatePayload('sessions', job.data)
    const receivedAt = parseReceivedAt(data.received_at)
    const run = { deps, c, log, job }
    const jobLog = log.child({ jobId: job.id })
    if (await deletedBefore(deps, data, receivedAt, jobLog)) return { outcome: 'deleted' }
    if (data.kind === 'conflict') return keepConflictBody(run, data, receivedAt)
    return storeSession(run, data, receivedAt, signal)
  }
}

/**
 * The gateway already answered 409; keep the body for operators. The idempotency key belongs to
 * the stored session and is left alone.
 */
async function keepConflictBody({ deps, c, log }: Run, data: ConflictJob, receivedAt: Date): Promise<{ outcome: SessionOutcome }> {
  const original = await storedSha(c, data.workspace_id, data.session_id)
  // The gateway sends a conflict when it cannot tell the stored body's hash (its key was lost):
  // the same body is a replay, not a conflict.
  if (original === data.sha256) return { outcome: 'replay' }
  await storeConflict(deps, data, receivedAt, original)
  if (await erasedAfter(deps, data, receivedAt, log)) return { outcome: 'deleted' }
  return { outcome: 'conflict_stored' }
}

async function storeSession(run: Run, data: SessionJob, receivedAt: Date, signal?: AbortSignal): Promise<{ outcome: SessionOutcome }> {
  const { deps, c, log, job } = run
  const { doc, issues } = sessionDocument(run, data, receivedAt)
  checkNotCancelled(signal)
  const inserted = await insertWithFallback(
    deps.writers.sessions,
    doc,
    (reason) => sessionFallbackDocument(data, receivedAt, reason, issues),
    log.child({ jobId: job.id }),
    'session document',
  )

  let outcome: SessionOutcome = 'stored'
  let acceptedSha = data.sha256
  if (inserted === 'duplicate') {
    checkNotCancelled(signal)
    const existing = await storedSha(c, data.workspace_id, data.session_id)
    // The unique index said "exists" but the read found nothing: retry rather than guess.
    if (existing === null) throw new RetryLaterError('duplicate session reported but not found; will retry')
    if (existing === data.sha256) {
      outcome = 'replay'
    } else {
      await storeConflict(deps, data, receivedAt, existing || null)
      outcome = 'conflict'
      // The key tells replays what is stored for this GUID: the original body.
      acceptedSha = existing
    }
  }
  // Deleted while this job stored: nothing of it stays, nothing is forwarded.
  if (await erasedAfter(deps, data, receivedAt, log.child({ jobId: job.id }))) return { outcome: 'deleted' }
  // Stored now (or by an earlier run of this job): its deliveries are queued before the job
  // completes. A new body for a stored GUID is kept as a conflict and not forwarded.
  if (outcome !== 'conflict')
    await deps.webhooks.recordStored({
      event: 'session.stored',
      workspace_id: data.workspace_id,
      session_id: data.session_id,
      record_id: inserted === 'inserted' ? insertedId(doc) : undefined,
    })
  await markAccepted(deps, 's', data.workspace_id, data.session_id, acceptedSha)
  return { outcome }
}

/** The document to store for a session body, and its validation issues (for the fallback). */
function sessionDocument({ log, job }: Run, data: SessionJob, receivedAt: Date): { doc: Document; issues: ValidationIssue[] } {
  let body: unknown
  try {
    body = JSON.parse(data.body)
  } catch {
    throw new UnrecoverableError('session body is not JSON')
  }
  if (!isPlainObject(body)) throw new UnrecoverableError('session body is not a JSON object')
  try {
    const doc = buildSessionDocument(data, body, receivedAt)
    return { doc, issues: (doc.validation as { errors: ValidationIssue[] }).errors }
  } catch (err) {
    // A bug or a body shape nobody foresaw: keep the record rather than retry for ever.
    log.error({ jobId: job.id, reason: describeError(err) }, 'session normalisation failed; storing the fallback document')
    return { doc: sessionFallbackDocument(data, receivedAt, `normalisation failed: ${describeError(err)}`), issues: [] }
  }
}

/** Keeps a body that reused a GUID; the unique {ws, session, media_id, sha256} index makes it idempotent. */
async function storeConflict(
  deps: ProcessorDeps,
  data: SessionJob | ConflictJob,
  receivedAt: Date,
  originalSha: string | null,
): Promise<void> {
  const doc: Document = {
    workspace_id: data.workspace_id,
    session_id: data.session_id,
    // Media conflicts carry their media id; the unique index includes it.
    media_id: null,
    token_id: data.token_id,
    sha256: data.sha256,
    raw_body: data.body,
    received_at: receivedAt,
    original_sha256: originalSha,
  }
  try {
    await deps.writers.conflicts.insert(doc) // 'duplicate' is a replay of the same conflict: fine
  } catch (err) {
    if (isPermanentDocumentError(err)) throw new UnrecoverableError(`conflict body could not be stored: ${describeError(err)}`)
    throw err
  }
}

async function storedSha(c: Collections, ws: string, session: string): Promise<string | null> {
  const doc = await c.sessions.findOne({ workspace_id: ws, session_id: session }, { projection: { raw_sha256: 1 } })
  if (!doc) return null
  return typeof doc.raw_sha256 === 'string' ? doc.raw_sha256 : ''
}
