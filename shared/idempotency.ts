// Idempotency keys (docs/architecture.md §3). A key is written "pending" before the enqueue and is read as
// accepted once the job exists (BullMQ keeps the job hash while it is queued, active or failed)
// or once a worker has committed the record and marked the key "accepted". Checking the job hash
// inside the same script is what keeps the accepted path at two Redis round trips (this script,
// then the BullMQ add) and still closes the crash window: a pending key whose job never appeared
// is free again after `pendingTimeoutMs`, so a GUID never answers 409 when its data was never queued.
//
// The per-token rate limit is checked in the same script, for the same reason: it costs no round
// trip of its own. It is GCRA (a token bucket kept as one timestamp): a token may send a burst of
// `limit` requests, then one every 60000/limit ms. Redis's own clock is used, so gateways with
// skewed clocks still share one limit. A refused request claims nothing and uses up nothing.
//
// The per-workspace byte budget is the same GCRA over bytes instead of requests,
// in the same script: a workspace may send a burst of one minute's budget, then the budget per
// minute; a request costs its body's bytes. Both limits pass, or neither is charged.
//
// This module is the protocol's one home: the value format, the claim, release and refresh the
// gateway runs, and markAccepted, which the worker runs once a record is durable. Key names are
// in shared/keys.ts (`idempotency`), with every other Redis key.
import type { RedisClient } from './redis.ts'
import { keys, type IdempotencyKind } from './keys.ts'

/**
 * The key's value: "<sha256>|p|<ms>" while pending (a gateway claimed it at <ms>), "<sha256>|a"
 * once a worker committed the record. The claim script below writes and parses the same format.
 */
export const idempotencyValue = {
  pending: (sha256: string, ms: number | string) => `${sha256}|p|${ms}`,
  accepted: (sha256: string) => `${sha256}|a`,
  /** What a stored value says, or null for anything else. */
  parse(value: string | null | undefined): { sha256: string; state: 'pending'; ms: number } | { sha256: string; state: 'accepted' } | null {
    const m = /^([^|]*)\|(p\|(\d+)|a)$/.exec(value ?? '')
    if (!m) return null
    return m[3] !== undefined ? { sha256: m[1]!, state: 'pending', ms: Number(m[3]) } : { sha256: m[1]!, state: 'accepted' }
  },
}

/**
 * Marks the key accepted once the record is durable, so that replays get a fast 409 even after
 * the job itself has been removed. `deps` is the worker's (its Redis, prefix and key TTL).
 */
export async function markAccepted(
  deps: { redis: RedisClient; config: { redisPrefix: string; idempotencyTtlMs: number } },
  kind: IdempotencyKind,
  ws: string,
  session: string,
  sha256: string,
  extra?: string,
): Promise<void> {
  const key = keys(deps.config.redisPrefix).idempotency(kind, ws, session, extra)
  await deps.redis.set(key, idempotencyValue.accepted(sha256), 'PX', deps.config.idempotencyTtlMs)
}

