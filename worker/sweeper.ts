// The upload sweeper. The gateway writes a photo to S3 before it enqueues the job, so a crash or
// a Redis failure between the two (or after the 201: Redis lost the job) leaves an upload with no
// job. Its user metadata carries what a job needs (the claim check can be rebuilt from the object
// alone), so the sweeper re-enqueues it under the same deterministic job id, and the job decides
// what the upload is (canonical, a retry's copy, a conflict).
//
// The sweeper finds unsettled uploads through their pending/ markers (the gateway writes one
// before each upload, the job removes it last), so it never lists the photos themselves. It
// removes only what can never become the photo, once older than the grace period: an upload of
// another length than the gateway recorded (a PUT cut mid-body, which some S3 servers keep), and
// a marker whose upload never arrived. Everything else is left to a job: one still to run, or
// one it enqueues. One exception bounds how long an unsettled photo is kept: an upload whose own
// job failed for good and was not retried within UPLOAD_EXPIRY_DAYS is removed, unless a document
// names it (the job may have failed after recording it). Objects staged by the earlier layout
// (under staging/) are swept as before; the bucket's lifecycle rule expires those.
import type { Queue } from 'bullmq'
import type { Client as S3Client } from 'minio'
import type { Logger } from 'pino'
import { isValidId } from '../shared/ids.ts'
import { jobIds, objectKeys } from '../shared/keys.ts'
import { jobValidators, type MediaJob } from '../shared/queues.ts'
import { periodic } from '../shared/periodic.ts'
import { defaultJobOptions } from '../shared/queue-settings.ts'
import { sniffType } from '../shared/sniff.ts'
import { isMissingObject, readObject } from './staged-object.ts'

export interface SweeperDeps {
  s3: S3Client
  bucket: string
  /** The `media` queue of a shard (every shard, not only those this process consumes), or undefined past REDIS_SHARDS. */
  queue: (shard: number) => Queue | undefined
  logger: Logger
  /** Objects younger than this are left alone: their upload or job is probably still under way. */
  graceMs: number
  /** An upload whose own job failed for good, and that no document names, is removed once its marker is this old. */
  expiryMs: number
  /** True if a test_session_media or test_session_conflicts document names this object as the photo's. */
  named: (ids: { workspace_id: string; session_id: string; media_id: string }, key: string) => Promise<boolean>
  intervalMs: number
  /** At most this many objects are handled per sweep, so one sweep stays short. */
  maxPerSweep?: number
}

export interface SweepResult {
  scanned: number
  enqueued: number
  /** Partial uploads and markers without an upload, removed. */
  removed: number
  skipped: number
}

const SHA256 = /^[0-9a-f]{64}$/

/** Decodes a URI-encoded metadata value ('' means "none"); throws on malformed encoding. */
function metaText(v: string | undefined): string | null {
  return v ? decodeURIComponent(v) : null
}

