// Backpressure. The gateway refuses new work with 503 + Retry-After while the
// pipeline behind it is saturated: a queue's backlog, the staged photo bytes, or Redis memory
// past a high-water mark. Reading those figures per request would break the two-round-trip
// budget, so one poller per gateway reads them all in a single pipelined round trip every
// `intervalMs` and keeps an in-process verdict that the request path reads for free.
//
// With shards (shared/redis-shards.ts) each shard is read in its own pipeline, which a Redis
// Cluster client sends to the master that owns the shard's slot, INFO included: the memory figure
// is the fullest of those masters. The queue figures are summed over shards, since the workers
// serve every shard; the verdict is the gateway's, not a shard's.
//
// Only new work is refused: workers are unaffected, so what was accepted keeps draining, and the
// verdict clears at the first poll after the figures fall back under the marks. If a poll fails
// (Redis away), the last verdict stands; requests then fail on Redis itself with 503 anyway.
import type { FastifyBaseLogger } from 'fastify'
import type { RedisClient } from '../shared/redis.ts'
import { keys } from '../shared/keys.ts'
import { periodic } from '../shared/periodic.ts'
import { QUEUE_NAMES, type QueueName } from '../shared/queue-settings.ts'
import { overloaded } from './errors.ts'

export type OverloadReason = 'backlog' | 'staged_media' | 'redis_memory'

export interface Overload {
  reason: OverloadReason
  /** For logs and operators, e.g. "sessions: 120000 jobs >= 100000". */
  detail: string
}

export interface QueueBacklog {
  /** wait + paused + prioritized: jobs no worker has picked up. */
  waiting: number
  /** Delayed jobs, including retries waiting out their backoff. */
  delayed: number
}

export interface BacklogSnapshot {
  /** When these figures were read (epoch ms); null until the first successful poll. */
  at: number | null
  queues: Record<QueueName, QueueBacklog>
  stagedMediaBytes: number
  redis: { usedMemory: number; maxMemory: number }
  /** The last poll's error, or null; on error the figures are the last good ones. */
  error: string | null
  polls: number
  failedPolls: number
  /** What each queue's requests are answered right now (null = accepted). */
  overloaded: Record<QueueName, Overload | null>
}

export interface BacklogOptions {
  /** Every shard's key prefix. */
  prefixes: string[]
  /** Jobs (waiting + delayed) per queue at which that queue's route answers 503; 0 = never. */
  backlogHighWater: number
  /** Staged photo bytes at which the media route answers 503; 0 = never. */
  stagedMediaHighWaterBytes: number
  /** Fraction of Redis maxmemory at which every route answers 503; 0 = never (also ignored while maxmemory is 0). */
  memoryHighWater: number
  intervalMs: number
  logger?: FastifyBaseLogger
}

const QUEUE_KEY_TYPES = ['wait', 'paused', 'prioritized', 'delayed'] as const

function infoField(info: string, name: string): number {
  const m = new RegExp(`^${name}:(\\d+)\\r?$`, 'm').exec(info)
  return m ? Number(m[1]) : 0
}

type Verdict = Record<QueueName, Overload | null>
type Figures = Omit<BacklogSnapshot, 'overloaded'>

export function createBacklogMonitor(redis: RedisClient, opts: BacklogOptions) {
  const emptyQueues = () => Object.fromEntries(QUEUE_NAMES.map((q) => [q, { waiting: 0, delayed: 0 }])) as Record<QueueName, QueueBacklog>
  const figures: Figures = {
    at: null,
    queues: emptyQueues(),
    stagedMediaBytes: 0,
    redis: { usedMemory: 0, maxMemory: 0 },
    error: null,
    polls: 0,
    failedPolls: 0,
  }
  let verdict = Object.fromEntries(QUEUE_NAMES.map((q) => [q, null])) as Verdict
  const pollOnce = async (): Promise<void> => {
    if (await pollShards(redis, opts.prefixes, figures, opts.logger)) verdict = update(verdict, judge(figures, opts), opts.logger)
  }
  // Never keeps a process alive on its own; the first poll at once.
  const loop = periodic(pollOnce, { intervalMs: opts.intervalMs, firstDelayMs: 0 })

  return {
    /** Starts polling (first poll at once). */
    start: loop.start,
    stop: loop.stop,
    /** One poll now (tests, and callers that cannot wait for the next tick). */
    pollOnce,
    /** Why new work for `queue` must be refused right now, or null. Costs nothing: no Redis. */
    state(queue: QueueName): Overload | null {
      return verdict[queue]
    },
    /** The figures of the last poll, for a metrics plugin or an operator. A copy: safe to keep. */
    snapshot(): BacklogSnapshot {
      return structuredClone({ ...figures, overloaded: verdict })
    },
  }
}

type ShardFigures = Pick<Figures, 'queues' | 'stagedMediaBytes' | 'redis'>

