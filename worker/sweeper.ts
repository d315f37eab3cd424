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
import { defaultJobOptions } from '../shared/queue-settings.ts'
import { isMissingObject, readObject } from './staged-object.ts'

export interface SweeperDeps {
  s3: S3Client
  bucket: string
  /** The `media` queue, with the same prefix as the workers. */
  queue: Queue
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
  const maxPerSweep = deps.maxPerSweep ?? 1000
  let timer: NodeJS.Timeout | null = null
  let running: Promise<unknown> | null = null
  let stopped = false

  async function listOld(): Promise<{ name: string; size: number }[]> {
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

  async function sweepObject(name: string): Promise<'enqueued' | 'skipped'> {
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
    let computed: { size: number; sha256: string } | null = null
    if (!SHA256.test(String(meta.sha256 ?? '')) || !/^\d+$/.test(String(meta.size ?? ''))) {
      // The gateway learns size and sha256 only after streaming the upload, so they are usually
      // not in the metadata: check the rest first, then read the object to compute them (this
      // is the rare orphan path, so the extra read is fine).
      const pre = jobFromMetadata(deps.bucket, name, meta, { size: 0, sha256: '0'.repeat(64) })
      if (typeof pre === 'string') {
        log.warn({ key: name, reason: pre }, 'staged object with unusable metadata; skipped')
        return 'skipped'
      }
      try {
        computed = await readObject(deps.s3, deps.bucket, name)
      } catch (err) {
        if (isMissingObject(err)) return 'skipped'
        throw err
      }
    }
    const built = jobFromMetadata(deps.bucket, name, meta, computed)
    if (typeof built === 'string') {
      log.warn({ key: name, reason: built }, 'staged object with unusable metadata; skipped')
      return 'skipped'
    }
    const jobId = jobIds.media(built.workspace_id, built.session_id, built.media_id)
    const existing = await deps.queue.getJob(jobId)
    if (existing) {
      const state = await existing.getState()
      // A completed job is kept for a while; this object is a second upload of the same media
      // (e.g. the device retried after a failed enqueue), so the completed record gives way.
      if (state !== 'completed') return 'skipped'
      await existing.remove()
    }
    await deps.queue.add('media', built, { ...defaultJobOptions, jobId })
    log.info({ key: name, jobId }, 'orphaned staged object re-enqueued')
    return 'enqueued'
  }

  /** One pass over the staging area. Errors on one object are logged and do not stop the pass. */
  async function sweepOnce(): Promise<SweepResult> {
    const result: SweepResult = { scanned: 0, enqueued: 0, skipped: 0 }
    const objects = await listOld()
    for (const obj of objects) {
      if (stopped) break
      result.scanned++
      try {
        result[await sweepObject(obj.name)]++
      } catch (err) {
        result.skipped++
        log.warn({ key: obj.name, err: (err as Error).message?.slice(0, 200) }, 'sweeping a staged object failed; will try next time')
      }
    }
    if (result.enqueued > 0) log.info(result, 'staging sweep done')
    return result
  }

  function schedule(): void {
    if (stopped) return
    timer = setTimeout(() => {
      running = sweepOnce()
        .catch((err: Error) => log.warn({ err: err.message?.slice(0, 200) }, 'staging sweep failed'))
        .finally(() => {
          running = null
          schedule()
        })
    }, deps.intervalMs)
    timer.unref()
  }

  return {
    sweepOnce,
    start(): void {
      stopped = false
      schedule()
    },
    async stop(): Promise<void> {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      if (running) await running
    },
  }
}
