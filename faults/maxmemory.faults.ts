// Redis at maxmemory (noeviction). New work must get 503 with Retry-After, nothing already
// queued may be evicted, and what was accepted must still drain. Two ways to get there: the
// gateway's own high-water mark (REDIS_MEMORY_HIGH_WATER, default 0.9 of maxmemory, read by
// gateway/backlog.ts), and with that mark off, Redis itself refusing writes ("OOM command not
// allowed"), which must map to 503 as well.
import t from 'tap'
import { startCluster, type Cluster } from './lib/cluster.ts'
import { startLoad } from './lib/load.ts'
import { report, rowOf } from './lib/report.ts'
import { assertIntact } from './lib/scenario.ts'
import { check, drain } from './lib/verify.ts'
import { waitFor } from '../testing/wait.ts'
import { freePort } from '../stack/ports.ts'
import { jobIds } from '../shared/keys.ts'
import type { Upload } from './lib/load.ts'

// Small enough to fill quickly, large enough that the 10 % headroom above the high-water mark
// is more than the workers' own connections and bookkeeping need.
const MAXMEMORY = 32 * 1024 * 1024

async function memory(c: Cluster) {
  const info = await c.redis.info('memory')
  const field = (n: string) => Number(new RegExp(`^${n}:(\\d+)`, 'm').exec(info)?.[1] ?? 0)
  return { used: field('used_memory'), max: field('maxmemory') }
}

const FILLER_CHUNK = 'x'.repeat(32 * 1024)

/** Fills Redis with filler keys (not ours to evict either) until `target` bytes are used. */
async function fill(c: Cluster, target: number): Promise<number> {
  let n = 0
  while ((await memory(c)).used < target) await c.redis.set(`filler:${n++}`, FILLER_CHUNK)
  return n
}

/** The BullMQ job hash of an accepted upload: it must still be in Redis (not evicted). */
function jobKey(c: Cluster, u: Upload): string | null {
  const ws = c.seeded.workspaceId
  const p = c.config.redisPrefix
  if (u.kind === 'session') return `${p}:sessions:${jobIds.session(ws, u.guid)}`
  if (u.kind === 'logs') return `${p}:logs:${jobIds.logs(ws, u.guid, u.sha256)}`
  return `${p}:media:${jobIds.media(ws, u.guid, u.mediaId!)}`
}

/**
 * Puts Redis firmly past the point where new work is refused, by lowering maxmemory so that what
 * is used now is `ratio` of it. Filling up to "the limit" alone is a moving target: used_memory
 * falls and rises by tens of kilobytes as Redis frees idle clients' buffers, so while the load's
 * devices wait out their Retry-After, a small request can fit under the limit and be (rightly)
 * accepted: one fresh-clone run saw the probe below answered 201 that way. A few percent of 32 MB
 * is about 1 MB, far beyond that jitter. Returns the new maxmemory.
 */
async function pushPastLimit(c: Cluster, ratio: number): Promise<number> {
  const { used } = await memory(c)
  const max = Math.floor(used / ratio)
  await c.redis.config('SET', 'maxmemory', String(max))
  return max
}

/** The maxmemory the gateway's backpressure poller last read, from its metrics listener. */
async function polledMaxMemory(metricsPort: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).catch(() => null)
  const text = res ? await res.text() : ''
  return Number(/^rdt_redis_memory_bytes\{kind="max"\} (\d+)/m.exec(text)?.[1] ?? -1)
}

// Filler brings Redis to `limit` minus this much, so the load itself crosses the limit early on.
const HEADROOM = 300 * 1024
// How far past the limit the filler then takes Redis: used_memory's jitter is tens of kilobytes,
// and the mark (0.9 x 32 MB) leaves 3.2 MB below maxmemory for the workers to drain in.
const PAST_LIMIT = 256 * 1024

