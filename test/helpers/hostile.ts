// Support for test/hostile-*.test.ts: a real gateway on a real port with a real worker behind it,
// a raw-socket HTTP client (so that malformed requests can be sent at all), a second
// workspace's data to prove untouched, and the after-run checks (queues drained, nothing failed,
// every 201 stored). Each test file gets its own prefix, database and bucket.
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BSON } from 'mongodb'
import type { FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { buildGateway } from '../../gateway/app.ts'
import { jobIds } from '../../shared/keys.ts'
import { QUEUE_NAMES, type QueueName } from '../../shared/queue-settings.ts'
import { asRole } from './env.ts'
import { seedToken, type SeededToken } from '../../testing/seed.ts'
import { fakeJpeg, readObject } from '../../testing/media.ts'
import { captureLogger, FIXTURES, randomId, sha256, startTestWorker, type LogLine, type TestStack } from './worker-harness.ts'
import { waitFor } from '../../testing/wait.ts'

export { FIXTURES, randomId, sha256 }

interface Tap {
  teardown(fn: () => unknown): void
}

export interface HostileStack extends TestStack {
  gateway: FastifyInstance
  port: number
  gatewayLines: LogLine[]
  /** The workspace the tests attack through. */
  attacker: SeededToken
  /** Another workspace, seeded before the run; it must come out byte for byte the same. */
  victim: SeededToken
  /** Private TMPDIR for the gateway's chunked-upload spool files, to prove they are removed. */
  spoolDir: string
}

/**
 * Settings that keep the suite about input, not about the limits other suites test: no
 * per-token rate limit and no per-IP limit on unknown tokens (the path property sends hundreds
 * of made-up DSNs), and a smaller photo limit so that over-limit cases stay cheap.
 */
export const HOSTILE_ENV = {
  RATE_LIMIT_PER_MINUTE: '0',
  UNKNOWN_TOKEN_MAX_PER_IP: '1000000',
  MAX_MEDIA_BYTES: String(2 * 1024 * 1024),
  WORKER_CONCURRENCY: '16',
}

export async function startHostileStack(t: Tap, env: Record<string, string> = {}): Promise<HostileStack> {
  // os.tmpdir() reads TMPDIR at each call, so the gateway's spool directories land here.
  const spoolDir = await mkdtemp(join(tmpdir(), 'rdt-hostile-'))
  process.env.TMPDIR = spoolDir
  t.teardown(() => rm(spoolDir, { recursive: true, force: true }))
  const stack = await startTestWorker(t, { ...HOSTILE_ENV, ...env })
  const attacker = await seedToken(stack.config)
  const victim = await seedToken(stack.config)
  const { logger, lines } = captureLogger()
  const gateway = await buildGateway({ config: asRole(stack.config, 'gateway'), logger })
  await gateway.listen({ port: 0, host: '127.0.0.1' })
  // Registered after startTestWorker's, so it runs first: the gateway closes before the worker.
  t.teardown(() => gateway.close())
  const port = (gateway.server.address() as AddressInfo).port
  return Object.assign(stack, { gateway, port, gatewayLines: lines, attacker, victim, spoolDir })
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client over node:net. Node's own client refuses to send most of what these
// tests need (control characters in headers, wrong Content-Length, odd paths).

export interface RawResponse {
  /** Final (non-1xx) status of the first response, or null when the server sent none. */
  status: number | null
  headers: Record<string, string>
  body: string
  /** Every byte the server sent, for tests that look for a second response. */
  raw: Buffer
}

export interface RawRequest {
  method?: string
  /** Sent as latin1, so bytes 0x80-0xff go out as they are. */
  path: string
  headers?: [string, string][]
  body?: Buffer | string
  /** Leave out the Content-Length this client otherwise adds (for chunked or deliberate omissions). */
  noContentLength?: boolean
  /** Bytes to send instead of `body` after the head, for hand-framed bodies (chunked, short, long). */
  rawBody?: Buffer
  /** Keep the socket open for further requests (no Connection: close). */
  keepAlive?: boolean
  /** Half-close our side after writing (the server then sees the body end early). */
  endAfterWrite?: boolean
  timeoutMs?: number
}

export function buildRawRequest(req: RawRequest): Buffer {
  const body = req.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8')
  const lines = [`${req.method ?? 'PUT'} ${req.path} HTTP/1.1`, 'Host: 127.0.0.1']
  if (!req.keepAlive) lines.push('Connection: close')
  for (const [k, v] of req.headers ?? []) lines.push(`${k}: ${v}`)
  if (!req.noContentLength && req.rawBody === undefined) lines.push(`Content-Length: ${body.length}`)
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), req.rawBody ?? body])
}

