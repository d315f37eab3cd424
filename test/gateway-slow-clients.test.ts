// Slow and stalled clients: 500 connections that
// trickle their bodies, plus a few that trickle their headers, against a real gateway PROCESS
// (so its memory is its own), with short timeouts. Each connection is cut at its timeout and
// answered 408; the gateway's RSS and its spool directory (chunked photos are spooled to disk)
// stay bounded and end empty; and a well-behaved client with another token gets 201s throughout.
// The bound under test is the timeout itself, so the check is "cut within timeout + slack".
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NODE_FLAGS } from '../shared/node-flags.ts'
import { freePort } from '../stack/ports.ts'
import { roleProcessEnv, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { fakeJpeg } from '../testing/media.ts'
import { parseMetrics, sumOf } from '../testing/prometheus.ts'
import { head, withLength, writeThenRead } from './helpers/write-then-read.ts'

t.setTimeout(240_000)

const BODY_TRICKLERS = 500
const HEADER_TRICKLERS = 20
const TOKENS = 5 // 100 connections each
const REQUEST_TIMEOUT_MS = 3000
const HEADERS_TIMEOUT_MS = 2000
const TICK_MS = 500 // each trickler sends a little every TICK_MS
const PIECE = 100 // bytes per tick
// Node checks the deadlines every min(headers, request)/4 (app.ts): a cut comes at most that
// late; the rest of the slack is for a machine shared with other tests.
const SLACK_MS = 6000

const port = await freePort()
const metricsPort = await freePort()
const config = testConfig({ PORT: String(port) })
const spool = await mkdtemp(join(tmpdir(), 'rdt-slow-spool-'))
t.teardown(() => rm(spool, { recursive: true, force: true }))
const attackers = await Promise.all(Array.from({ length: TOKENS }, () => seedToken(config)))
const good = await seedToken(config)

const gateway = spawn(process.execPath, [...NODE_FLAGS.gateway, '--import', 'tsx', 'gateway/server.ts'], {
  env: roleProcessEnv('gateway', {
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    REDIS_PREFIX: config.redisPrefix,
    MONGODB_URL: config.mongodbUrl,
    LOG_LEVEL: 'warn',
    TMPDIR: spool, // where chunked photos are spooled
    REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    // Enough for every trickler to be in flight, so that the timeout (not the cap) cuts them.
    MAX_IN_FLIGHT_PER_TOKEN: '100',
    RATE_LIMIT_PER_MINUTE: '0',
  }),
  stdio: ['ignore', 'ignore', 'pipe'],
})
let stderr = ''
gateway.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
t.teardown(() => {
  gateway.kill('SIGKILL')
})
// A poll: a child process's readiness is seen only by asking it.
await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, {
  timeoutMs: 60_000,
  what: `gateway ready (stderr: ${stderr.slice(-500)})`,
})

async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
}
/** The gateway's spool directories (tsx keeps its own cache in TMPDIR too). */
const spools = async () => (await readdir(spool)).filter((d) => d.startsWith('rdt-spool-'))
async function spoolBytes(): Promise<number> {
  let total = 0
  for (const dir of await spools()) {
    for (const f of await readdir(join(spool, dir)).catch(() => []))
      total += (await stat(join(spool, dir, f)).catch(() => ({ size: 0 }))).size
  }
  return total
}
const metrics = async () => parseMetrics(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())
/** The gateway's own count of its refusals by status and reason: says why an answer was not the 408 expected. */
async function refusalsByReason(): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  return text
    .split('\n')
    .filter((l) => l.startsWith('rdt_gateway_refusals_total{'))
    .join('; ')
}

interface Trickle {
  kind: 'session' | 'photo' | 'headers'
  openedAt: number
  closedAt: Promise<number>
  answer: () => string
}