const variants: { name: string; env: Record<string, string>; limit: number; probeRatio: number; drainsAtLimit: boolean }[] = [
  // With the mark, the gateway stops at 90 %, so the workers keep room to drain.
  { name: 'high-water mark 0.9 (gateway/backlog.ts)', env: {}, limit: 0.9 * MAXMEMORY, probeRatio: 0.93, drainsAtLimit: true },
  // Without it, Redis refuses writes at 100 %: the gateway must still answer 503, not 500, and
  // nothing may be evicted; the workers' own writes are refused too, so they drain once memory
  // is freed (which is why the mark exists).
  {
    name: "Redis's own OOM refusal (high-water mark off)",
    env: { REDIS_MEMORY_HIGH_WATER: '0' },
    limit: MAXMEMORY,
    probeRatio: 1.03,
    drainsAtLimit: false,
  },
]
for (const variant of variants) {
  t.test(`Redis at maxmemory: ${variant.name}`, async (t) => {
    const c = await startCluster(t, 'redis-maxmemory', {
      redisArgs: ['--maxmemory', String(MAXMEMORY)],
      gatewayEnv: { ...variant.env, BACKPRESSURE_POLL_MS: '100' },
    })
    // Its metrics listener shows what the backpressure poller last read (see the probe below).
    const metricsPort = await freePort()
    await c.gateway({ METRICS_PORT: String(metricsPort) })
    // No worker yet: what the gateway accepts stays queued in Redis.
    let fillers = await fill(c, variant.limit - HEADROOM)
    const load = startLoad({ dsn: c.dsn, devices: 60, concurrency: 6, retry: { capMs: 1000 } })
    const refused = () => load.uploads.reduce((n, u) => n + (u.answers['503'] ?? 0), 0)
    // The load's footprint in Redis is not known to the byte, and used_memory drops as buffers are
    // freed after the fill, so a fixed headroom sometimes stayed out of the load's reach: all of it
    // was accepted, nothing was refused, and the wait below timed out. Stopping the filler at the
    // first 503 was not enough either: one fresh-clone run crossed the mark by 5 KB, got a few
    // 503s, fell back under it as Redis freed client buffers, and the whole load was then accepted
    // with fewer than 30 refusals. So filler goes in a chunk at a time until Redis is past the
    // limit by far more than that jitter (with the mark off, Redis refuses the filler itself at
    // the limit, which keeps it pinned there).
    await waitFor(
      async () => {
        if ((await memory(c)).used < variant.limit + PAST_LIMIT) {
          await c.redis.set(`filler:${fillers}`, FILLER_CHUNK).then(
            () => fillers++,
            (err: Error) => {
              if (!/OOM/.test(err.message)) throw err
            },
          )
        }
        return refused() >= 30
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the gateway to refuse new work with 503' },
    )
    const accepted = load.uploads.filter((u) => u.final === 201)
    t.ok(accepted.length > 0, `some uploads were accepted before the limit (${accepted.length})`)

    // A fresh request past the limit: 503 with Retry-After. The gateway decides on the figures
    // its poller last read, so the probe waits until that poll has seen the new maxmemory.
    const probeMax = await pushPastLimit(c, variant.probeRatio)
    await waitFor(async () => (await polledMaxMemory(metricsPort)) === probeMax, {
      timeoutMs: 10_000,
      what: 'the gateway to poll the lowered maxmemory',
    })
    const probe = await fetch(`${c.dsn}/test_session/probe-at-limit/`, {
      method: 'PUT',
      body: '{"id":"probe"}',
      headers: { 'content-type': 'application/json' },
    })
    t.equal(probe.status, 503, 'a new upload gets 503 at the limit')
    t.ok(Number(probe.headers.get('retry-after')) > 0, 'with Retry-After')
    await probe.arrayBuffer()
    await c.redis.config('SET', 'maxmemory', String(MAXMEMORY))

    // Nothing accepted was evicted: every accepted upload's job is still in Redis.
    const stats = await c.redis.info('stats')
    t.equal(Number(/^evicted_keys:(\d+)/m.exec(stats)?.[1]), 0, 'Redis evicted no key')
    const missing = []
    for (const u of accepted) if (!(await c.redis.exists(jobKey(c, u)!))) missing.push(u)
    t.equal(missing.length, 0, 'every accepted upload is still queued')
    const { used } = await memory(c)

    // The workers drain what was accepted while new work is still refused.
    const w = await c.worker()
    let drainedAtLimit = true
    try {
      await waitFor(async () => (await check(c, accepted, { bytes: false })).lost === 0, {
        timeoutMs: variant.drainsAtLimit ? 60_000 : 10_000,
        what: 'accepted work to drain at the limit',
      })
    } catch {
      drainedAtLimit = false
    }
    // The operator frees memory (here: the filler); new work is accepted again, without a restart.
    for (let i = 0; i < fillers; i += 500)
      await c.redis.del(...Array.from({ length: Math.min(500, fillers - i) }, (_, j) => `filler:${i + j}`))
    await load.done
    const f = await drain(c, load.uploads)
    report(
      t,
      rowOf(`Redis at maxmemory: ${variant.name}`, f, [
        `${accepted.length} accepted before the limit, ${refused()} answers 503 at ${Math.round((100 * used) / MAXMEMORY)}% of maxmemory`,
        '0 evicted',
        drainedAtLimit
          ? 'the worker drained the accepted work while the gateway still refused new work'
          : 'the worker could NOT drain at the limit (drained once memory was freed)',
      ]),
    )
    if (variant.drainsAtLimit) t.ok(drainedAtLimit, 'accepted work drains while new work is refused at the mark')
    assertIntact(t, f)
    t.ok(w.alive(), 'the worker kept running')
  })
}