/** Parses the responses in `raw`: status line, headers, Content-Length body; 1xx are skipped. */
export function parseResponses(raw: Buffer): { status: number; headers: Record<string, string>; body: string }[] {
  const out: { status: number; headers: Record<string, string>; body: string }[] = []
  let at = 0
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at)
    if (end < 0) break
    const [statusLine, ...headerLines] = raw.toString('latin1', at, end).split('\r\n')
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')
    if (!m) break
    const headers: Record<string, string> = {}
    for (const l of headerLines) {
      const i = l.indexOf(':')
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
    }
    const status = Number(m[1])
    const len = headers['content-length'] !== undefined ? Number(headers['content-length']) : status < 200 ? 0 : raw.length - end - 4
    const body = raw.toString('utf8', end + 4, end + 4 + len)
    at = end + 4 + len
    if (status >= 200) out.push({ status, headers, body })
  }
  return out
}

/** Sends bytes on a fresh connection and collects what comes back until the server closes (or the timeout). */
export function rawSend(
  port: number,
  data: Buffer,
  opts: { endAfterWrite?: boolean; timeoutMs?: number; until?: (raw: Buffer) => boolean } = {},
): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let done = false
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      const raw = Buffer.concat(chunks)
      const first = parseResponses(raw)[0]
      resolve({ status: first?.status ?? null, headers: first?.headers ?? {}, body: first?.body ?? '', raw })
    }
    const timer = setTimeout(finish, opts.timeoutMs ?? 10_000)
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      if (opts.until?.(Buffer.concat(chunks))) finish()
    })
    socket.on('error', finish)
    socket.on('close', finish)
    socket.write(data, () => {
      if (opts.endAfterWrite) socket.end()
    })
  })
}

export function send(port: number, req: RawRequest): Promise<RawResponse> {
  return rawSend(port, buildRawRequest(req), { endAfterWrite: req.endAfterWrite, timeoutMs: req.timeoutMs })
}

