// What both ways of finishing a photo share (the upload the gateway wrote once, in
// worker/processors/media.ts, and a photo staged by the earlier layout, in
// worker/staged-media-legacy.ts): the documents they write and how a finished photo is settled.
import { UnrecoverableError } from 'bullmq'
import type { Document } from 'mongodb'
import { markAccepted } from '../shared/idempotency.ts'
import { releaseStagedMedia } from '../shared/staged-media.ts'
import type { MediaJob } from '../shared/queues.ts'
import type { ProcessorDeps } from './context.ts'
import { describeError, isPermanentDocumentError } from './mongo-errors.ts'

export type MediaOutcome = 'stored' | 'replay' | 'already_stored' | 'conflict'

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

/** The test_session_media document; `key` is the object that holds the photo. */
export function mediaDocument({ data, receivedAt }: MediaRun, key: string, sniffed: string): Record<string, unknown> {
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

/** The test_session_conflicts document of a photo that reused a media id with other bytes. */
export function conflictDocument(
  { data, receivedAt }: MediaRun,
  key: string,
  sniffed: string,
  originalSha: string,
): Record<string, unknown> {
  return {
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
  }
}

/** Releases the upload's unsettled bytes (backpressure) and marks its idempotency key accepted; both idempotent. */
export async function releaseAndMark(deps: ProcessorDeps, data: MediaJob, acceptedSha: string): Promise<void> {
  await releaseStagedMedia(deps.redis, deps.config.redisPrefix, data.staging_key)
  await markAccepted(deps, 'm', data.workspace_id, data.session_id, acceptedSha, data.media_id)
}
