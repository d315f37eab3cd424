// The `media` queue. The job is a claim check on an object the gateway staged in S3: verify it
// (size, sha256, sniffed type), copy it to its final key, record it in test_session_media, then
// remove the staged copy. The document is written only once the final object exists, and the
// staged object is removed only once the document exists, so a crash at any point leaves
// something a re-run (or the sweeper) can finish.
import { UnrecoverableError, type Job } from 'bullmq'
import { CopyDestinationOptions, CopySourceOptions } from 'minio'
import type { Document } from 'mongodb'
import { objectKeys } from '../../shared/keys.ts'
import { collections } from '../../shared/mongo.ts'
import { releaseStagedMedia } from '../../shared/staged-media.ts'
import type { MediaJob } from '../../shared/queues.ts'
import { sniffType } from '../../shared/sniff.ts'
import type { Logger } from 'pino'
import { checkNotCancelled, parseReceivedAt, RetryLaterError, validatePayload, type ProcessorDeps } from '../context.ts'
import { markAccepted } from '../../shared/idempotency.ts'
import { describeError, isPermanentDocumentError } from '../mongo-errors.ts'
import { isMissingObject, readObject, type StagedRead } from '../staged-object.ts'
import { insertedId } from '../webhook-fanout.ts'
import { deletedBefore, erasedAfter } from '../deleted-sessions.ts'

export type MediaOutcome = 'stored' | 'replay' | 'already_stored' | 'conflict' | 'deleted'

type MediaResult = { outcome: MediaOutcome; sniffed_type?: string }

/** What one run of a media job works with. */
interface MediaRun {
  deps: ProcessorDeps
  stored: () => Promise<Document | null>
  data: MediaJob
  receivedAt: Date
}

export function createMediaProcessor(deps: ProcessorDeps) {
  const c = collections(deps.db)
  const log = deps.logger.child({ queue: 'media' })
  return async function processMedia(job: Job, _token?: string, signal?: AbortSignal): Promise<MediaResult> {
    const data = validatePayload('media', job.data)
    const ids = { workspace_id: data.workspace_id, session_id: data.session_id, media_id: data.media_id }
    const stored = () => c.media.findOne(ids, { projection: { sha256: 1 } })
    const receivedAt = parseReceivedAt(data.received_at)
    if (await deletedBefore(deps, data, receivedAt, log.child({ jobId: job.id }))) {
      // The staged upload goes too (the deletion may have listed staging/ before it was there).
      await deps.s3.removeObject(data.bucket, data.staging_key)
      await releaseStagedMedia(deps.redis, deps.config.redisPrefix, data.staging_key)
      return { outcome: 'deleted' }
    }
    return storeMedia({ deps, stored, data, receivedAt }, job, log, signal)
  }
}

async function storeMedia(run: MediaRun, job: Job, log: Logger, signal?: AbortSignal): Promise<MediaResult> {
  const { deps, data, stored } = run
  const read = await readStaged(run)
  if (read === 'already_stored') return { outcome: 'already_stored' }
  if (read.size !== data.size || read.sha256 !== data.sha256) {
    // Corruption between gateway and storage: keep the job (and the staged object) for inspection.
    throw new UnrecoverableError(
      `staged object does not match the job: size ${read.size} (job ${data.size}), sha256 ${read.sha256 === data.sha256 ? 'matches' : 'differs'}`,
    )
  }
  const sniffed = sniffType(read.head)
  checkNotCancelled(signal)

  const existing = await stored()
  if (existing && existing.sha256 !== data.sha256) {
    await storeConflict(run, sniffed, String(existing.sha256))
    if (await erasedAfterStoring(run, log)) return { outcome: 'deleted' }
    return { outcome: 'conflict', sniffed_type: sniffed }
  }

  const key = objectKeys.final(data.workspace_id, data.session_id, data.media_id)
  try {
    await copy(deps, data, key, sniffed)
  } catch (err) {
    // Two runs of one job at once (a stalled job picked up again while its first run still
    // copies): the other run stored the photo and removed the staged copy between our read and
    // our copy. Its record is the answer; without this the job failed once and was retried.
    if (!isMissingObject(err)) throw err
    const now = await stored()
    if (now?.sha256 !== data.sha256) throw err
    return { outcome: 'replay', sniffed_type: sniffed }
  }
  checkNotCancelled(signal)
  const doc = mediaDocument(run, key, sniffed)
  const outcome = await insert(deps, doc, 'media')
  if (outcome === 'duplicate') {
    const now = await stored()
    if (now && now.sha256 !== data.sha256) {
      // Only reachable if two different uploads of one media id ran at once, which job ids prevent.
      log.error({ jobId: job.id }, 'media document appeared with other bytes while this job copied its object')
      await storeConflict(run, sniffed, String(now.sha256))
      if (await erasedAfterStoring(run, log)) return { outcome: 'deleted' }
      return { outcome: 'conflict', sniffed_type: sniffed }
    }
  }
  // Deleted while this job stored: nothing of it stays (the staged copy included), nothing is forwarded.
  if (await erasedAfterStoring(run, log)) return { outcome: 'deleted' }
  // Before the staged copy goes: a re-run that finds it gone (readStaged) takes the photo as
  // finished, so its deliveries must be queued by then.
  await deps.webhooks.recordStored({
    event: 'media.stored',
    workspace_id: data.workspace_id,
    session_id: data.session_id,
    extra: data.media_id,
    record_id: outcome === 'inserted' ? insertedId(doc) : undefined,
  })
  await removeStaged(deps, data, data.sha256)
  return { outcome: outcome === 'duplicate' || existing ? 'replay' : 'stored', sniffed_type: sniffed }
}

