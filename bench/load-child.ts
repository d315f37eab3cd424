// The load generator, run in its own process (bench/load.ts spawns it), so that its CPU is not
// the harness's and its event loop never delays the measured requests. It reads one spec file,
// runs it, and prints one JSON line with the result.
import autocannon from 'autocannon'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import type { TestConfig } from '../testing/config.ts'
import { createS3 } from '../shared/s3.ts'
import { jpegLike, sessionTemplates } from './bodies.ts'
import { openLoop } from './open-loop.ts'
import { gatewayPuts, s3Puts } from './uploads.ts'

interface Target {
  host: string
  port: number
}

export type LoadSpec =
  | {
      mode: 'autocannon'
      target: Target
      /** hello: GET /; sessions: a new GUID per request (201); duplicates: a fixed set already accepted (409). */
      kind: 'hello' | 'sessions' | 'duplicates'
      connections: number
      pipelining: number
      durationS: number
      warmupS: number
      /** autocannon -R, for the reference figure next to our own open loop. */
      overallRate?: number
      tokensFile?: string
      duplicates?: number
      /** Highest rate the pre-built unique sessions are sized for (default 12000/s). */
      maxRate?: number
    }
  | { mode: 'open'; target: Target; rate: number; durationS: number; connections: number; tokensFile: string }
  | { mode: 's3put'; s3: TestConfig['s3']; prefix: string; sizes: number[]; concurrency: number }
  | { mode: 'media'; target: Target; tokensFile: string; sessionPrefix: string; sizes: number[]; count: number; concurrency: number }

export interface AutocannonSummary {
  /** Answers with the expected status per second of the measured run. */
  rps: number
  expected: number
  /** Expected answers including the warm-up run (server-side counters see both). */
  totalExpected: number
  /** All answers (any status) including the warm-up, and the generator's own CPU seconds for them. */
  totalAnswers: number
  generatorCpuS: number
  statuses: Record<string, number>
  errors: number
  timeouts: number
  p50: number
  p99: number
  seconds: number
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' }

function sessionRequests(tokens: string[]) {
  const templates = sessionTemplates(200)
  let n = 0
  return () => {
    const [before, after] = templates[n++ % templates.length]!
    const id = randomUUID()
    const token = tokens[Math.floor(Math.random() * tokens.length)]!
    return { method: 'PUT', path: `/ingest/${token}/test_session/${id}/`, body: Buffer.from(before + id + after), headers: JSON_HEADERS }
  }
}

async function sendOnce(
  target: Target,
  agent: Agent,
  r: { method: string; path: string; body: Buffer; headers: Record<string, string> },
): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      { agent, ...target, method: r.method, path: r.path, headers: { ...r.headers, 'content-length': String(r.body.length) } },
      (res) => {
        res.resume()
        res.once('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.once('error', () => resolve(0))
    req.end(r.body)
  })
}

/** Requests for autocannon are built up front: a request with a setupRequest is rebuilt by
 * autocannon for every send (copies, header strings, a 4 KB buffer), which on 2 shared cores took
 * CPU from the gateway under test; pre-built ones cost the generator what B1's requests cost it. */
type Static = { method: string; path: string; body: Buffer; headers: Record<string, string> }

