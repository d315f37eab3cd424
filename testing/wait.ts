// Waiting with a deadline, for the tests, the fault suite and the benchmark. Wait on an event
// where one exists (onceWithin here, waitForJobs in job-events.ts); poll with waitFor only where
// nothing announces the change, and say at the call site why.
import { on, once, type EventEmitter } from 'node:events'

/** Polls until `fn` returns a truthy value, or fails after the deadline. Never a fixed sleep. */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  { timeoutMs = 15_000, intervalMs = 50, what = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/**
 * The next `event` of a Node emitter, or an error naming `what` after `timeoutMs`. The caller
 * checks first whether the state it waits for is already reached: an event that already fired
 * does not fire again.
 */
export async function onceWithin(emitter: EventEmitter, event: string, { timeoutMs = 15_000, what = event } = {}): Promise<unknown[]> {
  try {
    return await once(emitter, event, { signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: err })
    throw err
  }
}

/**
 * Resolves once `check()` holds, checked now and again on each `event` of `emitter` (a child
 * process's output stream's 'data'), or fails naming `what` after `timeoutMs`.
 */
export async function untilEvent(
  emitter: EventEmitter,
  event: string,
  check: () => boolean,
  { timeoutMs = 15_000, what = event } = {},
): Promise<void> {
  if (check()) return
  try {
    for await (const _ of on(emitter, event, { signal: AbortSignal.timeout(timeoutMs) })) if (check()) return
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: err })
    throw err
  }
}
