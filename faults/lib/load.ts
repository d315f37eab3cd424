// A bounded load of devices, each behaving like the real RDToolkit client (docs/architecture.md §1): it
// uploads its session, then its logs, then its photos in parallel, with trailing slashes, and
// retries every answer except 200, 201 and 409 (a 503, a 500, a dropped connection) with a small
// backoff. The real client retries for ever; here retries are bounded in count and time, and
// every upload's final outcome and every answer along the way are recorded for the comparison.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fakeJpeg } from '../../testing/media.ts'
import { fixturesDir } from '../../testing/fixtures.ts'

export type Kind = 'session' | 'logs' | 'media'

export interface Upload {
  kind: Kind
  guid: string
  mediaId?: string
  body: Buffer
  sha256: string
  /** Log entries in the body (all distinct, so each must be stored once). */
  entries?: number
  /** The final answer: a status, or 'gave-up' when the retry bound ran out. */
  final: number | 'gave-up' | 'pending'
  /** Every answer, by status ('error' = no HTTP answer: refused, reset, timed out). */
  answers: Record<string, number>
  /** When the final 201/409 arrived (ms since epoch). */
  answeredAt?: number
}

export interface RetryPolicy {
  maxAttempts: number
  /** Give up on an upload after this long. */
  maxMs: number
  baseMs: number
  capMs: number
  /** Per-attempt timeout. */
  attemptTimeoutMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 200, maxMs: 150_000, baseMs: 100, capMs: 2000, attemptTimeoutMs: 30_000 }

const sessionTemplate = JSON.parse(readFileSync(new URL('session-rdtoolkit.json', fixturesDir), 'utf8')) as Record<string, unknown>
export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

/** A session body shaped like the real client's (4-space pretty JSON), unique to this GUID. */
export function sessionBody(guid: string, variant = 0): Buffer {
  const body = { ...sessionTemplate, id: guid, state: variant === 0 ? 'QUEUED' : `QUEUED_${variant}` }
  return Buffer.from(JSON.stringify(body, null, 4))
}

/** A logs body with `n` distinct entries (distinct content, so each is stored exactly once). */
export function logsBody(guid: string, n: number): Buffer {
  const entries = Array.from({ length: n }, (_, i) => ({
    timestamp: new Date(Date.UTC(2021, 0, 25, 11, 2, 41) + i * 1000).toISOString().replace('Z', '+00:00'),
    tag: i % 2 ? 'capture' : 'user_action',
    message: `entry ${i} of ${guid}`,
    json: { attempt: i, nonce: randomBytes(4).toString('hex') },
    ...(i % 3 === 1 ? { media_key: `attempt_${i}_cropped` } : {}),
  }))
  return Buffer.from(JSON.stringify({ entries }, null, 4))
}

export interface LoadOptions {
  /** Base DSN URL (gateway URL + /ingest/<token>). */
  dsn: string
  /**
   * The same DSN on several gateways: each attempt goes to the next one, as a load balancer in
   * front of them would send it (a dead gateway's requests fail once and go elsewhere).
   */
  dsns?: string[]
  devices: number
  /** Devices uploading at the same time. */
  concurrency: number
  /** Photos per session (0-3): cropped, raw, attempt_1_cropped. */
  mediaPerSession?: number
  mediaBytes?: [number, number]
  logEntries?: [number, number]
  /** Pause between a device's uploads, to spread the load over the fault. */
  thinkMs?: number
  retry?: Partial<RetryPolicy>
}

export interface Load {
  uploads: Upload[]
  /** Resolves once every device has finished (all uploads have a final outcome). */
  done: Promise<Upload[]>
  /** Uploads with a final 201/409 so far. */
  answered(): number
  /** Resolves once `n` uploads have a final 201/409. */
  reached(n: number, timeoutMs?: number): Promise<void>
  /** Stops starting new devices (those running finish). */
  stop(): void
}

const MEDIA_IDS = ['cropped', 'raw', 'attempt_1_cropped']

export function randomBetween([lo, hi]: [number, number]): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1))
}

