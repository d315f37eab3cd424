// Waiting for BullMQ jobs by their events, not by polling their state. BullMQ writes every job's
// 'active', 'completed' and 'failed' to a Redis stream per queue, so a QueueEvents hears the jobs
// of any process: a worker built in the test, or one started as a child process.
//
// A worker reports a job 'completed' only when its processor has returned, and the processors
// return after their MongoDB writes are acknowledged (worker/batch-writer.ts resolves an insert
// once its batch is), so 'completed' means the documents are readable.
import type { EventEmitter } from 'node:events'
import { Queue, QueueEvents } from 'bullmq'
import { Redis } from 'ioredis'

interface Teardown {
  teardown(fn: () => unknown): void
}

export type JobEvent = 'active' | 'completed' | 'failed'

export interface JobOutcome {
  id: string
  state: 'completed' | 'failed'
}

export interface JobWatch {
  /**
   * Resolves once every job in `ids` has completed or failed for good (a failed attempt that
   * will be retried is neither), in the order of `ids`. The jobs need not exist yet. Rejects
   * after `timeoutMs`, naming the jobs still unfinished and their state.
   */
  settled(ids: string[], opts?: { timeoutMs?: number; what?: string }): Promise<JobOutcome[]>
  /** Resolves once job `id` has been taken by a worker (or has already finished). */
  started(id: string, opts?: { timeoutMs?: number; what?: string }): Promise<void>
  /**
   * Resolves on job `id`'s next `event`, whatever its state now: for a job that runs again
   * (retried from the failed set). Call it before the action that causes the event.
   */
  next(id: string, event: JobEvent, opts?: { timeoutMs?: number; what?: string }): Promise<void>
  /** The queue, on the watch's own connection, to read a job back once it is settled. */
  readonly queue: Queue
}

const FINISHED = new Set(['completed', 'failed'])

/**
 * Watches one queue's job events, on a Redis connection of its own (a QueueEvents blocks on it),
 * closed at teardown. Events written after this returns are never missed: reading starts at the
 * stream's last entry, not at whatever is last when the first read happens to be sent.
 */
export async function watchJobs(t: Teardown, opts: { redisUrl: string; prefix: string; queue: string }): Promise<JobWatch> {
  const connection = new Redis(opts.redisUrl, { maxRetriesPerRequest: null })
  const queue = new Queue(opts.queue, { connection, prefix: opts.prefix })
  const [last] = (await connection.xrevrange(queue.keys.events!, '+', '-', 'COUNT', 1)) as [string, string[]][]
  const eventsConnection = new Redis(opts.redisUrl, { maxRetriesPerRequest: null })
  const events = new QueueEvents(opts.queue, { connection: eventsConnection, prefix: opts.prefix, lastEventId: last?.[0] ?? '0-0' })
  let error: unknown = null
  // A lost connection is reported in the deadline's message, not thrown from the emitter.
  events.on('error', (err) => (error = err))
  t.teardown(async () => {
    await events.close()
    await queue.close()
    eventsConnection.disconnect()
    connection.disconnect()
  })
  await events.waitUntilReady()
  // QueueEvents also emits `<event>:<jobId>` for each job's events; BullMQ's types leave them out.
  const perJob = events as unknown as EventEmitter

  /** Resolves once `id` has sent one of `wanted`, or is already in one of `done` states. */
  function until(id: string, wanted: JobEvent[], done: Set<string>, signal: AbortSignal): Promise<JobOutcome> {
    return new Promise((resolve, reject) => {
      const handlers = wanted.map((event) => {
        const handler = () => finish({ id, state: event === 'failed' ? 'failed' : 'completed' })
        perJob.on(`${event}:${id}`, handler)
        return [`${event}:${id}`, handler] as const
      })
      const onAbort = () => finish(null)
      const finish = (outcome: JobOutcome | null) => {
        for (const [name, handler] of handlers) perJob.off(name, handler)
        signal.removeEventListener('abort', onAbort)
        if (outcome) resolve(outcome)
        else reject(signal.reason)
      }
      signal.addEventListener('abort', onAbort)
      // Listening first, then reading the state: a job that finished before is seen here, one
      // that finishes after is heard.
      queue.getJobState(id).then((state) => {
        if (done.has(state)) finish({ id, state: state === 'failed' ? 'failed' : 'completed' })
      }, reject)
    })
  }

  async function waitAll(ids: string[], wanted: JobEvent[], done: Set<string>, timeoutMs: number, what: string) {
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(new Error('deadline')), timeoutMs)
    const pending = new Set(ids)
    try {
      return await Promise.all(
        ids.map((id) =>
          until(id, wanted, done, controller.signal).then((o) => {
            pending.delete(id)
            return o
          }),
        ),
      )
    } catch (err) {
      if (!controller.signal.aborted) throw err
      const states = await Promise.all([...pending].map(async (id) => `${id} (${await queue.getJobState(id).catch(() => '?')})`))
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}: ${states.join(', ')}${error ? `; queue events error: ${String(error)}` : ''}`,
        { cause: err },
      )
    } finally {
      clearTimeout(timer)
      controller.abort()
    }
  }

  return {
    queue,
    settled: (ids, { timeoutMs = 15_000, what = `${opts.queue} jobs to finish` } = {}) =>
      waitAll(ids, ['completed', 'failed'], FINISHED, timeoutMs, what),
    started: async (id, { timeoutMs = 15_000, what = `${opts.queue} job ${id} to start` } = {}) => {
      await waitAll([id], ['active', 'completed', 'failed'], new Set(['active', ...FINISHED]), timeoutMs, what)
    },
    next: async (id, event, { timeoutMs = 15_000, what = `${opts.queue} job ${id}'s next '${event}'` } = {}) => {
      await waitAll([id], [event], new Set(), timeoutMs, what)
    },
  }
}
