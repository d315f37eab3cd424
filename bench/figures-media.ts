// T3 (photo MB/s through the gateway into final storage), T3a (gateway RSS growth during 32
// concurrent 5 MB uploads) and T3b (Redis bytes per media job).
import { randomUUID } from 'node:crypto'
import { Queue } from 'bullmq'
import { setTimeout as sleep } from 'node:timers/promises'
import { jobIds, keys } from '../shared/keys.ts'
import type { RedisClient } from '../shared/redis.ts'
import { COLLECTIONS } from '../shared/mongo.ts'
import { photoSizes } from './bodies.ts'
import type { Bench } from './context.ts'
import { PREFIX } from './context.ts'
import { backlog } from './figures-worker.ts'
import { runLoad } from './load.ts'
import { cpuWindow, formatCpuShare, pidCpu, rssOf, startGateway, startWorker, type AppProcess, type CpuShare } from './procs.ts'
import { memoryUsage, usedMemory } from './redis-info.ts'
import { mb, median } from './stats.ts'
import type { UploadResult } from './uploads.ts'

export interface MediaFigures {
  media_mb_s: number
  gateway_rss_growth_mb_32x5mb: number
  redis_bytes_per_media_job: number
  details: {
    t3_rounds: {
      /** Where the machine's CPU went during the round (single stack only). */
      cpu?: CpuShare
      mb_s_final: number
      mb_s_gateway: number
      photos: number
      mb: number
      seconds_final: number
      statuses: Record<string, number>
    }[]
    t3a_rounds: { baseline_mb: number; peak_mb: number; growth_mb: number; statuses: Record<string, number> }[]
    t3b: {
      job_hash: number
      idempotency_key: number
      staged_entry: number
      wait_list_entry: number
      used_memory_delta_per_job: number
      jobs: number
    }
  }
}

const FIVE_MB = 5 * 1024 * 1024

/** The session ids a media round uploads to (one photo each, so no 409s). */
const sessionPrefix = () => `bench-m-${randomUUID().slice(0, 8)}`

async function upload(
  b: Pick<Bench, 'dir' | 'tokensFile'>,
  g: AppProcess,
  prefix: string,
  sizes: number[],
  count: number,
  concurrency: number,
): Promise<UploadResult> {
  return runLoad<UploadResult>(b.dir, {
    mode: 'media',
    target: { host: '127.0.0.1', port: g.port },
    tokensFile: b.tokensFile,
    sessionPrefix: prefix,
    sizes,
    count,
    concurrency,
  })
}

export async function measureMedia(b: Bench): Promise<MediaFigures> {
  const { opts } = b
  await b.resetRedis()
  await b.resetIngestCollections()
  const g = await startGateway('gateway-media', b.appEnv, b.dir)
  try {
    // Warm the media path (first-use code, sockets to S3) with a few small photos.
    await upload(b, g, sessionPrefix(), [200_000], 4, 4)

    b.log('T3a/T3b: 32 concurrent 5 MB uploads, no worker running (the jobs stay in Redis for T3b)')
    const t3a: MediaFigures['details']['t3a_rounds'] = []
    let t3b: MediaFigures['details']['t3b'] | null = null
    for (let r = 0; r < opts.rounds; r++) {
      await b.resetRedis()
      const memBefore = await usedMemory(b.redis)
      const baseline = median([g.rss(), g.rss(), g.rss()])
      let peak = baseline
      let sampling = true
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, rssOf(g.pid))
          await sleep(20)
        }
      })()
      const prefix = sessionPrefix()
      const res = await upload(b, g, prefix, [FIVE_MB], 32, 32)
      sampling = false
      await sampler
      t3a.push({ baseline_mb: mb(baseline), peak_mb: mb(peak), growth_mb: mb(peak - baseline), statuses: res.statuses })
      b.log(
        `  T3a round ${r + 1}: RSS ${mb(baseline).toFixed(1)} -> peak ${mb(peak).toFixed(1)} MB (+${mb(peak - baseline).toFixed(1)}), statuses ${JSON.stringify(res.statuses)}`,
      )
      if (r === 0) t3b = await mediaJobBytes(b, prefix, 32, memBefore)
    }
    b.log(`  T3b: ${JSON.stringify(t3b)}`)

    b.log(
      `T3: ${opts.photos} photos of 1-5 MB at concurrency ${opts.photoConcurrency}, through the gateway and a worker into final storage`,
    )
    await b.resetRedis()
    const worker = await startWorker('worker-media', b.appEnv, b.dir)
    const t3: MediaFigures['details']['t3_rounds'] = []
    try {
      for (let r = 0; r < opts.rounds; r++) {
        // Against B4's rounds, this says what the media path adds and where (the generator is in "everything else").
        const endWindow = cpuWindow({
          gateway: () => g.cpu(),
          worker: () => worker.cpu(),
          MinIO: pidCpu(b.stack.s3.pid),
          Redis: pidCpu(b.stack.redis.pid),
          FerretDB: pidCpu(b.stack.mongo.pid),
        })
        const round = await t3Round(b, g, opts.photos, opts.photoConcurrency)
        const cpu = endWindow()
        t3.push({ ...round, cpu })
        b.log(
          `  T3 round ${r + 1}: ${round.mb_s_final.toFixed(1)} MB/s into final storage (${round.mb.toFixed(0)} MB in ${round.seconds_final.toFixed(1)} s); ` +
            `${round.mb_s_gateway.toFixed(1)} MB/s accepted by the gateway; statuses ${JSON.stringify(round.statuses)}; ${formatCpuShare(cpu)}`,
        )
      }
    } finally {
      await worker.stop()
    }
    return {
      media_mb_s: median(t3.map((x) => x.mb_s_final)),
      gateway_rss_growth_mb_32x5mb: median(t3a.map((x) => x.growth_mb)),
      redis_bytes_per_media_job: t3b ? t3b.job_hash + t3b.idempotency_key + t3b.staged_entry + t3b.wait_list_entry : NaN,
      details: { t3_rounds: t3, t3a_rounds: t3a, t3b: t3b! },
    }
  } finally {
    await g.stop()
    await b.resetRedis()
  }
}

