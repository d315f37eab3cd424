// What both ways of finishing a photo share (the upload the gateway wrote once, in
// worker/processors/media.ts, and a photo staged by the earlier layout, in
// worker/staged-media-legacy.ts): the documents they write and how a finished photo is settled.
import { UnrecoverableError } from 'bullmq'
import type { Document } from 'mongodb'
import type { Logger } from 'pino'
import { markAccepted } from '../shared/idempotency.ts'
import { objectKeys } from '../shared/keys.ts'
import { releaseStagedMedia } from '../shared/staged-media.ts'
import type { MediaJob } from '../shared/queues.ts'
import type { ProcessorDeps } from './context.ts'
import { erasedAfter } from './deleted-sessions.ts'
import { describeError, isPermanentDocumentError } from './mongo-errors.ts'

export type MediaOutcome = 'stored' | 'replay' | 'already_stored' | 'conflict' | 'deleted'

export type MediaResult = { outcome: MediaOutcome; sniffed_type?: string }

/** What one run of a media job works with. */
export interface MediaRun {
  deps: ProcessorDeps
  /** The photo's media document (sha256 and key), if any. */
  stored: () => Promise<Document | null>
  data: MediaJob
  receivedAt: Date
}

export async function insert(deps: ProcessorDeps, doc: Record<string, unknown>, what: 'media' | 'conflict') {
  try {
    return await (what === 'conflict' ? deps.writers.conflicts : deps.writers.media).insert(doc)
  } catch (err) {
    if (isPermanentDocumentError(err)) throw new UnrecoverableError(`${what} document refused: ${describeError(err)}`)
    throw err
  }
}

/**
 * Queues the photo's media.stored deliveries. Both ways call it before the job settles: a re-run
 * that finds the job settled takes the photo as finished, so its deliveries must be queued by then.
 */
export async function recordMediaStored({ deps, data }: MediaRun, recordId: string | undefined): Promise<void> {
  await deps.webhooks.recordStored({
    event: 'media.stored',
    workspace_id: data.workspace_id,
    session_id: data.session_id,
    extra: data.media_id,
    record_id: recordId,
  })
}

/** The test_session_media document; `key` is the object that holds the photo. */
export function mediaDocument(run: MediaRun, key: string, sniffed: string): Record<string, unknown> {
  return { ...photoFields(run, key, sniffed), stored_at: new Date() }
}

/** What the media and the conflicts document both say of one upload. */
function photoFields({ data, receivedAt }: MediaRun, key: string, sniffed: string): Record<string, unknown> {
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
  }
}

/** The test_session_conflicts document of a photo that reused a media id with other bytes. */
export function conflictDocument(run: MediaRun, key: string, sniffed: string, originalSha: string): Record<string, unknown> {
  return { ...photoFields(run, key, sniffed), original_sha256: originalSha }
}

/** Releases the upload's unsettled bytes (backpressure) and marks its idempotency key accepted; both idempotent. */
export async function releaseAndMark(deps: ProcessorDeps, data: MediaJob, acceptedSha: string): Promise<void> {
  await releaseStagedMedia(deps.redis, deps.config.redisPrefix, data.staging_key)
  await markAccepted(deps, 'm', data.workspace_id, data.session_id, acceptedSha, data.media_id)
}

/**
 * The job's session is deleted: its upload goes (the deletion may have listed the session's
 * prefixes before the gateway wrote it), with its pending/ marker, and its bytes are released
 * from the unsettled-bytes figure. The idempotency key is not marked: nothing was stored.
 */
export async function removeDeletedUpload({ deps, data }: MediaRun): Promise<void> {
  const key = data.staging_key
  // Only a key of this job's own photo: a job's key is never trusted to name another object.
  const own = `${data.workspace_id}/${data.session_id}/${data.media_id}/`
  if (key.startsWith(objectKeys.stagingPrefix + own) || objectKeys.isUploadOf(key, data.workspace_id, data.session_id, data.media_id)) {
    await deps.s3.removeObject(data.bucket, key)
    // After the upload: a marker left by a crash here is one whose upload is gone, which the sweeper removes.
    const marker = objectKeys.pendingOf(key)
    if (marker) await deps.s3.removeObject(data.bucket, marker)
  }
  await releaseStagedMedia(deps.redis, deps.config.redisPrefix, key)
}

/**
 * After recording: when the session was deleted meanwhile, it is erased again (its documents,
 * uploads and markers) and this upload is released; true when it was.
 */
export async function erasedWhileRecording(run: MediaRun, log: Logger): Promise<boolean> {
  if (!(await erasedAfter(run.deps, run.data, run.receivedAt, log))) return false
  await removeDeletedUpload(run)
  return true
}
