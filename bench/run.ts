// `npm run bench [-- --quick] [--rounds N] [--only phases] [--profile] [--keep]`
//
// Starts a private local stack, builds the app as production does, runs each figure of bench/README.md
// against same-run baselines, prints a table and writes bench/last-run.json. It never fails on a
// missed target (it is not a test); it exits non-zero only when the harness itself broke.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoRoot } from '../stack/paths.ts'
import { directS3Only, measureBaselines, measureDirectS3, type Baselines } from './baselines.ts'
import { createBench } from './context.ts'
import { createDistributedBench } from './distributed.ts'
import { measureCpu, type CpuFigures } from './figures-cpu.ts'
import { measureDistMedia, type DistMediaFigures } from './figures-dist-media.ts'
import { measureGatewayScaling, measureJson, type GatewayScaling, type JsonFigures } from './figures-json.ts'
import { measureMedia, type MediaFigures } from './figures-media.ts'
import { measureRevocation, type RevocationFigures } from './figures-revocation.ts'
import { measureShards, type ShardScaling } from './figures-shards.ts'
import { C_T2A_WORKERS, drainRound, measureDrain, measureE2e, T2A_WORKERS, type DrainFigures, type E2eRound } from './figures-worker.ts'
import { runLoad } from './load.ts'
import type { AutocannonSummary } from './load-child.ts'
import { parseOptions } from './options.ts'
import { build, cpuProfiles, startGateway, stopAll } from './procs.ts'
import { formatSummary, summarise, type ProfileSummary } from './profile-summary.ts'
import { buildReport, formatTable, machine } from './report.ts'
import { loadavg } from 'node:os'
import { CONCURRENCY_DEFAULTS } from '../worker/config.ts'
import { round } from './stats.ts'

const opts = parseOptions(process.argv.slice(2))
const NARROW_CONCURRENCY = 64
const startedAt = new Date()
const log = (msg: string) => console.log(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)}s] ${msg}`)
const host = machine()
log(`${opts.quick ? 'quick' : 'full'} run, ${opts.rounds} round(s) per figure, phases: ${[...opts.phases].join(', ')}`)
log(`machine: ${host.nproc} CPUs (${host.cpu_model}), ${host.memory_total_gb} GB, load average ${host.loadavg_at_start.join(' ')}`)

log('building (npm run build)')
build(log)
const b = await createBench(opts, log)
log(`stack up in ${b.stack.dir}; ${b.tokens.length} tokens seeded`)
// Ctrl-C: stop what we started (apps first, then the stack), rather than leave it running.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the apps and the stack`)
    void stopAll()
      .then(() => b.close())
      .finally(() => process.exit(130))
  })
}

let baselines: Baselines | undefined
let json: JsonFigures | undefined
let gatewayScaling: GatewayScaling | undefined
let drain1: DrainFigures | undefined
let drain2: DrainFigures | undefined
let drainConcurrency: DrainFigures | undefined
let e2eAtT1: E2eRound[] | undefined
let e2eAtDrainRate: E2eRound[] | undefined
let media: MediaFigures | undefined
let revocation: RevocationFigures | undefined
let cpu: CpuFigures | undefined
let shards: ShardScaling | undefined
let distMedia: DistMediaFigures | undefined
const loadavgByPhase: Record<string, number[]> = {}
const phaseDone = (name: string) => {
  loadavgByPhase[name] = loadavg().map((x) => round(x, 2))
  log(`${name} done; load average ${loadavgByPhase[name].join(' ')}`)
}
const profiles: ProfileSummary[] = []
let failure: unknown = null