/** One upload, retried like the device does; fills in `u.final` and `u.answers`. */
export async function put(
  target: string | (() => string),
  u: Upload,
  headers: Record<string, string>,
  retry: Partial<RetryPolicy> = {},
): Promise<Upload> {
  const p = { ...DEFAULT_RETRY, ...retry }
  const started = Date.now()
  for (let attempt = 1; ; attempt++) {
    let status: number | 'error'
    const url = typeof target === 'string' ? target : target()
    try {
      const res = await fetch(url, {
        method: 'PUT',
        body: new Uint8Array(u.body),
        headers,
        signal: AbortSignal.timeout(p.attemptTimeoutMs),
      })
      await res.arrayBuffer().catch(() => {})
      status = res.status
    } catch {
      status = 'error'
    }
    u.answers[status] = (u.answers[status] ?? 0) + 1
    if (status === 200 || status === 201 || status === 409) {
      u.final = status
      u.answeredAt = Date.now()
      return u
    }
    if (attempt >= p.maxAttempts || Date.now() - started > p.maxMs) {
      u.final = 'gave-up'
      return u
    }
    const ceiling = Math.min(p.capMs, p.baseMs * 2 ** Math.min(attempt - 1, 16))
    await new Promise((r) => setTimeout(r, ceiling / 2 + Math.random() * (ceiling / 2)))
  }
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' }
const mediaHeaders = (id: string) => ({
  'content-type': 'image/jpeg',
  'content-disposition': `attachment; filename=20210125_111802_${id}.jpg`,
})

export function newUpload(kind: Kind, guid: string, body: Buffer, extra: Partial<Upload> = {}): Upload {
  return { kind, guid, body, sha256: sha256(body), final: 'pending', answers: {}, ...extra }
}

export function sessionUrl(dsn: string, guid: string): string {
  return `${dsn}/test_session/${guid}/`
}

let nextGateway = 0

/** Uploads one device's session, logs and photos in the client's order. */
async function device(
  opts: Required<Omit<LoadOptions, 'retry'>> & { retry?: Partial<RetryPolicy> },
  push: (u: Upload) => void,
): Promise<void> {
  const guid = randomUUID()
  const at = (path: string) => () => `${opts.dsns[nextGateway++ % opts.dsns.length]}${path}`
  const pause = () => (opts.thinkMs > 0 ? new Promise((r) => setTimeout(r, Math.random() * opts.thinkMs)) : undefined)
  const session = newUpload('session', guid, sessionBody(guid))
  push(session)
  await put(at(`/test_session/${guid}/`), session, JSON_HEADERS, opts.retry)
  await pause()
  const n = randomBetween(opts.logEntries)
  const logs = newUpload('logs', guid, logsBody(guid, n), { entries: n })
  push(logs)
  await put(at(`/test_session/${guid}/logs/`), logs, JSON_HEADERS, opts.retry)
  await pause()
  const media = MEDIA_IDS.slice(0, opts.mediaPerSession).map((id) =>
    newUpload('media', guid, fakeJpeg(randomBetween(opts.mediaBytes)), { mediaId: id }),
  )
  for (const m of media) push(m)
  await Promise.all(media.map((m) => put(at(`/test_session/${guid}/media/${m.mediaId}/`), m, mediaHeaders(m.mediaId!), opts.retry)))
}

export function startLoad(options: LoadOptions): Load {
  const opts = {
    mediaPerSession: 2,
    mediaBytes: [20_000, 200_000] as [number, number],
    logEntries: [2, 8] as [number, number],
    thinkMs: 0,
    ...options,
    dsns: options.dsns ?? [options.dsn],
  }
  const uploads: Upload[] = []
  let next = 0
  let stopped = false
  const waiters = new Set<() => void>()
  const answered = () => uploads.filter((u) => u.final === 201 || u.final === 409).length
  const push = (u: Upload) => uploads.push(u)
  const lane = async () => {
    while (!stopped && next < opts.devices) {
      next++
      await device(opts, push)
      for (const w of waiters) w()
    }
  }
  const done = Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.devices) }, lane)).then(() => {
    for (const w of waiters) w()
    return uploads
  })
  // Progress is also checked on a timer: uploads finish inside devices, not only between them.
  return {
    uploads,
    done,
    answered,
    reached(n, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + timeoutMs
        const timer = setInterval(check, 25)
        let finished = false
        void done.then(() => {
          finished = true
          check()
        })
        function check() {
          if (answered() >= n) return end(resolve)
          if (Date.now() > deadline || (finished && answered() < n))
            return end(() => reject(new Error(`load reached ${answered()} answered uploads, not ${n}`)))
        }
        function end(fn: () => void) {
          clearInterval(timer)
          waiters.delete(check)
          fn()
        }
        waiters.add(check)
        check()
      })
    },
    stop() {
      stopped = true
    },
  }
}