/** Reads every shard (one pipelined round trip each, in parallel) into `figures`; false (figures kept) when one failed. */
async function pollShards(redis: RedisClient, prefixes: string[], figures: Figures, logger?: FastifyBaseLogger): Promise<boolean> {
  try {
    const shards = await Promise.all(prefixes.map((prefix) => pollShard(redis, keys(prefix))))
    for (const q of QUEUE_NAMES) {
      figures.queues[q] = { waiting: 0, delayed: 0 }
      for (const s of shards) {
        figures.queues[q].waiting += s.queues[q].waiting
        figures.queues[q].delayed += s.queues[q].delayed
      }
    }
    figures.stagedMediaBytes = shards.reduce((sum, s) => sum + s.stagedMediaBytes, 0)
    const fill = (m: ShardFigures['redis']) => (m.maxMemory > 0 ? m.usedMemory / m.maxMemory : 0)
    figures.redis = shards.map((s) => s.redis).reduce((a, b) => (fill(b) > fill(a) ? b : a))
    figures.at = Date.now()
    figures.error = null
    figures.polls++
    return true
  } catch (err) {
    if (figures.error === null) logger?.warn({ err: (err as Error).message }, 'backpressure poll failed; keeping the last verdict')
    figures.error = (err as Error).message
    figures.failedPolls++
    return false
  }
}

/** One shard's figures, and the memory of the Redis that holds it, in one pipelined round trip. */
async function pollShard(redis: RedisClient, k: ReturnType<typeof keys>): Promise<ShardFigures> {
  const pipe = redis.pipeline()
  for (const q of QUEUE_NAMES) {
    pipe.llen(k.queue(q, 'wait'))
    pipe.llen(k.queue(q, 'paused'))
    pipe.zcard(k.queue(q, 'prioritized'))
    pipe.zcard(k.queue(q, 'delayed'))
  }
  pipe.get(k.stagedMediaBytes)
  pipe.info('memory')
  const res = await pipe.exec()
  if (!res) throw new Error('pipeline aborted')
  const values = res.map(([err, v]) => {
    if (err) throw err
    return v
  })
  const queues = {} as Record<QueueName, QueueBacklog>
  QUEUE_NAMES.forEach((q, i) => {
    const [wait, paused, prioritized, delayed] = values.slice(i * QUEUE_KEY_TYPES.length, (i + 1) * QUEUE_KEY_TYPES.length).map(Number)
    queues[q] = { waiting: wait! + paused! + prioritized!, delayed: delayed! }
  })
  const rest = values.slice(QUEUE_NAMES.length * QUEUE_KEY_TYPES.length)
  const info = String(rest[1] ?? '')
  return {
    queues,
    stagedMediaBytes: Math.max(0, Number(rest[0] ?? 0) || 0),
    redis: { usedMemory: infoField(info, 'used_memory'), maxMemory: infoField(info, 'maxmemory') },
  }
}

/** What each queue's requests must be answered, from the figures of the last poll. */
function judge(figures: Figures, opts: BacklogOptions): Verdict {
  const { usedMemory, maxMemory } = figures.redis
  // Everything queued lives in Redis memory: near maxmemory (noeviction) writes would start failing.
  const memory: Overload | null =
    opts.memoryHighWater > 0 && maxMemory > 0 && usedMemory >= opts.memoryHighWater * maxMemory
      ? { reason: 'redis_memory', detail: `used_memory ${usedMemory} >= ${opts.memoryHighWater} x maxmemory ${maxMemory}` }
      : null
  const out = {} as Verdict
  for (const q of QUEUE_NAMES) {
    const { waiting, delayed } = figures.queues[q]
    const backlog = waiting + delayed
    out[q] =
      memory ??
      (opts.backlogHighWater > 0 && backlog >= opts.backlogHighWater
        ? { reason: 'backlog', detail: `${q}: ${backlog} jobs waiting or delayed >= ${opts.backlogHighWater}` }
        : null)
  }
  if (!out.media && opts.stagedMediaHighWaterBytes > 0 && figures.stagedMediaBytes >= opts.stagedMediaHighWaterBytes) {
    out.media = { reason: 'staged_media', detail: `${figures.stagedMediaBytes} staged media bytes >= ${opts.stagedMediaHighWaterBytes}` }
  }
  return out
}

/** Logs each change of verdict once (not every poll), so operators see when and why 503s start and stop; returns the new one. */
function update(verdict: Verdict, next: Verdict, logger?: FastifyBaseLogger): Verdict {
  for (const q of QUEUE_NAMES) {
    const before = verdict[q]
    const after = next[q]
    if (after && (!before || before.reason !== after.reason))
      logger?.warn({ queue: q, reason: after.reason, detail: after.detail }, 'backpressure: refusing new work')
    else if (!after && before) logger?.info({ queue: q, reason: before.reason }, 'backpressure: accepting again')
  }
  return next
}

export type BacklogMonitor = ReturnType<typeof createBacklogMonitor>

/**
 * The request-path check: throws the 503 (with Retry-After) when `queue` must not take new work.
 * Called in onRequest, before a body is read, so a saturated gateway does not even read uploads.
 */
export function assertCapacity(monitor: BacklogMonitor, queue: QueueName, retryAfterS: number, log: FastifyBaseLogger): void {
  const o = monitor.state(queue)
  if (!o) return
  log.info({ reason: o.reason, queue }, 'overloaded')
  throw overloaded(o.reason, retryAfterS)
}
