// Lua scripts loaded into Redis's script cache on every (re)connect, before a process counts as
// ready. Why: ioredis sends a script as EVAL the first time it writes it on a connection, and as
// EVALSHA after that, trusting that the EVAL loaded it. Inside a MULTI at maxmemory, Redis refuses
// every queued command without running it, so that EVAL loads nothing; yet ioredis takes the script
// as loaded, and every later MULTI fails its EVALSHA with NOSCRIPT (ioredis reloads a script on
// NOSCRIPT only outside a transaction). The gateway's media enqueue is such a MULTI: one photo at
// the memory limit turned every later photo into a 500 (found by faults/maxmemory.faults.ts).
// SCRIPT LOAD is allowed at maxmemory, so loading every script up front keeps EVALSHA valid.
import type { RedisClient } from './redis.ts'

interface DefinedScript {
  lua: string
  sha: string
}

/** The scripts defined on a client with defineCommand: ours and BullMQ's. */
function definedScripts(redis: RedisClient): DefinedScript[] {
  return Object.values(redis.scriptsSet as Record<string, DefinedScript>)
}

/** Loads every script defined on `redis` into Redis's cache, in one round trip; returns how many. */
export async function loadScripts(redis: RedisClient): Promise<number> {
  const scripts = definedScripts(redis)
  if (scripts.length === 0) return 0
  const pipe = redis.pipeline()
  for (const s of scripts) pipe.script('LOAD', s.lua)
  const res = await pipe.exec()
  if (!res) throw new Error('SCRIPT LOAD pipeline aborted')
  for (const [err] of res) if (err) throw err
  return scripts.length
}

export interface ScriptLoader {
  /** Whether the scripts are loaded on the current connection (false while (re)connecting). */
  loaded(): boolean
}

/**
 * Loads the client's scripts on every 'ready'. `before` runs first, so that commands defined once
 * connected (BullMQ defines its scripts when its connection initialises) are included.
 */
export function keepScriptsLoaded(
  redis: RedisClient,
  opts: { before?: () => Promise<unknown>; onError?: (err: unknown) => void } = {},
): ScriptLoader {
  let loaded = false
  // Bumped on every close: a load that finished for an earlier connection says nothing about this one.
  let connection = 0
  redis.on('close', () => {
    connection++
    loaded = false
  })
  const load = () => {
    const mine = connection
    ;(async () => {
      await opts.before?.()
      await loadScripts(redis)
      if (mine === connection) loaded = true
    })().catch((err: unknown) => {
      opts.onError?.(err)
      // A slow or refused load on a connection that stays up would otherwise leave the process
      // unready for good; a connection that closed gets its own load on 'ready'.
      if (mine === connection) setTimeout(() => mine === connection && load(), 1000).unref()
    })
  }
  redis.on('ready', load)
  if (redis.status === 'ready') load()
  return { loaded: () => loaded }
}