// The claim. KEYS: idempotency key, job hash, rate-limit key, byte-budget key, the workspace's
// deleted-sessions hash. ARGV: sha256, now, pending timeout, ttl, requests per minute (0: do not
// check, e.g. a retry of a claim that already passed), budget in bytes per minute (0: do not
// check), this request's bytes, the session id.
// A refusal is {'limited', ms to wait, 'rate' | 'bytes'}; a deleted session is {'deleted', ''}:
// checked here, after the limits, so that it costs no round trip of its own (README "Deletion").
const CLAIM = `
local limit = tonumber(ARGV[5])
local budget = tonumber(ARGV[6])
if limit > 0 or budget > 0 then
  -- TIME makes the script non-deterministic; Redis 7 always replicates effects, older ones need this.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local nexttat, nextbytes
  if limit > 0 then
    local tat = tonumber(redis.call('GET', KEYS[3]) or now) or now
    if tat < now then tat = now end
    nexttat = tat + 60000 / limit
    -- Whole milliseconds only: 60000/limit is rarely exact, and float dust must not refuse the limit-th request.
    local wait = nexttat - 60000 - now
    if wait >= 1 then return {'limited', tostring(math.ceil(wait)), 'rate'} end
  end
  local cost = tonumber(ARGV[7])
  if budget > 0 then
    local tat = tonumber(redis.call('GET', KEYS[4]) or now) or now
    if tat < now then tat = now end
    nextbytes = tat + cost * 60000 / budget
    local wait = nextbytes - 60000 - now
    if wait >= 1 then return {'limited', tostring(math.ceil(wait)), 'bytes'} end
  end
  if nexttat then redis.call('SET', KEYS[3], string.format('%.3f', nexttat), 'PX', math.ceil(nexttat - now) + 1) end
  if nextbytes and cost > 0 then redis.call('SET', KEYS[4], string.format('%.3f', nextbytes), 'PX', math.ceil(nextbytes - now) + 1) end
end
if redis.call('HEXISTS', KEYS[5], ARGV[8]) == 1 then return {'deleted', ''} end
local v = redis.call('GET', KEYS[1])
if v then
  local sha, state, ts = string.match(v, '^([^|]*)|(%a)|?(%d*)$')
  if state == 'a' then return {'dup', sha} end
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'dup', sha} end
  if ts and ts ~= '' and tonumber(ARGV[2]) - tonumber(ts) < tonumber(ARGV[3]) then return {'inflight', sha} end
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  return {'dup', ''}
end
redis.call('SET', KEYS[1], ARGV[1] .. '|p|' .. ARGV[2], 'PX', ARGV[4])
return {'claimed', ARGV[2]}
`

// Only the request that wrote a pending value may release or refresh it.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`
// Charges bytes to a budget without checking it: for a body whose size was only known once it
// was read (a chunked photo). KEYS: byte-budget key. ARGV: budget per minute, bytes.
const CHARGE = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local nextbytes = tat + tonumber(ARGV[2]) * 60000 / tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.3f', nextbytes), 'PX', math.ceil(nextbytes - now) + 1)
return 1
`
const TOUCH = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`

export type ClaimResult =
  | { state: 'claimed'; token: string }
  | { state: 'dup'; sha256: string }
  | { state: 'busy' }
  /** The session was deleted (a tombstone, deletion/tombstones.ts); nothing was claimed. */
  | { state: 'deleted' }
  /** The token's rate limit (`rate`) or the workspace's byte budget (`bytes`) refused the request; nothing was claimed or charged. */
  | { state: 'limited'; retryAfterMs: number; limit: 'rate' | 'bytes' }

/** The rate limit to check with a claim: the token's key (keys.tokenRate) and its requests per minute (0 = none). */
export interface RateLimit {
  key: string
  perMinute: number
}

/** A workspace's byte budget (keys.workspaceBytes), and what this request costs against it. */
export interface ByteBudget {
  key: string
  bytesPerMinute: number
  bytes: number
}

/** Where the claim looks for a tombstone: the workspace's deleted-sessions hash (keys.deletedSessions) and the session id. */
export interface DeletedCheck {
  key: string
  session: string
}

export interface IdempotencyOptions {
  pendingTimeoutMs: number
  ttlMs: number
  /** Upper bound on waiting for a concurrent identical request to resolve. */
  maxWaitMs?: number
}

type ScriptRedis = RedisClient & {
  rdtClaim(
    idem: string,
    job: string,
    rate: string,
    bytes: string,
    deleted: string,
    sha: string,
    now: number,
    timeout: number,
    ttl: number,
    perMinute: number,
    bytesPerMinute: number,
    cost: number,
    session: string,
  ): Promise<[string, string, string?]>
  rdtChargeBytes(key: string, bytesPerMinute: number, bytes: number): Promise<number>
  rdtRelease(idem: string, value: string): Promise<number>
  rdtTouch(idem: string, value: string, next: string, ttl: number): Promise<number>
}

