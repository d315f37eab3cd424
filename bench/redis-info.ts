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