/** Rebuilds the media job from an upload's (or a staged object's) key and metadata; a string says why it cannot. */
export function jobFromMetadata(
  bucket: string,
  key: string,
  meta: Record<string, unknown>,
  computed: { size: number; sha256: string; head?: Buffer } | null,
): MediaJob | string {
  const m = (name: string) => (typeof meta[name] === 'string' ? (meta[name] as string) : undefined)
  const ws = m('workspace-id')
  const session = m('session-id')
  const media = m('media-id')
  if (!isValidId(ws) || !isValidId(session) || !isValidId(media)) return 'missing or invalid ids in metadata'
  // The key must be the one the gateway would have built for these ids.
  const parts = key.split('/')
  const staged = key.startsWith(objectKeys.stagingPrefix)
  const built = parts.length === 5 && (staged ? objectKeys.staging : objectKeys.upload)(ws, session, media, parts[4]!)
  if (built !== key || (!staged && !objectKeys.isPhotoOf(key, ws, session, media))) return 'metadata ids do not match the object key'
  let filename: string | null
  let contentType: string | null
  try {
    filename = metaText(m('filename'))
    // minio folds x-amz-meta-content-type and the object's own Content-Type header into one
    // 'content-type' entry; a dedicated name (if the gateway ever sets one) is unambiguous.
    contentType = metaText(m('declared-content-type') ?? m('content-type'))
  } catch {
    return 'malformed URI encoding in metadata'
  }
  const metaSha = m('sha256')
  const metaSize = m('size')
  const job = {
    kind: 'media' as const,
    workspace_id: ws,
    session_id: session,
    media_id: media,
    token_id: m('token-id') ?? '',
    received_at: m('received-at') ?? '',
    bucket,
    staging_key: key,
    size: metaSize !== undefined && /^\d+$/.test(metaSize) ? Number(metaSize) : (computed?.size ?? -1),
    sha256: metaSha !== undefined && SHA256.test(metaSha) ? metaSha : (computed?.sha256 ?? ''),
    filename,
    content_type: contentType,
    // An upload's job carries what the gateway sniffed; a staged object's job sniffs it itself.
    ...(staged ? {} : { sniffed_type: computed?.head ? sniffType(computed.head) : 'application/octet-stream' }),
  }
  if (Number.isNaN(new Date(job.received_at).getTime())) return 'invalid received-at in metadata'
  if (!jobValidators.media.Check(job)) {
    const first = [...jobValidators.media.Errors(job)][0]
    return `metadata does not make a valid job (${first ? `${first.instancePath} ${first.message}` : 'unknown'})`
  }
  return job
}

export function createSweeper(deps: SweeperDeps) {
  const log = deps.logger.child({ component: 'sweeper' })
  // Set by stop(): a pass under way ends after the object it is on.
  let stopping = false
  const sweepOnce = () => sweepPass(deps, log, () => stopping)
  const loop = periodic(
    () =>
      sweepOnce().then(
        () => {},
        (err: Error) => log.warn({ err: err.message?.slice(0, 200) }, 'upload sweep failed'),
      ),
    { intervalMs: deps.intervalMs },
  )
  return {
    sweepOnce,
    start(): void {
      stopping = false
      loop.start()
    },
    async stop(): Promise<void> {
      stopping = true
      await loop.stop()
    },
  }
}

/** One pass over the markers, then the earlier layout's staging area. Errors on one object are logged and do not stop the pass. */
async function sweepPass(deps: SweeperDeps, log: Logger, stopping: () => boolean): Promise<SweepResult> {
  const result: SweepResult = { scanned: 0, enqueued: 0, removed: 0, skipped: 0 }
  for (const prefix of [objectKeys.pendingPrefix, objectKeys.stagingPrefix]) {
    const objects = await listOld(deps, prefix)
    for (const obj of objects) {
      if (stopping()) break
      result.scanned++
      try {
        result[prefix === objectKeys.pendingPrefix ? await sweepMarker(deps, log, obj) : await sweepStaged(deps, log, obj.name)]++
      } catch (err) {
        result.skipped++
        log.warn({ key: obj.name, err: (err as Error).message?.slice(0, 200) }, 'sweeping an upload failed; will try next time')
      }
    }
  }
  if (result.enqueued > 0 || result.removed > 0) log.info(result, 'upload sweep done')
  return result
}

/** Objects under `prefix` older than the grace period, at most maxPerSweep of them. */
interface Listed {
  name: string
  lastModified: Date
}

async function listOld(deps: SweeperDeps, prefix: string): Promise<Listed[]> {
  const maxPerSweep = deps.maxPerSweep ?? 1000
  const cutoff = Date.now() - deps.graceMs
  const out: Listed[] = []
  const stream = deps.s3.listObjectsV2(deps.bucket, prefix, true)
  for await (const obj of stream as AsyncIterable<{ name?: string; size?: number; lastModified?: Date }>) {
    if (!obj.name || !obj.lastModified) continue
    if (obj.lastModified.getTime() > cutoff) continue
    out.push({ name: obj.name, lastModified: obj.lastModified })
    if (out.length >= maxPerSweep) {
      stream.destroy()
      break
    }
  }
  return out
}

