// The `media` queue. The gateway wrote the photo once, to a key unique to its upload, and hashed
// and sniffed it on the way; the job is a claim check on that upload. The worker never reads the
// bytes back: it checks the object's length (a HEAD), then records in MongoDB which upload is
// canonical (the media document's `key`).
//
// - First upload of a media id: the document names this upload.
// - The same bytes again (a device retry): the document already names another upload, so this
//   copy is removed.
// - Other bytes for the same media id: the upload stays where it was written and a
//   test_session_conflicts document names it (a second upload of those same other bytes is
//   removed the same way as a retry).
//
// Settling comes last: the unsettled-bytes entry (backpressure), the idempotency key, then the
// upload's pending/ marker. Until the marker is gone the sweeper can re-enqueue the upload, and
// every step above is idempotent, so a crash at any point leaves something a re-run finishes.
// A job from the earlier layout (its key under staging/) is finished the earlier way.
//
// A deleted session (README "Deletion", worker/deleted-sessions.ts): checked before anything is
// recorded, when the upload and its marker are removed (the deletion may have listed the
// session's prefixes before the gateway wrote them), and again once the photo is recorded, when
// the session is erased again.
import { UnrecoverableError, type Job } from 'bullmq'
import type { Logger } from 'pino'
import { objectKeys } from '../../shared/keys.ts'
import { collections } from '../../shared/mongo.ts'
import type { MediaJob } from '../../shared/queues.ts'
import { checkNotCancelled, parseReceivedAt, RetryLaterError, validatePayload, type ProcessorDeps } from '../context.ts'
import {
  conflictDocument,
  erasedWhileRecording,
  insert,
  mediaDocument,
  recordMediaStored,
  releaseAndMark,
  removeDeletedUpload,
  type MediaResult,
  type MediaRun,
} from '../media-records.ts'
import { isMissingObject } from '../staged-object.ts'
import { storeStagedMedia } from '../staged-media-legacy.ts'
import { insertedId } from '../webhook-fanout.ts'
import { deletedBefore } from '../deleted-sessions.ts'

export type { MediaOutcome } from '../media-records.ts'

export function createMediaProcessor(deps: ProcessorDeps) {
  const c = collections(deps.db)
  const log = deps.logger.child({ queue: 'media' })
  return async function processMedia(job: Job, _token?: string, signal?: AbortSignal): Promise<MediaResult> {
    const data = validatePayload('media', job.data)
    const ids = { workspace_id: data.workspace_id, session_id: data.session_id, media_id: data.media_id }
    const stored = () => c.media.findOne(ids, { projection: { sha256: 1, key: 1 } })
    const run: MediaRun = { deps, stored, data, receivedAt: parseReceivedAt(data.received_at) }
    if (await deletedBefore(deps, data, run.receivedAt, log.child({ jobId: job.id }))) {
      await removeDeletedUpload(run)
      return { outcome: 'deleted' }
    }
    if (data.staging_key.startsWith(objectKeys.stagingPrefix)) return storeStagedMedia(run, job, log, signal)
    return recordUpload(run, log, signal)
  }
}

