// The staging sweeper. The gateway stages media in S3 before it enqueues the job, so a crash or
// a Redis failure between the two leaves an object with no job. Its user metadata carries what
// a job needs (the claim check can be rebuilt from the object alone), so the sweeper re-enqueues
// it under the same deterministic job id: if the job does exist, BullMQ ignores the duplicate.
import type { Queue } from 'bullmq'
import type { Client as S3Client } from 'minio'
import type { Logger } from 'pino'
import { isValidId } from '../shared/ids.ts'
import { jobIds, objectKeys } from '../shared/keys.ts'
import { jobValidators, type MediaJob } from '../shared/queues.ts'
import { periodic } from '../shared/periodic.ts'
import { defaultJobOptions } from '../shared/queue-settings.ts'
import { isMissingObject, readObject } from './staged-object.ts'

export interface SweeperDeps {
  s3: S3Client
  bucket: string
  /** The `media` queue of a shard (every shard, not only those this process consumes), or undefined past REDIS_SHARDS. */
  queue: (shard: number) => Queue | undefined
  logger: Logger
  /** Objects younger than this are left alone: their upload or job is probably still under way. */
  graceMs: number
  intervalMs: number
  /** At most this many objects are handled per sweep, so one sweep stays short. */
  maxPerSweep?: number
}

export interface SweepResult {
  scanned: number
  enqueued: number
  skipped: number
}

const SHA256 = /^[0-9a-f]{64}$/

/** Decodes a URI-encoded metadata value ('' means "none"); throws on malformed encoding. */
function metaText(v: string | undefined): string | null {
  return v ? decodeURIComponent(v) : null
}

/** Rebuilds the media job from a staged object's key and metadata; a string says why it cannot. */
export function jobFromMetadata(
  bucket: string,
  key: string,
  meta: Record<string, unknown>,
  computed: { size: number; sha256: string } | null,
): MediaJob | string {
  const m = (name: string) => (typeof meta[name] === 'string' ? (meta[name] as string) : undefined)
  const ws = m('workspace-id')
  const session = m('session-id')
  const media = m('media-id')
  if (!isValidId(ws) || !isValidId(session) || !isValidId(media)) return 'missing or invalid ids in metadata'
  // The key must be the one the gateway would have built for these ids.
  const parts = key.split('/')
  if (parts.length !== 5 || objectKeys.staging(ws, session, media, parts[4]!) !== key) return 'metadata ids do not match the object key'
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
        (err: Error) => log.warn({ err: err.message?.slice(0, 200) }, 'staging sweep failed'),
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

/** One pass over the staging area. Errors on one object are logged and do not stop the pass. */
async function sweepPass(deps: SweeperDeps, log: Logger, stopping: () => boolean): Promise<SweepResult> {
  const result: SweepResult = { scanned: 0, enqueued: 0, skipped: 0 }
  const objects = await listOld(deps)
  for (const obj of objects) {
    if (stopping()) break
    result.scanned++
    try {
      result[await sweepObject(deps, log, obj.name)]++
    } catch (err) {
      result.skipped++
      log.warn({ key: obj.name, err: (err as Error).message?.slice(0, 200) }, 'sweeping a staged object failed; will try next time')
    }
  }
  if (result.enqueued > 0) log.info(result, 'staging sweep done')
  return result
}

/** Staged objects older than the grace period, at most maxPerSweep of them. */
async function listOld(deps: SweeperDeps): Promise<{ name: string; size: number }[]> {
  const maxPerSweep = deps.maxPerSweep ?? 1000
  const cutoff = Date.now() - deps.graceMs
  const out: { name: string; size: number }[] = []
  const stream = deps.s3.listObjectsV2(deps.bucket, objectKeys.stagingPrefix, true)
  for await (const obj of stream as AsyncIterable<{ name?: string; size?: number; lastModified?: Date }>) {
    if (!obj.name || !obj.lastModified) continue
    if (obj.lastModified.getTime() > cutoff) continue
    out.push({ name: obj.name, size: obj.size ?? 0 })
    if (out.length >= maxPerSweep) {
      stream.destroy()
      break
    }
  }
  return out
}

type Sweep = 'enqueued' | 'skipped'

async function sweepObject(deps: SweeperDeps, log: Logger, name: string): Promise<Sweep> {
  let meta: Record<string, unknown>
  let actualSize: number
  try {
    const stat = await deps.s3.statObject(deps.bucket, name)
    meta = stat.metaData as Record<string, unknown>
    actualSize = stat.size
  } catch (err) {
    if (isMissingObject(err)) return 'skipped' // finished by its job since the listing
    throw err
  }
  // A PUT cut mid-body (the phone lost its network, the gateway stopped or died): some S3
  // servers, the local stack's Versity gateway among them, keep the bytes that did arrive. The
  // gateway records the length the object must have; an object of another length is such a
  // partial upload, never acknowledged (the device retries it), so it is discarded. Finishing
  // it stored a truncated photo and answered the device's own retry 409: the photo was lost
  // (found by faults/shutdown.faults.ts).
  const expected = String(meta.size ?? '')
  if (/^\d+$/.test(expected) && Number(expected) !== actualSize) {
    log.warn({ key: name, size: actualSize, expected: Number(expected) }, 'staged object is a partial upload; discarded')
    await deps.s3.removeObject(deps.bucket, name)
    return 'skipped'
  }
  const computed = await computeMissing(deps, name, meta)
  if (computed === 'gone') return 'skipped'
  if (computed && 'unusable' in computed) return skipUnusable(log, name, computed.unusable)
  const built = jobFromMetadata(deps.bucket, name, meta, computed)
  if (typeof built === 'string') return skipUnusable(log, name, built)
  // The shard the gateway staged it for; objects staged before shards existed have none (shard 0).
  const shard = /^\d{1,2}$/.test(String(meta['redis-shard'] ?? '')) ? Number(meta['redis-shard']) : 0
  return enqueueOrphan(deps, log, name, built, shard)
}

function skipUnusable(log: Logger, name: string, reason: string): Sweep {
  log.warn({ key: name, reason }, 'staged object with unusable metadata; skipped')
  return 'skipped'
}

/**
 * Size and sha256 read from the object when its metadata lacks them: null when the metadata has
 * them, 'gone' when the object disappeared meanwhile, `unusable` when the rest of the metadata
 * is unusable anyway.
 */
async function computeMissing(
  deps: SweeperDeps,
  name: string,
  meta: Record<string, unknown>,
): Promise<{ size: number; sha256: string } | null | 'gone' | { unusable: string }> {
  if (SHA256.test(String(meta.sha256 ?? '')) && /^\d+$/.test(String(meta.size ?? ''))) return null
  // The gateway learns size and sha256 only after streaming the upload, so they are usually
  // not in the metadata: check the rest first, then read the object to compute them (this
  // is the rare orphan path, so the extra read is fine).
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
  log.info({ key: name, jobId }, 'orphaned staged object re-enqueued')
  return 'enqueued'
}
