// What a Redis failure means, decided on codes. A reply error's first word is Redis's own error
// code (by protocol: "OOM command not allowed…", "NOSCRIPT No matching script…"); a socket error
// carries Node's errno code. ioredis's client-side failures carry neither: this file is the one
// place that recognises them by their text (and by class, where ioredis has one), and gives each a
// code of ours, so no caller ever reads an error message.
import { ReplyError } from 'ioredis'
import { AppError } from './errors.ts'

/** ioredis's own errors that carry no code, by the text ioredis gives them (ioredis 6). */
const CLIENT_ERRORS: [RegExp, string][] = [
  [/^Connection is closed\.?$/, 'CONNECTION_CLOSED'],
  // The rest of a pipeline whose connection closed after its first answers (the gateway's SET +
  // WAIT, or auto-pipelined commands): ioredis cannot resend it, so it aborts it.
  [/^Command aborted due to connection close$/, 'CONNECTION_CLOSED'],
  [/^Stream isn't writeable and enableOfflineQueue options is false$/, 'OFFLINE'],
  [/^Command timed out$/, 'TIMEOUT'],
  [/^Socket timeout\./, 'TIMEOUT'],
  [/isn't ready and enableOfflineQueue options is false$/, 'OFFLINE'],
  [/^Cluster is disconnect(ed|ing)\.$/, 'CONNECTION_CLOSED'],
  [/^None of startup nodes is available$/, 'CONNECTION_CLOSED'],
  [/^connect ETIMEDOUT$/, 'ETIMEDOUT'],
  // A Cluster client gave up following redirections while a slot's master was failing over.
  [/^Too many Cluster redirections\. Last error: /, 'CLUSTER_REDIRECTIONS'],
  [/^Failed to refresh slots cache\.?$/, 'CLUSTER_SLOTS'],
]

/** The code of a Redis-related error, or undefined for anything else (a bug of ours, a TypeError…). */
export function redisErrorCode(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined
  if (err instanceof ReplyError) return /^[A-Z]+/.exec(err.message)?.[0]
  if (err.name === 'MaxRetriesPerRequestError') return 'MAX_RETRIES'
  const errno = (err as NodeJS.ErrnoException).code
  if (typeof errno === 'string') return errno
  return CLIENT_ERRORS.find(([re]) => re.test(err.message))?.[1]
}

/**
 * Codes that mean "Redis cannot take this right now", never "this request is wrong": connection
 * trouble, a full Redis (OOM), one that is loading its data or cannot persist (MISCONF), a replica
 * or a cluster mid-failover (a demoted master included), and a lost script cache (NOSCRIPT: Redis restarted or flushed its
 * scripts under a connection that kept its own idea of what is loaded; shared/redis-scripts.ts
 * loads them again).
 */
const UNAVAILABLE = new Set([
  'CONNECTION_CLOSED',
  'OFFLINE',
  'TIMEOUT',
  'MAX_RETRIES',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'OOM',
  'LOADING',
  'MISCONF',
  'READONLY',
  'CLUSTERDOWN',
  // A slot moved under a pipeline the client could not replay as a whole (its commands failed
  // differently): the topology changed mid-request, which the device's retry outlives.
  'MOVED',
  'ASK',
  'CLUSTER_REDIRECTIONS',
  'CLUSTER_SLOTS',
  'TRYAGAIN',
  'MASTERDOWN',
  // A master demoted to replica (a stale master rejoining the cluster learns it was replaced) ends
  // every command blocked on it, the gateway's WAIT (gateway/replication.ts) included, with
  // "UNBLOCKED ... instance state changed (master -> replica?)". Found by the stale-master fault
  // with REDIS_WAIT_REPLICAS=1, where it was a 500.
  'UNBLOCKED',
  'NOSCRIPT',
])

/** True for errors that mean "Redis is not reachable or cannot accept work right now" rather than a bug. */
export function isRedisUnavailable(err: unknown): boolean {
  const code = redisErrorCode(err)
  if (code !== undefined && UNAVAILABLE.has(code)) return true
  // A MULTI fails as a whole with EXECABORT when Redis refused one of its queued commands; the
  // reasons are in previousErrors. At maxmemory Redis refuses *every* command queued in a MULTI,
  // reads included, so the token lookup (HGET + EXISTS) and the media enqueue answered 500
  // instead of 503 (found by faults/maxmemory.faults.ts). A refusal for another reason (a bug
  // of ours) stays a 500.
  return code === 'EXECABORT' && (err as { previousErrors?: unknown[] }).previousErrors?.some(isRedisUnavailable) === true
}

/** Redis's "this script is not in my cache" answer. */
export function isNoScript(err: unknown): boolean {
  return redisErrorCode(err) === 'NOSCRIPT'
}

/** Redis may evict keys: an evicted job or idempotency key is an accepted record silently lost. */
export class EvictionPolicyError extends AppError {
  readonly code = 'redis_may_evict'

  constructor(readonly policy: string) {
    super(`Redis maxmemory-policy is "${policy}"; it must be "noeviction" or accepted jobs can be evicted`)
  }
}