/** Opens a connection that sends its head (or part of it) and then one small piece every TICK_MS, for ever. */
function trickle(kind: Trickle['kind'], token: string, n: number): Trickle {
  const socket: Socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  let got = ''
  socket.on('data', (c: Buffer) => (got += c.toString('latin1')))
  socket.on('error', () => {})
  const path = `/ingest/${token}/test_session/slow-${kind}-${n}/${kind === 'photo' ? 'media/raw/' : ''}`
  let piece: () => Buffer
  if (kind === 'session') {
    socket.write(head('PUT', path, { 'Content-Type': 'application/json', 'Content-Length': 1024 * 1024 }))
    socket.write('{"pad":"')
    piece = () => Buffer.alloc(PIECE, 0x61)
  } else if (kind === 'photo') {
    socket.write(head('PUT', path, { 'Content-Type': 'image/jpeg', 'Transfer-Encoding': 'chunked' }))
    socket.write(`${PIECE.toString(16)}\r\n`)
    socket.write(fakeJpeg(PIECE))
    piece = () => Buffer.concat([Buffer.from(`\r\n${PIECE.toString(16)}\r\n`), fakeJpeg(PIECE)])
  } else {
    socket.write(`PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`)
    let i = 0
    piece = () => Buffer.from(`X-Slow-${i++}: ${'x'.repeat(20)}\r\n`)
  }
  const tick = setInterval(() => socket.write(piece()), TICK_MS)
  const closedAt = new Promise<number>((resolve) =>
    socket.on('close', () => {
      clearInterval(tick)
      resolve(Date.now())
    }),
  )
  return { kind, openedAt: Date.now(), closedAt, answer: () => /^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 'none' }
}

