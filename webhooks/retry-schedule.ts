// How deliveries are retried: exponential backoff from WEBHOOK_BACKOFF_MS, doubling up to
// WEBHOOK_BACKOFF_CAP_MS, with a little jitter, for about WEBHOOK_RETRY_FOR_MS (3 days by
// default). Then the job fails for good and stays in the queue's failed set: the dead letters,
// kept until an operator retries them (admin panel) or clears them.
import type { JobsOptions } from 'bullmq'

export interface RetrySchedule {
  backoffMs: number
  backoffCapMs: number
  retryForMs: number
}

/** BullMQ backoff type of delivery jobs; the worker's backoff strategy maps it to deliveryDelay. */
export const DELIVERY_BACKOFF_TYPE = 'webhook'

/** The wait before attempt `attemptsMade + 1`: base x 2^(n-1), capped, minus up to 10 % jitter. */
export function deliveryDelay(attemptsMade: number, s: RetrySchedule, random = Math.random()): number {
  const ceiling = Math.min(s.backoffCapMs, s.backoffMs * 2 ** Math.min(Math.max(attemptsMade - 1, 0), 30))
  return Math.round(ceiling * (0.9 + 0.1 * random))
}

/**
 * Attempts that fit in retryForMs at the schedule's full (unjittered) delays, counting the
 * first: the last attempt happens about retryForMs after the first (jitter only shortens the
 * waits). An attempt count rather than an age check, so that a retried dead letter gets the
 * whole schedule again (`retry` resets the attempt counter).
 */
export function deliveryAttempts(s: RetrySchedule): number {
  let attempts = 1
  let elapsed = 0
  while (attempts < 100_000) {
    const next = Math.min(s.backoffCapMs, s.backoffMs * 2 ** Math.min(attempts - 1, 30))
    if (elapsed + next > s.retryForMs) break
    elapsed += next
    attempts++
  }
  return attempts
}

export function deliveryJobOptions(s: RetrySchedule): JobsOptions {
  return {
    attempts: deliveryAttempts(s),
    backoff: { type: DELIVERY_BACKOFF_TYPE },
    // A completed delivery's job (a few hundred bytes) is kept a day, so that a record job
    // retried within that time finds it and adds no second delivery; receivers still
    // deduplicate on X-RDT-Delivery for anything later (README "Forwarding").
    removeOnComplete: { age: 86_400, count: 50_000 },
    removeOnFail: false,
  }
}