async function recordUpload(run: MediaRun, log: Logger, signal?: AbortSignal): Promise<MediaResult> {
  const { deps, data, stored } = run
  const key = data.staging_key
  if (!objectKeys.isUploadOf(key, data.workspace_id, data.session_id, data.media_id)) {
    throw new UnrecoverableError('the job names an object that is not an upload of its photo')
  }
  const sniffed = data.sniffed_type ?? 'application/octet-stream'
  const size = await uploadedSize(deps, data)
  if (size === null) return alreadySettled(run)
  // The gateway enqueues only after S3 acknowledged the whole body, and the sweeper re-enqueues
  // only uploads of their recorded length; another length means the object changed since.
  if (size !== data.size) throw new UnrecoverableError(`uploaded object is ${size} bytes, the job says ${data.size}`)
  checkNotCancelled(signal)

  // Insert first: the first upload of a media id, by far the usual case, costs one write and no
  // read. Only a duplicate key (a device's retry, or other bytes for this media id) reads what is
  // stored, as the sessions queue does. (On FerretDB's SQLite backend a read by these three fields
  // scans the whole collection: a read before every insert made each photo slower than the last.)
  const doc = mediaDocument(run, key, sniffed)
  const inserted = (await insert(deps, doc, 'media')) === 'inserted'
  let canonical = key
  let recordId: string | undefined
  if (inserted) recordId = insertedId(doc)
  else {
    const existing = await stored()
    if (existing && existing.sha256 !== data.sha256) return recordConflict(run, sniffed, String(existing.sha256), log)
    // A document without a key (none is written so) is taken to name this upload: never remove what might be the photo.
    if (typeof existing?.key === 'string') canonical = existing.key
  }
  // Deleted while this job recorded: nothing of it stays (this upload and its marker included),
  // nothing is forwarded.
  if (await erasedWhileRecording(run, log)) return { outcome: 'deleted' }
  // Before the marker goes: a re-run that finds the upload settled takes the photo as finished,
  // so its deliveries must be queued by then.
  await recordMediaStored(run, recordId)
  // Another upload of these same bytes is canonical: this one is a retry's copy.
  if (canonical !== key) await deps.s3.removeObject(data.bucket, key)
  await settle(deps, data, data.sha256)
  return { outcome: inserted ? 'stored' : 'replay', sniffed_type: sniffed }
}

/** The upload's length, or null when it is gone. */
async function uploadedSize(deps: ProcessorDeps, data: MediaJob): Promise<number | null> {
  try {
    return (await deps.s3.statObject(data.bucket, data.staging_key)).size
  } catch (err) {
    if (isMissingObject(err)) return null
    throw err
  }
}

/**
 * The upload is gone. A re-run after a run that removed it as a retry's copy: the photo is
 * recorded, only settling may be left. Otherwise it may not be visible yet; if it is gone for
 * good, the job ends in the failed set after its attempts.
 */
async function alreadySettled(run: MediaRun): Promise<MediaResult> {
  const { deps, data } = run
  const existing = await run.stored()
  if (existing && existing.sha256 === data.sha256) {
    await settle(deps, data, data.sha256)
    return { outcome: 'already_stored' }
  }
  if (existing && (await keptConflict(deps, data))) {
    await settle(deps, data, String(existing.sha256))
    return { outcome: 'already_stored' }
  }
  throw new RetryLaterError('uploaded object not found; will retry')
}

function keptConflict(deps: ProcessorDeps, data: MediaJob) {
  const { workspace_id, session_id, media_id, sha256 } = data
  return collections(deps.db).conflicts.findOne({ workspace_id, session_id, media_id, sha256 }, { projection: { key: 1 } })
}

/** Same media id, other bytes: the upload stays where it was written, and a conflicts document names it. */
async function recordConflict(run: MediaRun, sniffed: string, originalSha: string, log: Logger): Promise<MediaResult> {
  const { deps, data } = run
  const key = data.staging_key
  if ((await insert(deps, conflictDocument(run, key, sniffed, originalSha), 'conflict')) !== 'inserted') {
    // These same other bytes were kept before (a retry of the conflicting upload): keep one copy.
    const kept = await keptConflict(deps, data)
    if (kept && kept.key !== key) await deps.s3.removeObject(data.bucket, key)
  }
  if (await erasedWhileRecording(run, log)) return { outcome: 'deleted' }
  await settle(deps, data, originalSha)
  return { outcome: 'conflict', sniffed_type: sniffed }
}

/** Last: the upload's bytes and idempotency key, then its marker (after which the sweeper no longer sees it). */
async function settle(deps: ProcessorDeps, data: MediaJob, acceptedSha: string): Promise<void> {
  await releaseAndMark(deps, data, acceptedSha)
  const marker = objectKeys.pendingOf(data.staging_key)
  if (marker) await deps.s3.removeObject(data.bucket, marker)
}
