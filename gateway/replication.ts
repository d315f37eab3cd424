// REDIS_WAIT_REPLICAS: a 201 (or 409) only once what it promises has reached that many replicas.
//
// Redis replication is asynchronous: a master that dies right after it acknowledged the enqueue
// can take the job with it, and the replica promoted in its place never had it. The device got
// 201 and will not send the upload again. With REDIS_WAIT_REPLICAS=n, the gateway sends WAIT to
// the master that holds the job (pipelined behind a write to the shard's marker key, so a cluster
// client routes it to that master) and answers 201 only if n replicas have it within
// REDIS_WAIT_TIMEOUT_MS; otherwise 503, and the device retries, and finds its upload queued (409)
// or, had the master died, queues it again. It costs a third Redis round trip per accept; the
// README ("Redis Cluster and shards") has the measured window it closes and what it costs.
import type { RedisClient } from '../shared/redis.ts'
import { unavailable } from './errors.ts'

/**
 * `marker`: the shard's replicationMarker key. WAIT counts replicas that have this connection's
 * last write, so a write comes first: a 409 (or a logs replay's 201) read from state that only a
 * stale master holds would otherwise go out unconfirmed, and that state dies with the master's
 * demotion (found by the stale-master fault with REDIS_WAIT_REPLICAS=1: one logs batch lost).
 */
export type ConfirmReplicated = (marker: string) => Promise<void>

export function createReplicationWait(redis: RedisClient, replicas: number, timeoutMs: number): ConfirmReplicated {
  if (replicas <= 0) return async () => {}
  return async (marker) => {
    const res = await redis.pipeline().set(marker, Date.now(), 'PX', 60_000).call('WAIT', replicas, timeoutMs).exec()
    const [setErr] = res?.[0] ?? [new Error('pipeline aborted')]
    const [waitErr, acked] = res?.[1] ?? [new Error('pipeline aborted'), 0]
    if (setErr || waitErr) throw setErr ?? waitErr
    // WAIT counts every write this connection made before it, the enqueue included.
    if (Number(acked) < replicas) throw unavailable('redis replication')
  }
}