/** The session was deleted while this job stored: erased again, staged bytes released. */
async function erasedAfterStoring({ deps, data, receivedAt }: MediaRun, log: Logger): Promise<boolean> {
  if (!(await erasedAfter(deps, data, receivedAt, log))) return false
  await releaseStagedMedia(deps.redis, deps.config.redisPrefix, data.staging_key)
  return true
}

/** The staged object's bytes, or 'already_stored' when an earlier run finished the job. */
async function readStaged({ deps, data, stored }: MediaRun): Promise<StagedRead | 'already_stored'> {
  try {
    return await readObject(deps.s3, data.bucket, data.staging_key)
  } catch (err) {
    if (!isMissingObject(err)) throw err
    // A re-run after success (the staged copy is removed last): nothing left to do.
    const existing = await stored()
    if (existing && typeof existing.sha256 === 'string') {
      // The run that removed the object may have died before releasing its bytes; releasing is idempotent.
      await releaseAndMark(deps, data, existing.sha256)
      return 'already_stored'
    }
    // Possibly not visible yet; if it is gone for good, the job ends in the failed set after its attempts.
    throw new RetryLaterError('staged object not found; will retry', { cause: err })
  }
}

/** Removes the staged copy once its document exists, then settles its bytes and idempotency key. */
async function removeStaged(deps: ProcessorDeps, data: MediaJob, acceptedSha: string): Promise<void> {
  await deps.s3.removeObject(data.bucket, data.staging_key)
  // Only after the object is gone: the staged-bytes figure (gateway backpressure) drops once per object.
  await releaseAndMark(deps, data, acceptedSha)
}

async function releaseAndMark(deps: ProcessorDeps, data: MediaJob, acceptedSha: string): Promise<void> {
  await releaseStagedMedia(deps.redis, deps.config.redisPrefix, data.staging_key)
  await markAccepted(deps, 'm', data.workspace_id, data.session_id, acceptedSha, data.media_id)
}

/** Server-side copy with the sniffed type; user metadata lets an operator trace an object back. */
async function copy(deps: ProcessorDeps, data: MediaJob, destKey: string, sniffed: string): Promise<void> {
  await deps.s3.copyObject(
    new CopySourceOptions({ Bucket: data.bucket, Object: data.staging_key }),
    new CopyDestinationOptions({
      Bucket: data.bucket,
      Object: destKey,
      MetadataDirective: 'REPLACE',
      // A real header, not UserMetadata: minio prefixes every UserMetadata key with x-amz-meta-.
      Headers: { 'Content-Type': sniffed },
      UserMetadata: {
        'workspace-id': data.workspace_id,
        'session-id': data.session_id,
        'media-id': data.media_id,
        sha256: data.sha256,
      },
    }),
  )
  // Trust, but check: a copy that came out the wrong size is retried.
  const stat = await deps.s3.statObject(data.bucket, destKey)
  if (stat.size !== data.size) throw new RetryLaterError(`copied object is ${stat.size} bytes, expected ${data.size}; will retry`)
}

async function insert(deps: ProcessorDeps, doc: Record<string, unknown>, what: 'media' | 'conflict') {
  try {
    return await (what === 'conflict' ? deps.writers.conflicts : deps.writers.media).insert(doc)
  } catch (err) {
    if (isPermanentDocumentError(err)) throw new UnrecoverableError(`${what} document refused: ${describeError(err)}`)
    throw err
  }
}

function mediaDocument({ data, receivedAt }: MediaRun, key: string, sniffed: string): Record<string, unknown> {
  return {
    workspace_id: data.workspace_id,
    session_id: data.session_id,
    media_id: data.media_id,
    token_id: data.token_id,
    filename: data.filename,
    content_type: data.content_type,
    sniffed_type: sniffed,
    size: data.size,
    sha256: data.sha256,
    bucket: data.bucket,
    key,
    received_at: receivedAt,
    stored_at: new Date(),
  }
}

/** Same media id, different bytes: keep them under conflicts/ and record it, never overwrite. */
async function storeConflict(run: MediaRun, sniffed: string, originalSha: string): Promise<void> {
  const { deps, data, receivedAt } = run
  const key = objectKeys.conflict(data.workspace_id, data.session_id, data.media_id, data.sha256)
  await copy(deps, data, key, sniffed)
  await insert(
    deps,
    {
      workspace_id: data.workspace_id,
      session_id: data.session_id,
      media_id: data.media_id,
      token_id: data.token_id,
      sha256: data.sha256,
      original_sha256: originalSha,
      received_at: receivedAt,
      bucket: data.bucket,
      key,
      size: data.size,
      filename: data.filename,
      content_type: data.content_type,
      sniffed_type: sniffed,
    },
    'conflict',
  )
  await removeStaged(deps, data, originalSha)
}