type Sweep = 'enqueued' | 'removed' | 'skipped'

/** An object's metadata and length, or null when it is gone. */
async function statOf(deps: SweeperDeps, name: string): Promise<{ meta: Record<string, unknown>; size: number } | null> {
  try {
    const stat = await deps.s3.statObject(deps.bucket, name)
    return { meta: stat.metaData as Record<string, unknown>, size: stat.size }
  } catch (err) {
    if (isMissingObject(err)) return null
    throw err
  }
}

/**
 * A PUT cut mid-body (the phone lost its network, the gateway stopped or died): some S3 servers,
 * the local stack's Versity gateway among them, keep the bytes that did arrive. The gateway
 * records the length the object must have; an object of another length is such a partial upload,
 * never acknowledged (the device retries it). Finishing it stored a truncated photo and answered
 * the device's own retry 409: the photo was lost (found by faults/shutdown.faults.ts).
 */
function isPartial(meta: Record<string, unknown>, actualSize: number): number | null {
  const expected = String(meta.size ?? '')
  return /^\d+$/.test(expected) && Number(expected) !== actualSize ? Number(expected) : null
}

/** The shard the gateway wrote it for; objects staged before shards existed have none (shard 0). */
const shardOf = (meta: Record<string, unknown>) => (/^\d{1,2}$/.test(String(meta['redis-shard'] ?? '')) ? Number(meta['redis-shard']) : 0)

/** One pending/ marker older than the grace period: its upload is unsettled. */
async function sweepMarker(deps: SweeperDeps, log: Logger, { name: marker, lastModified }: Listed): Promise<Sweep> {
  const upload = objectKeys.uploadOfPending(marker)!
  const [, ws, session, media] = marker.split('/')
  if (!isValidId(ws) || !isValidId(session) || !isValidId(media) || !objectKeys.isPhotoOf(upload, ws, session, media)) {
    return skipUnusable(log, marker, 'not a marker the gateway writes')
  }
  // Settled since the listing; or listed for ever while S3 says it does not exist (distributed
  // MinIO that lost a node while it coordinated the marker's DELETE): either way nothing to do.
  if (!(await statOf(deps, marker))) return 'skipped'
  const stat = await statOf(deps, upload)
  if (!stat) {
    // The upload never arrived (the gateway or its PUT failed after the marker; the device got
    // no 201), or its job removed it as a retry's copy and stopped before the marker.
    await deps.s3.removeObject(deps.bucket, marker)
    return 'removed'
  }
  const expected = isPartial(stat.meta, stat.size)
  if (expected !== null) {
    log.warn({ key: upload, size: stat.size, expected }, 'upload is a partial upload; discarded')
    await deps.s3.removeObject(deps.bucket, upload)
    await deps.s3.removeObject(deps.bucket, marker)
    return 'removed'
  }
  const shard = shardOf(stat.meta)
  const queue = deps.queue(shard)
  if (!queue) return skipUnusable(log, marker, `its shard ${shard} is beyond REDIS_SHARDS`)
  const job = await queue.getJob(jobIds.media(ws, session, media))
  const state = job ? await job.getState() : 'none'
  if (state === 'failed' && job?.data?.staging_key === upload && Date.now() - lastModified.getTime() > deps.expiryMs) {
    if (await deps.named({ workspace_id: ws, session_id: session, media_id: media }, upload)) return 'skipped'
    log.warn({ key: upload, jobId: job.id }, 'upload whose job failed for good expired unretried; removed')
    await deps.s3.removeObject(deps.bucket, upload)
    await deps.s3.removeObject(deps.bucket, marker)
    return 'removed'
  }
  // A job still to run (or failed, for an operator to retry) settles this upload or, if it is
  // another upload's, leaves it for a later sweep.
  if (state !== 'none' && state !== 'completed') return 'skipped'
  // Its job is lost. Rebuilding it takes the sha256, which only the gateway knew: read the upload
  // once (the one read of a photo by our own code, on this rare path only).
  const pre = jobFromMetadata(deps.bucket, upload, stat.meta, { size: 0, sha256: '0'.repeat(64) })
  if (typeof pre === 'string') return skipUnusable(log, marker, pre)
  let computed
  try {
    computed = await readObject(deps.s3, deps.bucket, upload)
  } catch (err) {
    if (isMissingObject(err)) return 'skipped'
    throw err
  }
  const built = jobFromMetadata(deps.bucket, upload, stat.meta, computed)
  if (typeof built === 'string') return skipUnusable(log, marker, built)
  return enqueueOrphan(deps, log, upload, built, shard)
}