export type T3Round = MediaFigures['details']['t3_rounds'][number]

/**
 * One T3 round: `photos` photos of 1-5 MB at `concurrency` through gateway `g` (a worker running),
 * timed from the first byte sent until the last media job is done (its document is in by then).
 */
export async function t3Round(
  b: Pick<Bench, 'dir' | 'tokensFile' | 'db'> & { redis: RedisClient },
  g: AppProcess,
  photos: number,
  concurrency: number,
  /** The Redis prefixes of the shards the round's workspaces are on. */
  prefixes: string[] = [PREFIX],
): Promise<T3Round> {
  const prefix = sessionPrefix()
  const res = await upload(b, g, prefix, photoSizes(photos), photos, concurrency)
  // Final storage: the photo is where it stays and its document names it. A media job settles
  // only after its document is in, so the round's last job leaving the queue is a (slightly late)
  // upper bound on the last photo being final. The queue is polled in Redis, as T2a polls: a
  // MongoDB query by session id every 50 ms scans the whole media collection on FerretDB (SQLite),
  // and those scans competed with the worker, more so each round as the collection grew.
  // MongoDB is checked once at the end.
  const queues = prefixes.map((p) => new Queue('media', { connection: b.redis, prefix: p }))
  const deadline = Date.now() + 600_000
  try {
    while ((await Promise.all(queues.map(backlog))).some((n) => n > 0)) {
      if (Date.now() > deadline) throw new Error('T3: media jobs not all done after 10 min')
      await sleep(20)
    }
  } finally {
    await Promise.all(queues.map((q) => q.close()))
  }
  const finalAt = Date.now()
  const stored = await b.db.collection(COLLECTIONS.media).countDocuments({ session_id: { $regex: `^${prefix}-` } })
  if (stored < (res.statuses['201'] ?? 0)) throw new Error(`T3: ${stored} media documents for ${res.statuses['201']} accepted photos`)
  return {
    mb_s_final: mb(res.bytes) / ((finalAt - res.startedAt) / 1000),
    mb_s_gateway: mb(res.bytes) / ((res.endedAt - res.startedAt) / 1000),
    photos: res.statuses['201'] ?? 0,
    mb: mb(res.bytes),
    seconds_final: (finalAt - res.startedAt) / 1000,
    statuses: res.statuses,
  }
}

/**
 * What one queued media job costs Redis: its job hash, its idempotency key, its entry in the
 * staged-media hash (when the gateway keeps one) and its id in the wait list; plus, as a
 * cross-check, the growth of used_memory divided by the jobs (which also carries allocator noise).
 */
async function mediaJobBytes(b: Bench, prefix: string, count: number, memBefore: number): Promise<MediaFigures['details']['t3b']> {
  const k = keys(PREFIX)
  const jobHash: number[] = []
  const idem: number[] = []
  for (let i = 0; i < count; i++) {
    const session = `${prefix}-${i}`
    jobHash.push(await memoryUsage(b.redis, k.job('media', jobIds.media(b.workspaceId, session, 'cropped'))))
    idem.push(await memoryUsage(b.redis, k.idempotency('m', b.workspaceId, session, 'cropped')))
  }
  const stagedKey = (k as { stagedMedia?: string }).stagedMedia
  const stagedEntries = stagedKey ? Number(await b.redis.hlen(stagedKey)) : 0
  const stagedBytes = stagedKey && stagedEntries > 0 ? (await memoryUsage(b.redis, stagedKey)) / stagedEntries : 0
  const waitLen = Number(await b.redis.llen(`${PREFIX}:media:wait`))
  const waitBytes = waitLen > 0 ? (await memoryUsage(b.redis, `${PREFIX}:media:wait`)) / waitLen : 0
  return {
    job_hash: Math.round(median(jobHash)),
    idempotency_key: Math.round(median(idem)),
    staged_entry: Math.round(stagedBytes),
    wait_list_entry: Math.round(waitBytes),
    used_memory_delta_per_job: Math.round(((await usedMemory(b.redis)) - memBefore) / count),
    jobs: count,
  }
}