async function runAutocannon(spec: Extract<LoadSpec, { mode: 'autocannon' }>): Promise<AutocannonSummary> {
  const tokens = spec.tokensFile ? (JSON.parse(readFileSync(spec.tokensFile, 'utf8')) as string[]) : []
  // Enough unique sessions for the run at up to `maxRate`; past that they repeat and answer 409,
  // which only means the cap was too low (the rate counts 201s).
  const cap = spec.maxRate ?? 12_000
  const inFlight = spec.connections * spec.pipelining
  let warmRequests: Static[] | undefined
  let mainRequests: Static[] | undefined
  let expectedStatus = 200
  if (spec.kind === 'sessions') {
    const fresh = sessionRequests(tokens)
    warmRequests = Array.from({ length: Math.ceil(spec.warmupS * cap) + inFlight }, fresh)
    mainRequests = Array.from({ length: Math.ceil(spec.durationS * (spec.overallRate ?? cap)) + inFlight }, fresh)
    expectedStatus = 201
  } else if (spec.kind === 'duplicates') {
    // Accept a fixed set once, then replay it: every measured answer is a 409 from the Redis key.
    const fresh = sessionRequests(tokens)
    const set = Array.from({ length: spec.duplicates ?? 2000 }, () => fresh())
    const agent = new Agent({ keepAlive: true, maxSockets: 32 })
    let i = 0
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (i < set.length) {
          const status = await sendOnce(spec.target, agent, set[i++]!)
          if (status !== 201) throw new Error(`duplicate set: first PUT answered ${status}`)
        }
      }),
    )
    agent.destroy()
    warmRequests = mainRequests = set
    expectedStatus = 409
  }
  // The wire bytes of every request, built now (before the CPU accounting starts), not by
  // autocannon inside the measured window. Host header as autocannon would send it.
  const wire = (list: Static[] | undefined) =>
    list?.map((r) => {
      const headers = Object.entries(r.headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')
      const head = `${r.method} ${r.path} HTTP/1.1\r\nHost: ${spec.target.host}:${spec.target.port}\r\nConnection: keep-alive\r\n${headers}Content-Length: ${r.body.length}\r\n\r\n`
      return { method: r.method, path: r.path, requestBuffer: Buffer.concat([Buffer.from(head), r.body]) }
    })
  const warmWire = wire(warmRequests)
  const mainWire = mainRequests === warmRequests ? warmWire : wire(mainRequests)
  const run = (durationS: number, requests: ReturnType<typeof wire>) => {
    // autocannon deep-clones its options for every connection and gives every connection the same
    // request list (so all would send the same GUIDs), and rebuilds a request's bytes on every send
    // when it is dynamic. Instead each connection is given its own slice of pre-built requests
    // before it connects. This reaches into autocannon's RequestIterator (pinned autocannon 9.0.0:
    // requests / currentRequestIndex / currentRequest / requestBuffer); a request without
    // setupRequest is never rebuilt, so these bytes are what goes on the wire.
    let client = 0
    const setupClient = (c: unknown) => {
      if (!requests) return
      const it = (c as { requestIterator?: { requests: unknown[]; currentRequestIndex: number; currentRequest: unknown } }).requestIterator
      if (!it || !Array.isArray(it.requests)) throw new Error('autocannon internals changed: no requestIterator.requests on the client')
      // Even shares: connection i gets [floor(i*n/c), floor((i+1)*n/c)). Slices of ceil(n/c) left the
      // last connections with none when n was just over c (a short run at a low rate), and autocannon
      // then crashed reading the first request of an empty list.
      const i = client++ % spec.connections
      const n = requests.length
      const slice = requests.slice(Math.floor((i * n) / spec.connections), Math.floor(((i + 1) * n) / spec.connections))
      if (slice.length === 0) throw new Error(`load spec: ${n} requests cannot feed ${spec.connections} connections`)
      it.requests = slice
      it.currentRequestIndex = 0
      it.currentRequest = slice[0]
    }
    return autocannon({
      url: `http://${spec.target.host}:${spec.target.port}`,
      connections: spec.connections,
      pipelining: spec.pipelining,
      duration: durationS,
      overallRate: spec.overallRate,
      // A placeholder until setupClient installs the connection's own slice.
      requests: requests ? [{ method: 'GET', path: '/healthz' }] : undefined,
      setupClient: setupClient as (client: autocannon.Client) => void,
    })
  }
  const countOf = (r: autocannon.Result) =>
    Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, (v as { count: number }).count])) as Record<
      string,
      number
    >
  const cpuBefore = process.cpuUsage()
  const sum = (c: Record<string, number>) => Object.values(c).reduce((a, n) => a + n, 0)
  const warmCounts = spec.warmupS > 0 ? countOf(await run(spec.warmupS, warmWire)) : {}
  const warm = warmCounts[String(expectedStatus)] ?? 0
  const r = await run(spec.durationS, mainWire)
  const cpu = process.cpuUsage(cpuBefore)
  const statuses = countOf(r)
  const expected = statuses[String(expectedStatus)] ?? 0
  return {
    rps: expected / r.duration,
    expected,
    totalExpected: expected + warm,
    totalAnswers: sum(statuses) + sum(warmCounts),
    generatorCpuS: (cpu.user + cpu.system) / 1e6,
    statuses,
    errors: r.errors,
    timeouts: r.timeouts,
    p50: r.latency.p50,
    p99: r.latency.p99,
    seconds: r.duration,
  }
}

async function main(): Promise<unknown> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as LoadSpec
  switch (spec.mode) {
    case 'autocannon':
      return runAutocannon(spec)
    case 'open': {
      const tokens = JSON.parse(readFileSync(spec.tokensFile, 'utf8')) as string[]
      return openLoop(
        { ...spec.target, rate: spec.rate, durationS: spec.durationS, connections: spec.connections },
        sessionRequests(tokens),
      )
    }
    case 's3put': {
      const photo = jpegLike(Math.max(...spec.sizes))
      const s3 = createS3(spec.s3)
      const res = await s3Puts(s3, spec.s3.bucket, spec.prefix, photo, spec.sizes, spec.concurrency)
      // Out of the way of the next figure (the S3 server's disk is shared with it).
      await s3.removeObjects(
        spec.s3.bucket,
        spec.sizes.map((_, i) => `${spec.prefix}/${i}.jpg`),
      )
      return res
    }
    case 'media': {
      const tokens = JSON.parse(readFileSync(spec.tokensFile, 'utf8')) as string[]
      const photo = jpegLike(Math.max(...spec.sizes))
      const paths = Array.from(
        { length: spec.count },
        (_, i) => `/ingest/${tokens[i % tokens.length]}/test_session/${spec.sessionPrefix}-${i}/media/cropped/`,
      )
      return gatewayPuts(spec.target, paths, photo, spec.sizes, spec.concurrency)
    }
  }
}

main().then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + '\n')
    process.exit(0)
  },
  (err: Error) => {
    process.stderr.write(`load generator failed: ${err.stack ?? err.message}\n`)
    process.exit(1)
  },
)
