// T2 (worker drain rate from a pre-filled queue), T4a (Redis memory after many completed jobs),
// the 1-vs-2 worker scaling row, and T2a (gateway and worker together at 50% of T1 for minutes,
// with the time from PUT to visible in MongoDB).
import { Queue } from 'bullmq'
import { randomUUID } from 'node:crypto'
import { Agent, request } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { keys } from '../shared/keys.ts'
import { COLLECTIONS } from '../shared/mongo.ts'
import { scrape, sumOf } from '../testing/prometheus.ts'
import { sessionTemplates } from './bodies.ts'
import type { Bench } from './context.ts'
import { PREFIX } from './context.ts'
import { prefillSessions } from './jobs.ts'
import { runLoad } from './load.ts'
import { percentile, unsentNote, type OpenLoopResult } from './open-loop.ts'
import { cpuOf, cpuWindow, formatCpuShare, pidCpu, startGateway, startWorker, type AppProcess, type CpuShare } from './procs.ts'
import { commandCalls, delta, keyspaceByLifetime, memoryUsage, redisCpu, usedMemory, type KeyspaceLifetimes } from './redis-info.ts'
import { mb, median, slope } from './stats.ts'
import { idempotencyValue } from '../shared/idempotency.ts'

export interface DrainRound {
  workers: number
  sessions: number
  docs_per_s: number
  seconds: number
  stored: number
  failed: number
  /** From the workers' own /metrics: documents per insertMany. */
  avg_batch_documents: number | null
  /** CPU microseconds per document in the workers (together), Redis and FerretDB. */
  cpu_us_per_doc: { workers: number; redis: number; ferretdb: number }
  /**
   * Redis commands per document during the drain (INFO commandstats, scripts' inner commands included): where Redis's CPU per
   * document goes.
   */
  redis_commands_per_doc: { total: number; top: Record<string, number> }
  redis_used_mb_before: number
  redis_used_mb_prefilled: number
  redis_used_mb_after: number
  /** After the drain: our keys split into those Redis will expire and those it keeps (T4a). */
  keyspace_after: KeyspaceLifetimes
}

export interface DrainFigures {
  worker_drain_docs_per_s: number
  rounds: DrainRound[]
  /** T4a: used_memory after each round's drain (rounds run back to back without emptying Redis). */
  redis_mb_after_rounds: number[]
  redis_growth_mb_per_100k: number
  /** T4a's verdict: growth per 100k jobs of keys with no TTL (capped structures must stay flat). */
  persistent_growth_mb_per_100k: number
  /** Growth per 100k jobs of keys with a TTL (idempotency keys): bounded by IDEMPOTENCY_TTL_MS, whatever the rate. */
  expiring_growth_mb_per_100k: number
  breakdown: {
    idempotency_keys: number
    idempotency_key_bytes: number
    completed_jobs_kept: number
    job_hash_bytes: number
    events_stream_entries: number
  }
}

const WAITING_STATES = ['waiting', 'active', 'delayed', 'prioritized'] as const
const PROBE_GRACE_S = 30

export async function backlog(queue: Queue): Promise<number> {
  const c = await queue.getJobCounts(...WAITING_STATES)
  return WAITING_STATES.reduce((a, s) => a + (c[s] ?? 0), 0)
}

/** The workers' sessions batch writer and jobs, from their own /metrics (cumulative since each started). */
export interface WriterFigures {
  avg_batch_documents: number | null
  /** insertMany sent -> acknowledged, mean. */
  avg_batch_write_ms: number | null
  /** A sessions job's time in its processor, mean (fetching and completing it are not included). */
  avg_job_ms: number | null
}

async function sessionsWriterFigures(procs: AppProcess[]): Promise<WriterFigures> {
  const scraped = await Promise.all(procs.map((p) => scrape(p.metricsPort!).catch(() => null)))
  const total = (name: string, labels: Record<string, string>) => scraped.reduce((a, s) => a + (s ? sumOf(s.samples, name, labels) : 0), 0)
  const mean = (metric: string, labels: Record<string, string>, scale = 1) => {
    const count = total(`${metric}_count`, labels)
    return count > 0 ? (total(`${metric}_sum`, labels) / count) * scale : null
  }
  const collection = { collection: 'test_sessions' }
  return {
    avg_batch_documents: mean('rdt_worker_batch_documents', collection),
    avg_batch_write_ms: mean('rdt_worker_batch_write_duration_seconds', collection, 1000),
    avg_job_ms: mean('rdt_worker_job_duration_seconds', { queue: 'sessions' }, 1000),
  }
}

