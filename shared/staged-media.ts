// Unsettled media accounting, for backpressure (gateway/backlog.ts): how many bytes of uploaded
// photos wait for their job. Each upload is registered under its object key (unique per upload:
// it ends in a random id) with its size, and a counter holds the sum. (The names say "staged":
// they are kept from the earlier layout, which staged photos for their job to move.)
//
// - The gateway registers the upload in the same MULTI as the media job, so the bytes are counted
//   exactly when the job exists, in the round trip the enqueue makes anyway.
// - The worker releases the entry once its job settled the upload. Releasing deletes the entry
//   and subtracts only if the entry was still there, so a job that runs twice (stalled lock,
//   retry after a crash) subtracts once.
// - An upload without a job (the enqueue failed) was never registered; the sweeper's
//   re-enqueued job then releases nothing. Either way the counter matches the entries.
import { Job, type Queue } from 'bullmq'
import type { RedisClient } from './redis.ts'
import { keys } from './keys.ts'
import { isNoScript } from './redis-errors.ts'
import { loadScripts } from './redis-scripts.ts'
import type { MediaJob } from './queues.ts'
// queue-settings.ts for the value: the gateway imports this module and must not load TypeBox.
import { defaultJobOptions } from './queue-settings.ts'

// KEYS: entries hash, byte counter. ARGV: staging key, size.
const STAGE = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then return redis.call('INCRBY', KEYS[2], ARGV[2]) end
return tonumber(redis.call('GET', KEYS[2]) or '0')
`
const RELEASE = `
local n = redis.call('HGET', KEYS[1], ARGV[1])
if not n then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('DECRBY', KEYS[2], n) < 0 then redis.call('SET', KEYS[2], '0') end
return 1
`

interface StageCommands {
  rdtStageMedia(entries: string, counter: string, stagingKey: string, size: number): unknown
  rdtReleaseMedia(entries: string, counter: string, stagingKey: string): Promise<number>
}

/** Defines the staging scripts on a client; the gateway does it at start so they are preloaded (shared/redis-scripts.ts). */
export function defineStagingCommands(redis: RedisClient): RedisClient & StageCommands {
  if (typeof (redis as Partial<StageCommands>).rdtStageMedia !== 'function') {
    redis.defineCommand('rdtStageMedia', { numberOfKeys: 2, lua: STAGE })
    redis.defineCommand('rdtReleaseMedia', { numberOfKeys: 2, lua: RELEASE })
  }
  return redis as RedisClient & StageCommands
}

/** The first error of an aborted transaction (e.g. "OOM command not allowed"), so the caller can map it to 503. */
function unwrapExecAbort(err: unknown): unknown {
  const previous = (err as { previousErrors?: unknown[] } | null)?.previousErrors
  return previous?.[0] ?? err
}

/**
 * Adds the media job and registers its staged bytes in one MULTI: one round trip, and the count
 * moves only if the job was written. `redis` is the connection the queue uses (its custom
 * commands are defined on it). BullMQ's own addBulk adds jobs to a pipeline the same way
 * (Job#addJob accepts a transaction); test/gateway-backpressure.test.ts checks both effects.
 */
export async function addMediaJobWithStaging(
  queue: Queue,
  redis: RedisClient,
  prefix: string,
  data: MediaJob,
  jobId: string,
): Promise<void> {
  const k = keys(prefix)
  defineStagingCommands(redis)
  const client = await queue.getBackend().client
  if ((client as unknown as { options?: unknown }).options !== redis.options) {
    throw new Error('addMediaJobWithStaging: the queue does not use the given Redis connection')
  }
  const once = async (): Promise<[Error | null, unknown][]> => {
    const multi = client.multi() as unknown as ReturnType<RedisClient['multi']> & {
      rdtStageMedia: StageCommands['rdtStageMedia']
      length: number
    }
    const job = new Job(queue, 'media', data, { ...defaultJobOptions, jobId }, jobId)
    const before = multi.length
    // Queues the add script into the transaction synchronously; its own promise settles with the
    // transaction object, not the result (read from exec below), so it is only kept from dangling.
    job.addJob(multi as never).catch(() => {})
    if (multi.length !== before + 1) throw new Error('BullMQ did not queue the media job in the transaction')
    multi.rdtStageMedia(k.stagedMedia, k.stagedMediaBytes, data.staging_key, data.size)
    let results: [Error | null, unknown][] | null
    try {
      results = await multi.exec()
    } catch (err) {
      throw unwrapExecAbort(err)
    }
    if (!results) throw new Error('media enqueue: transaction aborted')
    return results
  }
  let results = await once()
  // NOSCRIPT inside a transaction is not retried by ioredis (shared/redis-scripts.ts says how it
  // happens). Load the scripts and run the transaction once more: both steps are idempotent (the
  // job id is deterministic, the staging entry is HSETNX), so whichever half already ran is kept once.
  if (results.some(([err]) => isNoScript(err))) {
    await loadScripts(redis)
    results = await once()
  }
  for (const [err] of results) if (err) throw err
  const added = results[0]?.[1]
  if (typeof added === 'number' && added < 0) throw new Error(`media enqueue: BullMQ refused the job (code ${added})`)
}

/** Call once the upload is settled; true if this call released it (false: already released, or never registered). */
export async function releaseStagedMedia(redis: RedisClient, prefix: string, stagingKey: string): Promise<boolean> {
  const k = keys(prefix)
  return (await defineStagingCommands(redis).rdtReleaseMedia(k.stagedMedia, k.stagedMediaBytes, stagingKey)) === 1
}