export function createIdempotencyStore(redis: RedisClient, opts: IdempotencyOptions) {
  const r = redis as ScriptRedis
  if (typeof (redis as unknown as Partial<ScriptRedis>).rdtClaim !== 'function') {
    redis.defineCommand('rdtClaim', { numberOfKeys: 5, lua: CLAIM })
    redis.defineCommand('rdtChargeBytes', { numberOfKeys: 1, lua: CHARGE })
    redis.defineCommand('rdtRelease', { numberOfKeys: 1, lua: RELEASE })
    redis.defineCommand('rdtTouch', { numberOfKeys: 1, lua: TOUCH })
  }
  const maxWaitMs = opts.maxWaitMs ?? opts.pendingTimeoutMs + 1000

  async function claimOnce(
    idemKey: string,
    jobKey: string,
    deleted: DeletedCheck,
    sha256: string,
    rate: RateLimit | undefined,
    budget: ByteBudget | undefined,
  ): Promise<ClaimResult | { state: 'inflight' }> {
    // Without a limit, its key is only a placeholder in the same hash slot (never touched).
    const [state, value, which] = await r.rdtClaim(
      idemKey,
      jobKey,
      rate?.key ?? idemKey,
      budget?.key ?? idemKey,
      deleted.key,
      sha256,
      Date.now(),
      opts.pendingTimeoutMs,
      opts.ttlMs,
      rate?.perMinute ?? 0,
      budget?.bytesPerMinute ?? 0,
      budget?.bytes ?? 0,
      deleted.session,
    )
    if (state === 'deleted') return { state }
    if (state === 'claimed') return { state, token: idempotencyValue.pending(sha256, value) }
    if (state === 'dup') return { state, sha256: value }
    if (state === 'limited') return { state, retryAfterMs: Number(value), limit: which === 'bytes' ? 'bytes' : 'rate' }
    return { state: 'inflight' }
  }

  return {
    /**
     * Claims the key for this request. A concurrent request for the same key is in flight:
     * wait for it (polling with backoff) rather than answer 409 for data that might still fail
     * to enqueue. If it has not resolved by `maxWaitMs`, answer "busy" (the caller sends 503).
     * `rate` and `budget` are checked on the first attempt only: waiting for a concurrent upload is one request.
     */
    async claim(
      idemKey: string,
      jobKey: string,
      deleted: DeletedCheck,
      sha256: string,
      rate?: RateLimit,
      budget?: ByteBudget,
    ): Promise<ClaimResult> {
      const deadline = Date.now() + maxWaitMs
      let delay = 10
      for (let attempt = 0; ; attempt++) {
        const res = await claimOnce(idemKey, jobKey, deleted, sha256, attempt === 0 ? rate : undefined, attempt === 0 ? budget : undefined)
        if (res.state !== 'inflight') return res
        if (Date.now() + delay > deadline) return { state: 'busy' }
        await new Promise((resolve) => setTimeout(resolve, delay))
        delay = Math.min(delay * 2, 250)
      }
    },
    /** Charges bytes known only after the body was read (a chunked photo) to a byte budget, unchecked. */
    async chargeBytes(budget: ByteBudget): Promise<void> {
      if (budget.bytes > 0) await r.rdtChargeBytes(budget.key, budget.bytesPerMinute, budget.bytes)
    },
    /** Gives the key back after a failed enqueue, so the device's retry is accepted. */
    async release(idemKey: string, token: string): Promise<void> {
      await r.rdtRelease(idemKey, token)
    },
    /** Keeps a long media upload's claim fresh; returns the new token (or null if lost). */
    async touch(idemKey: string, token: string): Promise<string | null> {
      const next = idempotencyValue.pending(token.slice(0, token.indexOf('|')), Date.now())
      return (await r.rdtTouch(idemKey, token, next, opts.ttlMs)) === 1 ? next : null
    },
  }
}

export type IdempotencyStore = ReturnType<typeof createIdempotencyStore>