/** Encodes a body as HTTP/1.1 chunks of `size` bytes, with the terminating chunk. */
export function chunked(body: Buffer, size = 64 * 1024): Buffer {
  const parts: Buffer[] = []
  for (let i = 0; i < body.length; i += size) {
    const c = body.subarray(i, i + size)
    parts.push(Buffer.from(c.length.toString(16) + '\r\n'), c, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(parts)
}

// ---------------------------------------------------------------------------------------------
// Paths and expectations.

export const paths = (token: string, session: string) => ({
  session: `/ingest/${token}/test_session/${session}/`,
  logs: `/ingest/${token}/test_session/${session}/logs/`,
  media: (media: string) => `/ingest/${token}/test_session/${session}/media/${media}/`,
})

/** What a 201 promised: checked against MongoDB once the queues have drained. */
export type Accepted =
  | { kind: 'session'; ws: string; session: string; sha256: string }
  | { kind: 'logs'; ws: string; session: string; sha256: string }
  | { kind: 'media'; ws: string; session: string; media: string; sha256: string; size: number }

/** Returns the 201s that have no stored record (should be []). */
export async function missingAccepted(stack: TestStack, accepted: Accepted[]): Promise<Accepted[]> {
  const missing: Accepted[] = []
  for (const a of accepted) {
    let found: unknown
    if (a.kind === 'session')
      found = await stack.db
        .collection('test_sessions')
        .findOne({ workspace_id: a.ws, session_id: a.session, raw_sha256: a.sha256 }, { projection: { _id: 1 } })
    else if (a.kind === 'logs')
      found = await stack.db
        .collection('test_session_log_batches')
        .findOne({ workspace_id: a.ws, session_id: a.session, sha256: a.sha256 }, { projection: { _id: 1 } })
    else
      found = await stack.db
        .collection('test_session_media')
        .findOne(
          { workspace_id: a.ws, session_id: a.session, media_id: a.media, sha256: a.sha256, size: a.size },
          { projection: { _id: 1 } },
        )
    if (!found) missing.push(a)
  }
  return missing
}

// ---------------------------------------------------------------------------------------------
// The after-run checks.

export interface QueueReport {
  /** Jobs still waiting/active/delayed after the deadline, per queue. */
  pending: Record<string, number>
  failed: { queue: string; id: string; reason: string }[]
}

/** Waits (with a deadline) until no job is waiting, active or delayed, then lists failed jobs. */
export async function drain(stack: TestStack, timeoutMs = 60_000): Promise<QueueReport> {
  const pendingNow = async () => {
    const out: Record<string, number> = {}
    for (const q of QUEUE_NAMES) {
      const c = await stack.queues[q].getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')
      out[q] = Object.values(c).reduce((a, b) => a + b, 0)
    }
    return out
  }
  let pending = await pendingNow()
  try {
    // A poll: BullMQ's 'drained' event says nothing is waiting, not that nothing is active or delayed.
    await waitFor(
      async () => {
        pending = await pendingNow()
        return Object.values(pending).every((n) => n === 0)
      },
      { timeoutMs, intervalMs: 100, what: 'the queues to drain' },
    )
  } catch {
    // Reported below; the caller asserts on it with the counts in the message.
  }
  const failed: QueueReport['failed'] = []
  for (const q of QUEUE_NAMES) {
    for (const job of await stack.queues[q].getFailed(0, 50)) failed.push({ queue: q, id: String(job.id), reason: job.failedReason })
  }
  return { pending, failed }
}

/** A known-good upload of each kind, through the gateway, that must be stored: proves the worker still works. */
export async function knownGoodRoundTrip(stack: HostileStack): Promise<{ statuses: (number | null)[]; stored: boolean }> {
  const session = randomId('probe-')
  const p = paths(stack.attacker.token, session)
  const photo = fakeJpeg(50_000)
  const json = [['Content-Type', 'application/json; charset=utf-8']] as [string, string][]
  const statuses = [
    (await send(stack.port, { path: p.session, headers: json, body: FIXTURES.sessionRdtoolkit })).status,
    (await send(stack.port, { path: p.logs, headers: json, body: FIXTURES.logsRdtoolkit })).status,
    (await send(stack.port, { path: p.media('cropped'), headers: [['Content-Type', 'image/jpeg']], body: photo })).status,
  ]
  const ws = stack.attacker.workspaceId
  // 'completed' means stored; the reads below then check it is what was sent.
  const outcomes = await settledAll(stack, [
    ['sessions', jobIds.session(ws, session)],
    ['logs', jobIds.logs(ws, session, sha256(FIXTURES.logsRdtoolkit))],
    ['media', jobIds.media(ws, session, 'cropped')],
  ]).catch(() => [])
  const [s, l, m] = await Promise.all([
    stack.db.collection('test_sessions').findOne({ workspace_id: ws, session_id: session, raw_sha256: sha256(FIXTURES.sessionRdtoolkit) }),
    stack.db.collection('test_session_log_batches').findOne({ workspace_id: ws, session_id: session }),
    stack.db
      .collection('test_session_media')
      .findOne({ workspace_id: ws, session_id: session, media_id: 'cropped', sha256: sha256(photo) }),
  ])
  const stored = outcomes.length === 3 && outcomes.every((o) => o === 'completed') && Boolean(s && l && m)
  return { statuses, stored }
}

/** Seeds the victim workspace through the gateway (session, logs, a photo, a conflicting body) and waits until stored. */
export async function seedVictim(stack: HostileStack): Promise<void> {
  const ws = stack.victim.workspaceId
  const p = paths(stack.victim.token, 'victim-session')
  const res = [
    await send(stack.port, { path: p.session, body: FIXTURES.sessionRdtoolkit }),
    await send(stack.port, { path: p.logs, body: FIXTURES.logsRdtoolkit }),
    await send(stack.port, {
      path: p.media('cropped'),
      headers: [
        ['Content-Type', 'image/jpeg'],
        ['Content-Disposition', 'attachment; filename=victim.jpg'],
      ],
      body: fakeJpeg(30_000),
    }),
    await send(stack.port, { path: p.session, body: FIXTURES.sessionSpecExample }),
  ]
  const statuses = res.map((r) => r.status)
  if (statuses.join() !== '201,201,201,409') throw new Error(`seeding the victim workspace got ${statuses.join()}`)
  const outcomes = await settledAll(stack, [
    ['sessions', jobIds.session(ws, 'victim-session')],
    ['logs', jobIds.logs(ws, 'victim-session', sha256(FIXTURES.logsRdtoolkit))],
    ['media', jobIds.media(ws, 'victim-session', 'cropped')],
    ['sessions', jobIds.conflict(ws, 'victim-session', sha256(FIXTURES.sessionSpecExample))],
  ])
  const counts = await Promise.all(
    ['test_sessions', 'test_session_log_batches', 'test_session_media', 'test_session_conflicts'].map((c) =>
      stack.db.collection(c).countDocuments({ workspace_id: ws }),
    ),
  )
  if (!outcomes.every((o) => o === 'completed') || !counts.every((n) => n === 1))
    throw new Error(`seeding the victim workspace: jobs ${outcomes.join()}, documents ${counts.join()}`)
}

/** Waits on their events until every job listed is completed or failed for good; their states, in order. */
function settledAll(stack: TestStack, jobs: [QueueName, string][], timeoutMs = 30_000): Promise<string[]> {
  return Promise.all(jobs.map(async ([queue, id]) => (await stack.settled(queue, id, { timeoutMs })).state))
}

const DATA_COLLECTIONS = ['test_sessions', 'test_session_conflicts', 'test_session_logs', 'test_session_log_batches', 'test_session_media']

/**
 * Everything stored for a workspace, as comparable text: every document serialised to BSON
 * (byte-exact), the workspace and token records, and every object under the workspace's keys
 * (bytes hashed, with the object's stored metadata).
 */
export async function snapshotWorkspace(stack: TestStack, ws: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {}
  const digest = (doc: object) => createHash('sha256').update(BSON.serialize(doc)).digest('hex')
  for (const c of DATA_COLLECTIONS) {
    const docs = await stack.db.collection(c).find({ workspace_id: ws }).toArray()
    out[c] = docs.map(digest).sort()
  }
  out.workspaces = (
    await stack.db
      .collection('workspaces')
      .find({ _id: ws as never })
      .toArray()
  ).map(digest)
  out.tokens = (await stack.db.collection('tokens').find({ workspace_id: ws }).toArray()).map(digest)
  const objects: string[] = []
  for await (const obj of stack.s3.listObjectsV2(stack.config.s3.bucket, '', true) as AsyncIterable<{ name?: string }>) {
    if (!obj.name || !obj.name.split('/').includes(ws)) continue
    const bytes = await readObject(stack.s3, stack.config.s3.bucket, obj.name)
    const stat = await stack.s3.statObject(stack.config.s3.bucket, obj.name)
    // Sorted: the S3 server returns metadata headers in no fixed order.
    const meta = Object.entries(stat.metaData as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))
    objects.push(`${obj.name} ${sha256(bytes)} ${JSON.stringify(meta)}`)
  }
  out.objects = objects.sort()
  return out
}

/** Spool directories the gateway left behind (chunked uploads are spooled to disk). */
export async function leftoverSpools(stack: HostileStack): Promise<string[]> {
  return (await readdir(stack.spoolDir)).filter((n) => n.startsWith('rdt-spool-'))
}

/** Gateway log lines at error level or above (a 500 is logged as "request failed"). */
export const errorLines = (lines: LogLine[]) => lines.filter((l) => l.level >= 50)