/** An object staged by the earlier layout: finished the way it was accepted. */
async function sweepStaged(deps: SweeperDeps, log: Logger, name: string): Promise<Sweep> {
  const stat = await statOf(deps, name)
  if (!stat) return 'skipped' // finished by its job since the listing
  const { meta } = stat
  const expected = isPartial(meta, stat.size)
  if (expected !== null) {
    log.warn({ key: name, size: stat.size, expected }, 'staged object is a partial upload; discarded')
    await deps.s3.removeObject(deps.bucket, name)
    return 'removed'
  }
  const computed = await computeMissing(deps, name, meta)
  if (computed === 'gone') return 'skipped'
  if (computed && 'unusable' in computed) return skipUnusable(log, name, computed.unusable)
  const built = jobFromMetadata(deps.bucket, name, meta, computed)
  if (typeof built === 'string') return skipUnusable(log, name, built)
  return enqueueOrphan(deps, log, name, built, shardOf(meta))
}

function skipUnusable(log: Logger, name: string, reason: string): Sweep {
  log.warn({ key: name, reason }, 'upload with unusable metadata; skipped')
  return 'skipped'
}

/**
 * Size and sha256 read from a staged object when its metadata lacks them: null when the metadata
 * has them, 'gone' when the object disappeared meanwhile, `unusable` when the rest of the metadata
 * is unusable anyway.
 */
async function computeMissing(
  deps: SweeperDeps,
  name: string,
  meta: Record<string, unknown>,
): Promise<{ size: number; sha256: string } | null | 'gone' | { unusable: string }> {
  if (SHA256.test(String(meta.sha256 ?? '')) && /^\d+$/.test(String(meta.size ?? ''))) return null
  const pre = jobFromMetadata(deps.bucket, name, meta, { size: 0, sha256: '0'.repeat(64) })
  if (typeof pre === 'string') return { unusable: pre }
  try {
    return await readObject(deps.s3, deps.bucket, name)
  } catch (err) {
    if (isMissingObject(err)) return 'gone'
    throw err
  }
}

/** Enqueues the rebuilt job under its deterministic id, unless a job of that id is still to run. */
async function enqueueOrphan(deps: SweeperDeps, log: Logger, name: string, job: MediaJob, shard: number): Promise<Sweep> {
  const jobId = jobIds.media(job.workspace_id, job.session_id, job.media_id)
  const queue = deps.queue(shard)
  if (!queue) return skipUnusable(log, name, `its shard ${shard} is beyond REDIS_SHARDS`)
  const existing = await queue.getJob(jobId)
  if (existing) {
    const state = await existing.getState()
    // A completed job is kept for a while; this object is a second upload of the same media
    // (e.g. the device retried after a failed enqueue), so the completed record gives way.
    if (state !== 'completed') return 'skipped'
    await existing.remove()
  }
  await queue.add('media', job, { ...defaultJobOptions, jobId })
  log.info({ key: name, jobId }, 'orphaned upload re-enqueued')
  return 'enqueued'
}
