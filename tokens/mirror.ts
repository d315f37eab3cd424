// Pushing a change to the gateways' Redis mirror of the token registry, with a bounded retry.
import type { RedisClient } from '../shared/redis.ts'

/** Retry window of a mirror push that takes access away (revoke, deactivate): see pushToMirror. */
export const REVOCATION_PUSH_MS = 10_000
/** Retry window of any other mirror push: a delay there only makes a new token or setting wait for the sync. */
export const QUICK_PUSH_MS = 1_500

/**
 * Pushes a change to the gateways' mirror (write + announce, one script), retrying with a capped
 * backoff until `deadlineMs` has passed. A change that takes access away gets REVOCATION_PUSH_MS:
 * until it is pushed a gateway may still hold the old entry, so the caller must learn whether it
 * was confirmed. Unconfirmed, it is applied at the next worker sync (TOKEN_SYNC_INTERVAL_MS).
 */
export async function pushToMirror(
  redis: RedisClient | null,
  fn: (redis: RedisClient) => Promise<void>,
  deadlineMs: number,
): Promise<{ ok: true } | { ok: false; error: unknown }> {
  const deadline = Date.now() + deadlineMs
  let error: unknown = new Error('no Redis connection')
  for (let attempt = 0; redis; attempt++) {
    try {
      await fn(redis)
      return { ok: true }
    } catch (err) {
      error = err
    }
    const delay = Math.min(100 * 2 ** attempt, 1000)
    // 'end': the client gave up reconnecting, so nothing would answer a retry.
    if (redis.status === 'end' || Date.now() + delay > deadline) break
    await new Promise((resolve) => setTimeout(resolve, delay))
  }
  return { ok: false, error }
}
