// A photo staged by the earlier layout (its job's key is under staging/): jobs queued before an
// upgrade are still finished the way they were accepted. Verify the staged object (size, sha256,
// sniffed type), copy it to its final key, record it in test_session_media, then remove the
// staged copy. The document is written only once the final object exists, and the staged object
// is removed only once the document exists, so a crash at any point leaves something a re-run
// (or the sweeper) can finish. New uploads never come here (worker/processors/media.ts).
import { UnrecoverableError, type Job } from 'bullmq'
import { CopyDestinationOptions, CopySourceOptions } from 'minio'
import type { Logger } from 'pino'
import { objectKeys } from '../shared/keys.ts'
import type { MediaJob } from '../shared/queues.ts'
import { sniffType } from '../shared/sniff.ts'
import { checkNotCancelled, RetryLaterError, type ProcessorDeps } from './context.ts'
import {
  conflictDocument,
  erasedWhileRecording,
  insert,
  mediaDocument,
  recordMediaStored,
  releaseAndMark,
  type MediaResult,
  type MediaRun,
} from './media-records.ts'
import { isMissingObject, readObject, type StagedRead } from './staged-object.ts'
import { insertedId } from './webhook-fanout.ts'

export async function storeStagedMedia(run: MediaRun, job: Job, log: Logger, signal?: AbortSignal): Promise<MediaResult> {
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
    if (await erasedWhileRecording(run, log)) return { outcome: 'deleted' }
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
      if (await erasedWhileRecording(run, log)) return { outcome: 'deleted' }
      return { outcome: 'conflict', sniffed_type: sniffed }
    }
  }
  // Deleted while this job stored: nothing of it stays (the staged copy included), nothing is forwarded.
  if (await erasedWhileRecording(run, log)) return { outcome: 'deleted' }
  // Before the staged copy goes: a re-run that finds it gone (readStaged) takes the photo as
  // finished, so its deliveries must be queued by then.
  await recordMediaStored(run, outcome === 'inserted' ? insertedId(doc) : undefined)
  await removeStaged(deps, data, data.sha256)
  return { outcome: outcome === 'duplicate' || existing ? 'replay' : 'stored', sniffed_type: sniffed }
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

/** Same media id, different bytes: keep them under conflicts/ and record it, never overwrite. */
async function storeConflict(run: MediaRun, sniffed: string, originalSha: string): Promise<void> {
  const { deps, data } = run
  const key = objectKeys.conflict(data.workspace_id, data.session_id, data.media_id, data.sha256)
  await copy(deps, data, key, sniffed)
  await insert(deps, conflictDocument(run, key, sniffed, originalSha), 'conflict')
  await removeStaged(deps, data, originalSha)
}