async function startWorkers(b: Bench, n: number, tag: string, nodeArgs: string[] = []): Promise<AppProcess[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startWorker(`worker-${tag}-${i + 1}`, b.appEnv, b.dir, nodeArgs)))
}

/** One drain: pre-fill a paused queue, start the workers, resume, time until nothing is left. */
export async function drainRound(b: Bench, workers: number, sessions: number, nodeArgs: string[] = []): Promise<DrainRound> {
  await b.resetIngestCollections()
  const queue = new Queue('sessions', { connection: b.redis, prefix: PREFIX })
  try {
    const before = await usedMemory(b.redis)
    await queue.pause()
    await prefillSessions(b.redis, PREFIX, b.workspaceId, sessions)
    const prefilled = await usedMemory(b.redis)
    const procs = await startWorkers(b, workers, `drain${workers}`, nodeArgs)
    let seconds: number
    let avgBatch: number | null = null
    let cpu = { workers: NaN, redis: NaN, ferretdb: NaN }
    let commands: DrainRound['redis_commands_per_doc'] = { total: NaN, top: {} }
    try {
      const callsBefore = await commandCalls(b.redis)
      const ferretPid = b.stack.mongo.pid
      const before = {
        workers: procs.reduce((a, p) => a + p.cpu(), 0),
        redis: await redisCpu(b.redis),
        ferretdb: ferretPid ? cpuOf(ferretPid) : NaN,
      }
      const started = performance.now()
      await queue.resume()
      while ((await backlog(queue)) > 0) await sleep(100)
      seconds = (performance.now() - started) / 1000
      const perDoc = (s: number) => (s / sessions) * 1e6
      cpu = {
        workers: perDoc(procs.reduce((a, p) => a + p.cpu(), 0) - before.workers),
        redis: perDoc((await redisCpu(b.redis)) - before.redis),
        ferretdb: ferretPid ? perDoc(cpuOf(ferretPid) - before.ferretdb) : NaN,
      }
      const calls = Object.entries(delta(await commandCalls(b.redis), callsBefore)).sort((x, y) => y[1] - x[1])
      const perDocCalls = (n: number) => Math.round((n / sessions) * 100) / 100
      commands = {
        total: perDocCalls(calls.reduce((a, [, n]) => a + n, 0)),
        top: Object.fromEntries(calls.slice(0, 8).map(([k, n]) => [k, perDocCalls(n)])),
      }
      avgBatch = (await sessionsWriterFigures(procs)).avg_batch_documents
    } finally {
      await Promise.all(procs.map((p) => p.stop()))
    }
    const failed = (await queue.getJobCounts('failed')).failed ?? 0
    const stored = await b.db.collection(COLLECTIONS.sessions).estimatedDocumentCount()
    return {
      workers,
      sessions,
      docs_per_s: sessions / seconds,
      seconds,
      stored,
      failed,
      avg_batch_documents: avgBatch,
      cpu_us_per_doc: cpu,
      redis_commands_per_doc: commands,
      redis_used_mb_before: mb(before),
      redis_used_mb_prefilled: mb(prefilled),
      redis_used_mb_after: mb(await usedMemory(b.redis)),
      keyspace_after: await keyspaceByLifetime(b.redis, PREFIX),
    }
  } finally {
    await queue.close()
  }
}

/**
 * T2 with `workers` processes, `rounds` times back to back without emptying Redis (so T4a sees the
 * accumulation). `env` overrides the workers' environment (e.g. WORKER_CONCURRENCY), for context rows.
 */