t.test(
  `${BODY_TRICKLERS} connections trickling bodies and ${HEADER_TRICKLERS} trickling headers are cut at their timeout; memory and spool stay bounded; another token gets 201s`,
  async (t) => {
    // Warm up (JIT, connections to Redis and S3), then take the baseline.
    for (let i = 0; i < 20; i++) {
      const r = await writeThenRead(port, [
        withLength(
          'PUT',
          `/ingest/${good.token}/test_session/warm-${i}/`,
          Buffer.from('{"state":"QUEUED"}'),
          { 'Content-Type': 'application/json' },
          true,
        ),
      ])
      t.equal(r.responses[0]?.status, 201, 'warm-up')
    }
    const rssBefore = await rssKb(gateway.pid!)

    const conns: Trickle[] = []
    for (let i = 0; i < BODY_TRICKLERS; i++) conns.push(trickle(i % 2 ? 'photo' : 'session', attackers[i % TOKENS]!.token, i))
    for (let i = 0; i < HEADER_TRICKLERS; i++) conns.push(trickle('headers', attackers[0]!.token, i))
    let allClosed = false
    const closed = Promise.all(conns.map((c) => c.closedAt)).then((x) => {
      allClosed = true
      return x
    })

    // Meanwhile: the gateway's RSS and spool, sampled until every trickler is gone...
    let rssPeak = rssBefore
    let spoolPeak = 0
    let inFlightPeak = 0
    const sampling = (async () => {
      while (!allClosed) {
        rssPeak = Math.max(rssPeak, await rssKb(gateway.pid!))
        spoolPeak = Math.max(spoolPeak, await spoolBytes())
        inFlightPeak = Math.max(inFlightPeak, sumOf(await metrics(), 'rdt_gateway_uploads_in_flight'))
        await new Promise((r) => setTimeout(r, 100))
      }
    })()
    // ...and a well-behaved client with its own token, one request after another (bounded).
    const goodStatuses: number[] = []
    let photoStatus = 0
    while (!allClosed && goodStatuses.length < 300) {
      const i = goodStatuses.length
      const r = await writeThenRead(
        port,
        [
          withLength(
            'PUT',
            `/ingest/${good.token}/test_session/good-${i}/`,
            Buffer.from('{"state":"QUEUED"}'),
            { 'Content-Type': 'application/json' },
            true,
          ),
        ],
        { timeoutMs: 10_000 },
      )
      goodStatuses.push(r.responses[0]?.status ?? 0)
      if (i === 5) {
        const p = await writeThenRead(
          port,
          [
            withLength(
              'PUT',
              `/ingest/${good.token}/test_session/good-photo/media/raw/`,
              fakeJpeg(300_000),
              { 'Content-Type': 'image/jpeg' },
              true,
            ),
          ],
          { timeoutMs: 10_000 },
        )
        photoStatus = p.responses[0]?.status ?? 0
      }
    }
    const closedAt = await closed
    await sampling

    // Every connection was cut by the server at its timeout, with a 408.
    const late: string[] = []
    const answers = new Map<string, number>()
    conns.forEach((c, i) => {
      const limit = c.kind === 'headers' ? HEADERS_TIMEOUT_MS : REQUEST_TIMEOUT_MS
      const ms = closedAt[i]! - c.openedAt
      if (ms < limit - 200 || ms > limit + SLACK_MS) late.push(`${c.kind} #${i}: ${ms} ms`)
      const key = `${c.kind} ${c.answer()}`
      answers.set(key, (answers.get(key) ?? 0) + 1)
    })
    t.same(late, [], `every connection cut between its timeout and timeout + ${SLACK_MS} ms`)
    t.same(
      Object.fromEntries(answers),
      { 'session 408': BODY_TRICKLERS / 2, 'photo 408': BODY_TRICKLERS / 2, 'headers 408': HEADER_TRICKLERS },
      `each answered 408 (the gateway's refusals: ${await refusalsByReason()})`,
    )
    const spread = closedAt.map((c, i) => c - conns[i]!.openedAt)
    t.comment(`cut after ${Math.min(...spread)}-${Math.max(...spread)} ms`)

    t.ok(goodStatuses.length > 0, `the well-behaved client made ${goodStatuses.length} requests meanwhile`)
    t.same([...new Set(goodStatuses)], [201], 'every one of them 201')
    t.equal(photoStatus, 201, 'and its photo too')

    const growthMb = (rssPeak - rssBefore) / 1024
    t.comment(
      `gateway RSS ${Math.round(rssBefore / 1024)} MB before, peak ${Math.round(rssPeak / 1024)} MB (+${growthMb.toFixed(1)} MB) with ${inFlightPeak} uploads in flight; spool peak ${spoolPeak} bytes`,
    )
    // (+ the well-behaved client's request, if one was in flight at that sample)
    t.ok(inFlightPeak >= BODY_TRICKLERS && inFlightPeak <= BODY_TRICKLERS + 1, 'every body trickler was in flight at once')
    // 520 connections holding a few KB each; the bound is generous for GC timing, and far below
    // what 500 buffered bodies at MAX_JSON_BYTES (2.5 GB) or unbounded spools would be.
    t.ok(growthMb < 150, `RSS growth ${growthMb.toFixed(1)} MB < 150 MB`)
    // Each photo trickler spooled at most what it sent before its cut: PIECE bytes per tick.
    const perPhoto = PIECE * Math.ceil((REQUEST_TIMEOUT_MS + SLACK_MS) / TICK_MS + 1)
    t.ok(spoolPeak <= (BODY_TRICKLERS / 2) * perPhoto, `spool peak ${spoolPeak} bytes <= ${(BODY_TRICKLERS / 2) * perPhoto}`)
    // Polls: spool files and the in-flight gauge of another process change with no event.
    await waitFor(async () => (await spools()).length === 0, { timeoutMs: 15_000, what: 'every spool directory to be removed' })
    t.pass('no spool file is left')

    const m = await metrics()
    t.equal(
      sumOf(m, 'rdt_gateway_refusals_total', { reason: 'request_timeout', status: '408' }),
      BODY_TRICKLERS + HEADER_TRICKLERS,
      'each cut counted as a refusal, reason request_timeout',
    )
    t.equal(
      sumOf(m, 'rdt_gateway_refusals_total', { route: '/ingest/:dsn/test_session/:session/media/:media', reason: 'request_timeout' }),
      BODY_TRICKLERS / 2,
      'by route where the request was routed',
    )
    t.equal(sumOf(m, 'rdt_gateway_refusals_total', { reason: 'aborted' }), 0, 'and not counted twice (as the aborted upload that follows)')
    // A poll, as above: the gauge is another process's.
    await waitFor(async () => sumOf(await metrics(), 'rdt_gateway_uploads_in_flight') === 0, { what: 'no upload left in flight' })
    t.pass('no upload left in flight')
  },
)
