// Reads Redis's own accounting: INFO commandstats (commands per accepted request, T1c) and
// INFO memory (bytes per job, T3b; memory after many jobs, T4a).
import type { Redis } from 'ioredis'

/** Calls per command, from INFO commandstats. Commands run inside scripts are counted too. */
export async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info('commandstats')
  const out: Record<string, number> = {}
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2])
  return out
}

export function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0)
    if (d > 0) out[k] = d
  }
  return out
}

/** Commands a client sends as one round trip each; everything else in commandstats ran inside them (or is our own INFO). */
export const SCRIPT_COMMANDS = ['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro']

export async function usedMemory(redis: Redis): Promise<number> {
  const m = /^used_memory:(\d+)/m.exec(await redis.info('memory'))
  return m ? Number(m[1]) : NaN
}

export async function memoryUsage(redis: Redis, key: string): Promise<number> {
  return Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0)
}

/** CPU seconds the Redis server has used (user + system, main thread and background). */
export async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const f = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0)
  return f('used_cpu_sys') + f('used_cpu_user')
}

/** The Redis server's pid (it runs on this machine), for its /proc counters. */
export async function redisPid(redis: Redis): Promise<number> {
  return Number(/^process_id:(\d+)/m.exec(await redis.info('server'))?.[1] ?? 0)
}

/** Redis's own latency monitor (events at or above the threshold set in context.ts): event -> worst ms since the last reset. */
export async function latencyEvents(redis: Redis): Promise<Record<string, number>> {
  const rows = (await redis.call('LATENCY', 'LATEST')) as [string, number, number, number][]
  await redis.call('LATENCY', 'RESET')
  return Object.fromEntries(rows.map(([event, , , max]) => [event, Number(max)]))
}

/** AOF rewrites and the last fork's duration (a fork stalls Redis for a moment, longer the more memory it holds). */
export async function persistenceStats(redis: Redis): Promise<{ aofRewrites: number; latestForkMs: number }> {
  const persistence = await redis.info('persistence')
  const stats = await redis.info('stats')
  const f = (text: string, name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(text)?.[1] ?? 0)
  return { aofRewrites: f(persistence, 'aof_rewrites'), latestForkMs: f(stats, 'latest_fork_usec') / 1000 }
}

/**
 * Starts an AOF rewrite now and waits for it (and any scheduled one) to finish: right after a
 * FLUSHALL this compacts the AOF to almost nothing, so the next rewrite Redis would start by itself
 * (auto-aof-rewrite-percentage of growth over this new base) is as far away as it can be.
 */
export async function rewriteAofNow(redis: Redis, timeoutMs = 60_000): Promise<void> {
  const busy = async () => /^aof_rewrite_(in_progress|scheduled):1/m.test(await redis.info('persistence'))
  const deadline = Date.now() + timeoutMs
  while (await busy()) {
    if (Date.now() > deadline) throw new Error('an AOF rewrite is still running')
    await new Promise((r) => setTimeout(r, 50))
  }
  await redis.bgrewriteaof()
  while (await busy()) {
    if (Date.now() > deadline) throw new Error('BGREWRITEAOF did not finish')
    await new Promise((r) => setTimeout(r, 50))
  }
}

export interface KeyspaceLifetimes {
  /** Keys with a TTL: they go away by themselves (idempotency keys, rate-limit keys). */
  expiring: { keys: number; bytes: number; maxTtlMs: number }
  /** Keys without one: whatever grows here grows for ever unless something caps it. */
  persistent: { keys: number; bytes: number; byKind: Record<string, number> }
}

/**
 * Every key under `prefix`, split by whether Redis will expire it (MEMORY USAGE per key, summed).
 * T4a reads its "no unbounded growth" from the persistent part: the expiring part is bounded by
 * its TTL whatever the rate. `byKind` names persistent keys by their shape (job hash, stream, ...).
 */
export async function keyspaceByLifetime(redis: Redis, prefix: string): Promise<KeyspaceLifetimes> {
  const out: KeyspaceLifetimes = { expiring: { keys: 0, bytes: 0, maxTtlMs: 0 }, persistent: { keys: 0, bytes: 0, byKind: {} } }
  let cursor = '0'
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000)
    cursor = next
    if (found.length === 0) continue
    const p = redis.pipeline()
    for (const k of found) p.pttl(k).memory('USAGE', k, 'SAMPLES', '0')
    const res = (await p.exec()) ?? []
    found.forEach((k, i) => {
      const ttl = Number(res[2 * i]?.[1] ?? -2)
      const bytes = Number(res[2 * i + 1]?.[1] ?? 0)
      if (ttl === -2) return // gone meanwhile
      if (ttl >= 0) {
        out.expiring.keys++
        out.expiring.bytes += bytes
        out.expiring.maxTtlMs = Math.max(out.expiring.maxTtlMs, ttl)
      } else {
        out.persistent.keys++
        out.persistent.bytes += bytes
        // Job ids are "s.<ws>.<session>" etc. (shared/keys.ts); other keys are named by their last segment.
        const kind = /:(sessions|logs|media):[sclm]\./.test(k) ? 'job hashes' : k.slice(k.lastIndexOf(':') + 1)
        out.persistent.byKind[kind] = (out.persistent.byKind[kind] ?? 0) + bytes
      }
    })
  } while (cursor !== '0')
  return out
}