export async function measureDrain(
  b: Bench,
  workers: number,
  o: { rounds?: number; env?: Record<string, string> } = {},
): Promise<DrainFigures> {
  const { opts } = b
  await b.resetRedis()
  const rounds: DrainRound[] = []
  const saved = { ...b.appEnv }
  Object.assign(b.appEnv, o.env ?? {})
  try {
    for (let r = 0; r < (o.rounds ?? opts.rounds); r++) {
      const round = await drainRound(b, workers, opts.drainSessions)
      rounds.push(round)
      b.log(
        `  T2 ${workers} worker(s) round ${r + 1}: ${Math.round(round.docs_per_s)} docs/s (${round.sessions} in ${round.seconds.toFixed(1)} s; ` +
          `stored ${round.stored}, failed ${round.failed}, avg batch ${round.avg_batch_documents?.toFixed(1) ?? '?'}; ` +
          `CPU us/doc: workers ${round.cpu_us_per_doc.workers.toFixed(0)}, redis ${round.cpu_us_per_doc.redis.toFixed(0)}, ferretdb ${round.cpu_us_per_doc.ferretdb.toFixed(0)}); ` +
          `Redis commands/doc ${round.redis_commands_per_doc.total} (${Object.entries(round.redis_commands_per_doc.top)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}); ` +
          `Redis ${round.redis_used_mb_before.toFixed(1)} -> ${round.redis_used_mb_prefilled.toFixed(1)} (full) -> ${round.redis_used_mb_after.toFixed(1)} MB (drained); ` +
          `keys with a TTL ${round.keyspace_after.expiring.keys} (${mb(round.keyspace_after.expiring.bytes).toFixed(1)} MB, longest ${(round.keyspace_after.expiring.maxTtlMs / 3600_000).toFixed(1)} h), ` +
          `without ${round.keyspace_after.persistent.keys} (${mb(round.keyspace_after.persistent.bytes).toFixed(1)} MB: ` +
          `${Object.entries(round.keyspace_after.persistent.byKind)
            .sort((x, y) => y[1] - x[1])
            .slice(0, 4)
            .map(([k, v]) => `${k} ${mb(v).toFixed(1)}`)
            .join(', ')})`,
      )
    }
  } finally {
    for (const k of Object.keys(b.appEnv)) delete b.appEnv[k]
    Object.assign(b.appEnv, saved)
  }
  const after = rounds.map((r) => r.redis_used_mb_after)
  const perRound = (y: number[]) => slope(y.map((v, i) => ({ x: ((i + 1) * opts.drainSessions) / 100_000, y: v })))
  const growth = perRound(after)
  return {
    worker_drain_docs_per_s: median(rounds.map((r) => r.docs_per_s)),
    rounds,
    redis_mb_after_rounds: after,
    redis_growth_mb_per_100k: rounds.length > 1 ? growth : NaN,
    persistent_growth_mb_per_100k: rounds.length > 1 ? perRound(rounds.map((r) => mb(r.keyspace_after.persistent.bytes))) : NaN,
    expiring_growth_mb_per_100k: rounds.length > 1 ? perRound(rounds.map((r) => mb(r.keyspace_after.expiring.bytes))) : NaN,
    breakdown: await memoryBreakdown(b),
  }
}

/** What the memory left after the drains is made of: idempotency keys (TTL'd), kept completed jobs (capped), event streams (capped). */
async function memoryBreakdown(b: Bench): Promise<DrainFigures['breakdown']> {
  let idem = 0
  const idemSample: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await b.redis.scan(cursor, 'MATCH', `${PREFIX}:idem:*`, 'COUNT', 5000)
    cursor = next
    idem += found.length
    if (idemSample.length < 200) idemSample.push(...found.slice(0, 200 - idemSample.length))
  } while (cursor !== '0')
  const queue = new Queue('sessions', { connection: b.redis, prefix: PREFIX })
  try {
    const completed = (await queue.getJobCounts('completed')).completed ?? 0
    const jobs = await queue.getJobs(['completed'], 0, 49)
    const jobBytes = jobs.length ? await Promise.all(jobs.map((j) => memoryUsage(b.redis, `${PREFIX}:sessions:${j.id}`))) : []
    const idemBytes = await Promise.all(idemSample.map((k) => memoryUsage(b.redis, k)))
    const events = Number(await b.redis.xlen(`${PREFIX}:sessions:events`))
    return {
      idempotency_keys: idem,
      idempotency_key_bytes: median(idemBytes),
      completed_jobs_kept: completed,
      job_hash_bytes: median(jobBytes),
      events_stream_entries: events,
    }
  } finally {
    await queue.close()
  }
}

