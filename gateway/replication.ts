// REDIS_WAIT_REPLICAS: a 201 only once the job has reached that many replicas.
//
// Redis replication is asynchronous: a master that dies right after it acknowledged the enqueue
// can take the job with it, and the replica promoted in its place never had it. The device got
// 201 and will not send the upload again. With REDIS_WAIT_REPLICAS=n, the gateway sends WAIT to
// the master that holds the job (pipelined behind an EXISTS of the job's key, so a cluster client
// routes it to that master) and answers 201 only if n replicas have it within
// REDIS_WAIT_TIMEOUT_MS; otherwise 503, and the device retries, and finds its upload queued (409)
// or, had the master died, queues it again. It costs a third Redis round trip per accept; the
// README ("Redis Cluster and shards") has the measured window it closes and what it costs.
import type { RedisClient } from '../shared/redis.ts'
import { unavailable } from './errors.ts'

export type ConfirmReplicated = (jobKey: string) => Promise<void>

export function createReplicationWait(redis: RedisClient, replicas: number, timeoutMs: number): ConfirmReplicated {
  if (replicas <= 0) return async () => {}
  return async (jobKey) => {
    const res = await redis.pipeline().exists(jobKey).call('WAIT', replicas, timeoutMs).exec()
    const [existsErr] = res?.[0] ?? [new Error('pipeline aborted')]
    const [waitErr, acked] = res?.[1] ?? [new Error('pipeline aborted'), 0]
    if (existsErr || waitErr) throw existsErr ?? waitErr
    // WAIT counts every write this connection made before it, the enqueue included.
    if (Number(acked) < replicas) throw unavailable('redis replication')
  }
}