try {
  if (opts.phases.has('baselines')) {
    baselines = await measureBaselines(b)
    phaseDone('baselines')
  }
  if (opts.phases.has('json')) {
    json = await measureJson(b)
    phaseDone('json')
  }
  if (opts.phases.has('scaling') && json) {
    log('Scaling: 2 gateway processes')
    gatewayScaling = await measureGatewayScaling(b, json.session_put_rps)
  }
  if (opts.phases.has('worker')) {
    log(`T2/T4a: drain ${opts.drainSessions} pre-filled sessions, 1 worker process`)
    drain1 = await measureDrain(b, 1)
    if (opts.phases.has('scaling')) {
      log(`Scaling: drain with 2 worker processes`)
      drain2 = await measureDrain(b, 2)
      // Context for T2: a worker keeps WORKER_CONCURRENCY_SESSIONS jobs in flight, each waiting on
      // its batch's write, so its drain rate is about concurrency / write latency (Little's law).
      // This row shows the drain at an older default (64) next to the current one.
      log(
        `Context: drain with 1 worker process at WORKER_CONCURRENCY_SESSIONS=${NARROW_CONCURRENCY} (default ${CONCURRENCY_DEFAULTS.sessions}), one round`,
      )
      drainConcurrency = await measureDrain(b, 1, { rounds: 1, env: { WORKER_CONCURRENCY_SESSIONS: String(NARROW_CONCURRENCY) } })
    }
    phaseDone('worker')
  }
  if (opts.phases.has('e2e')) {
    // One worker (T2A_WORKERS): T2's configuration, whose drain rate sets T2a's load (bench/README.md).
    if (opts.e2eRate) {
      log(
        `T2a's method at a given rate: gateway + ${T2A_WORKERS} worker at ${opts.e2eRate} req/s for ${opts.e2eSeconds} s (not T2a's figure)`,
      )
      await measureE2e(b, opts.e2eRate, T2A_WORKERS)
    } else if (!drain1) log('T2a skipped: it runs at 50% of T2, so it needs the worker phase')
    else {
      const rate = Math.max(1, Math.round(0.5 * drain1.worker_drain_docs_per_s))
      log(`T2a: gateway + ${T2A_WORKERS} worker at 50% of T2 (${rate} req/s) for ${opts.e2eSeconds} s`)
      e2eAtDrainRate = await measureE2e(b, rate, T2A_WORKERS)
    }
    if (json) {
      // Context (the previous T2a): at 50% of T1, a rate the workers cannot sustain on this box.
      const rate = Math.max(1, Math.round(0.5 * json.session_put_rps))
      log(`C-T2a: gateway + ${C_T2A_WORKERS} workers at 50% of T1 (${rate} req/s), one round, for context`)
      e2eAtT1 = await measureE2e(b, rate, C_T2A_WORKERS, 1)
    }
    phaseDone('e2e')
  }
  if (opts.phases.has('media')) {
    // T3 is read as a ratio to B4: without the baselines phase (`--only media`), B4 is measured
    // alone, just before T3, as that phase would.
    if (!baselines) baselines = directS3Only(await measureDirectS3(b), opts.photoConcurrency)
    media = await measureMedia(b)
    phaseDone('media')
  }
  if (opts.phases.has('revocation')) {
    revocation = await measureRevocation(b)
    phaseDone('revocation')
  }
  if (opts.phases.has('cpu')) {
    // A rate one worker sustains, so the round ends with the backlog drained; 50% of T2 when known.
    const rate = drain1 ? Math.max(1, Math.round(0.5 * drain1.worker_drain_docs_per_s)) : opts.cpuDefaultRate
    cpu = await measureCpu(b, rate)
    phaseDone('cpu')
  }
  if (opts.phases.has('shards') || opts.phases.has('dist-media')) {
    // The single stack's services idle meanwhile; the distributed one is stopped before anything else runs.
    log('distributed stack: Redis Cluster 3 masters + 3 replicas, MinIO 4 nodes, FerretDB')
    const d = await createDistributedBench(opts, log)
    try {
      if (opts.phases.has('shards')) {
        log('S-shard: T1 on the Redis Cluster with 1 shard and with 3')
        shards = await measureShards(d)
        phaseDone('shards')
      }
      if (opts.phases.has('dist-media')) {
        distMedia = await measureDistMedia(d)
        phaseDone('dist-media')
      }
    } finally {
      await d.close().catch((err: Error) => log(`distributed stack stop failed: ${err.message}`))
    }
  }
  if (opts.profile) {
    const dir = join(b.dir, 'profiles')
    log('Profile: the gateway under --cpu-prof for one T1 round')
    await b.resetRedis()
    const g = await startGateway('gateway-prof', b.appEnv, b.dir, ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'gateway')}`])
    const res = await runLoad<AutocannonSummary>(b.dir, {
      mode: 'autocannon',
      target: { host: '127.0.0.1', port: g.port },
      kind: 'sessions',
      connections: opts.connections,
      pipelining: opts.pipelining,
      durationS: opts.closedSeconds,
      warmupS: opts.warmupSeconds,
      tokensFile: b.tokensFile,
    })
    await g.stop()
    log(`  (profiled gateway: ${Math.round(res.rps)} accepted/s)`)
    for (const f of cpuProfiles(join(dir, 'gateway'))) profiles.push(summarise(f))
    log('Profile: a worker under --cpu-prof for one drain')
    await b.resetRedis()
    const round = await drainRound(b, 1, Math.min(opts.drainSessions, 20_000), ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'worker')}`])
    log(`  (profiled worker: ${Math.round(round.docs_per_s)} docs/s)`)
    for (const f of cpuProfiles(join(dir, 'worker'))) profiles.push(summarise(f))
    for (const p of profiles) console.log(formatSummary(p))
  }
} catch (err) {
  failure = err
  log(`harness error: ${(err as Error).stack ?? String(err)}`)
} finally {
  await b.close().catch((err: Error) => log(`stack stop failed: ${err.message}`))
}

const report = buildReport({
  machine: host,
  quick: opts.quick,
  rounds: opts.rounds,
  startedAt,
  baselines,
  json,
  gatewayScaling,
  drain1,
  drain2,
  drainConcurrency,
  e2eAtDrainRate,
  e2eAtT1,
  media,
  revocation,
  cpu,
  shards,
  distMedia,
  loadavgByPhase,
  profiles,
})
console.log('\n' + formatTable(report) + '\n')
console.log(
  'Targets are reported, never enforced: the benchmark is not a test. Absolute figures on a shared machine are noisy; the ratios are what count.',
)
mkdirSync(join(repoRoot, 'bench'), { recursive: true })
const out = join(repoRoot, 'bench', 'last-run.json')
writeFileSync(out, JSON.stringify(report, null, 2) + '\n')
log(`wrote ${out}`)
process.exit(failure ? 1 : 0)