export interface E2eRound {
  rate: number
  load: OpenLoopResult
  probes: number
  probes_lost: number
  /**
   * Probes seen accepted that a final MongoDB query found (should equal probes - lost). Lost probes (not visible PROBE_GRACE_S after
   * the load) enter the percentiles at the time waited.
   */
  probes_in_mongodb: number
  visible_p50_ms: number
  visible_p99_ms: number
  visible_max_ms: number
  depth_start: number
  depth_end: number
  depth_max: number
  /** Least-squares slope of the sessions backlog over the run, jobs per second (flat ~ 0). */
  depth_slope_per_s: number
  /** Where the machine's CPU went while the load ran (the generator and the probes are in "everything else"). */
  cpu: CpuShare
  /** The workers' batches and jobs over the round. */
  writer: WriterFigures
}

// T2a runs at 50% of one worker's drain rate (T2), so on T2's configuration: one worker process.
// On these 2 cores a second process at that rate only added CPU (each process's batches are
// half as large, and each wakes for and fetches its own jobs): p99 767-916 ms with 2 workers
// against 364-443 ms with 1 (bench/README.md, T2a). C-T2a, at 50% of T1, is beyond one worker's
// drain and keeps 2.
export const T2A_WORKERS = 1
export const C_T2A_WORKERS = 2

/** T2a: gateway + workers at `rate` for the configured time; probes measure PUT -> visible in MongoDB. */
export async function measureE2e(b: Bench, rate: number, workers: number, roundCount = b.opts.e2eRounds): Promise<E2eRound[]> {
  const rounds: E2eRound[] = []
  for (let r = 0; r < roundCount; r++) {
    await b.resetRedis()
    await b.resetIngestCollections()
    const gateway = await startGateway(`gateway-e2e-${r}`, b.appEnv, b.dir)
    const procs = await startWorkers(b, workers, `e2e-${r}`)
    const stop = () => Promise.all([gateway.stop(), ...procs.map((p) => p.stop())])
    try {
      rounds.push(await e2eRound(b, gateway, procs, rate, stop))
      const x = rounds.at(-1)!
      b.log(
        `  T2a round ${r + 1}: PUT->visible p50 ${x.visible_p50_ms.toFixed(0)} p99 ${x.visible_p99_ms.toFixed(0)} max ${x.visible_max_ms.toFixed(0)} ms over ${x.probes} probes (${x.probes_in_mongodb} found in MongoDB, ${x.probes_lost} lost); ` +
          `backlog start ${x.depth_start} end ${x.depth_end} max ${x.depth_max} (slope ${x.depth_slope_per_s.toFixed(1)}/s); ` +
          `load ${Math.round(x.load.achievedRate)} req/s p99 ${x.load.p99.toFixed(1)} ms${unsentNote(x.load)}, statuses ${JSON.stringify(x.load.statuses)}; ` +
          `sessions jobs ${fmtMs(x.writer.avg_job_ms)} ms in the processor, batches of ${x.writer.avg_batch_documents?.toFixed(1) ?? '-'} written in ${fmtMs(x.writer.avg_batch_write_ms)} ms (means); ${formatCpuShare(x.cpu)}`,
      )
    } finally {
      await stop()
    }
  }
  return rounds
}

const fmtMs = (ms: number | null) => (ms === null ? '-' : ms.toFixed(1))

async function e2eRound(
  b: Bench,
  gateway: AppProcess,
  workers: AppProcess[],
  rate: number,
  stopProcesses: () => Promise<unknown>,
): Promise<E2eRound> {
  const seconds = b.opts.e2eSeconds
  const queue = new Queue('sessions', { connection: b.redis, prefix: PREFIX })
  const sessions = b.db.collection(COLLECTIONS.sessions)
  const templates = sessionTemplates(20, 99)
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  const pending = new Map<string, number>()
  const visible: number[] = []
  const seen: string[] = []
  let lost = 0
  let probes = 0
  let stopProbes = false
  const depth: { x: number; y: number }[] = []
  const t0 = performance.now()

  // Probes: 10 a second, each a real PUT whose document we then wait to see.
  const probeLoop = (async () => {
    while (!stopProbes) {
      const id = randomUUID()
      const [before, after] = templates[probes % templates.length]!
      const token = b.tokens[probes % b.tokens.length]!
      probes++
      const sent = performance.now()
      void put(agent, gateway.port, `/ingest/${token}/test_session/${id}/`, Buffer.from(before + id + after)).then((status) => {
        if (status === 201) pending.set(id, sent)
      })
      await sleep(100)
    }
  })()
  // Visibility: a worker marks the session's idempotency key accepted ("<sha>|a") right after
  // MongoDB acknowledged the insert, so the key turning accepted is a (sub-millisecond) upper bound
  // on "visible in MongoDB". Polling Redis every 10 ms keeps the probe off FerretDB, whose queries
  // would compete with the worker's inserts; MongoDB is checked for every probe at the end.
  const idem = keys(PREFIX)
  let polling = true
  const pollLoop = (async () => {
    while (polling || pending.size > 0) {
      if (pending.size > 0) {
        const ids = [...pending.keys()]
        const values = await b.redis.mget(ids.map((id) => idem.idempotency('s', b.workspaceId, id)))
        const now = performance.now()
        ids.forEach((id, i) => {
          if (idempotencyValue.parse(values[i])?.state === 'accepted') {
            visible.push(now - pending.get(id)!)
            pending.delete(id)
            seen.push(id)
          }
        })
      }
      // After the load, probes get PROBE_GRACE_S to show up; a backlog that large is the finding.
      if (!polling && performance.now() - t0 > (seconds + PROBE_GRACE_S) * 1000) {
        // Still invisible: counted at the time waited so far (a lower bound), not dropped from the percentiles.
        const now = performance.now()
        for (const sent of pending.values()) visible.push(now - sent)
        lost = pending.size
        pending.clear()
        break
      }
      await sleep(10)
    }
  })()
  const depthLoop = (async () => {
    while (!stopProbes) {
      depth.push({ x: (performance.now() - t0) / 1000, y: await backlog(queue) })
      await sleep(1000)
    }
  })()

  // Is the machine saturated at this rate? Each process's share of the two cores while the load runs.
  const endWindow = cpuWindow({
    gateway: () => gateway.cpu(),
    workers: () => workers.reduce((a, w) => a + w.cpu(), 0),
    Redis: pidCpu(b.stack.redis.pid),
    FerretDB: pidCpu(b.stack.mongo.pid),
  })
  const load = await runLoad<OpenLoopResult>(b.dir, {
    mode: 'open',
    target: { host: '127.0.0.1', port: gateway.port },
    rate,
    durationS: seconds,
    connections: b.opts.connections,
    tokensFile: b.tokensFile,
  })
  const cpu = endWindow()
  stopProbes = true
  await Promise.all([probeLoop, depthLoop])
  polling = false
  await pollLoop
  const writer = await sessionsWriterFigures(workers)
  agent.destroy()
  await queue.close()
  // The workers stop first: a backlog left from an unsustained rate would otherwise keep FerretDB
  // busy under the query below. One query for every probe: FerretDB (SQLite) scans the whole
  // collection for this filter, so a query per 500 probes took minutes against a large backlog.
  await stopProcesses()
  const inMongo = seen.length ? await sessions.countDocuments({ workspace_id: b.workspaceId, session_id: { $in: seen } }) : 0
  visible.sort((a, c) => a - c)
  // The first seconds include the generator's own start; the slope is taken over the loaded part.
  const loaded = depth.filter((p) => p.x >= 2 && p.x <= seconds)
  return {
    rate,
    load,
    probes,
    probes_lost: lost,
    probes_in_mongodb: inMongo,
    visible_p50_ms: percentile(visible, 50),
    visible_p99_ms: percentile(visible, 99),
    visible_max_ms: visible.at(-1) ?? NaN,
    depth_start: loaded[0]?.y ?? 0,
    depth_end: loaded.at(-1)?.y ?? 0,
    depth_max: Math.max(0, ...depth.map((p) => p.y)),
    depth_slope_per_s: slope(loaded),
    cpu,
    writer,
  }
}

/** One PUT of a session body; resolves with the status (0 on a connection error). */
export function put(agent: Agent, port: number, path: string, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path,
        headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': String(body.length) },
      },
      (res) => {
        res.resume()
        res.once('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.once('error', () => resolve(0))
    req.end(body)
  })
}
