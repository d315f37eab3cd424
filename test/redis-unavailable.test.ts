// isRedisUnavailable decides between 503 (the device retries later) and 500 (our bug). At
// maxmemory (noeviction) Redis refuses every command queued inside a MULTI, reads included, and
// the MULTI fails as a whole with EXECABORT: that used to be a 500 for the token lookup and the
// media enqueue (found by faults/maxmemory.faults.ts). The errors here come from a real Redis
// of this test's own, started with a tiny maxmemory (the shared test Redis must not be filled).
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis, ReplyError } from 'ioredis'
import { ensureBinaries } from '../stack/install.ts'
import { startRedis } from '../stack/services.ts'
import { isRedisUnavailable, redisErrorCode } from '../shared/redis-errors.ts'

const dir = await mkdtemp(join(tmpdir(), 'rdt-redis-oom-'))
const { redisServer } = await ensureBinaries()
const server = await startRedis(redisServer, {
  dataDir: dir,
  logFile: join(dir, 'redis.log'),
  extraArgs: ['--maxmemory', '2mb', '--appendonly', 'no'],
})
const redis = new Redis(server.url, { maxRetriesPerRequest: 0 })
t.teardown(async () => {
  redis.disconnect()
  await server.stop()
  await rm(dir, { recursive: true, force: true })
})

const failure = async (p: Promise<unknown>): Promise<Error> => {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected the command to fail')
}

t.test('a MULTI refused for a wrong command is a bug (500), not an outage', async (t) => {
  const err = await failure(redis.multi().hget('h', 'f').call('hget', 'only-one-argument').exec())
  t.match(err.message, /EXECABORT/)
  t.equal(isRedisUnavailable(err), false)
})

t.test('at maxmemory: a write, and a MULTI even of reads, count as Redis unavailable (503)', async (t) => {
  const chunk = 'x'.repeat(16 * 1024)
  let oom: Error | null = null
  for (let i = 0; i < 1000 && !oom; i++) {
    oom = await redis.set(`fill:${i}`, chunk).then(
      () => null,
      (err: Error) => err,
    )
  }
  t.ok(oom, 'Redis reached maxmemory')
  t.match(oom!.message, /OOM command not allowed/)
  t.equal(isRedisUnavailable(oom), true, 'a refused write')

  t.equal(await redis.hget('h', 'f'), null, 'a plain read still works at the limit')
  const err = await failure(redis.multi().hget('h', 'f').exists('x').exec())
  t.match(err.message, /EXECABORT/, 'but a MULTI of reads is refused as a whole')
  t.equal(isRedisUnavailable(err), true, 'and counts as Redis unavailable')
})

t.test('codes, not messages: real client-side failures are recognised, look-alike text is not', async (t) => {
  // A client that cannot connect and may not queue: ioredis refuses at once, with no code of its own.
  const offline = new Redis('redis://127.0.0.1:1', { enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => null })
  const refused = await failure(offline.get('k'))
  t.equal(redisErrorCode(refused), 'OFFLINE')
  t.equal(isRedisUnavailable(refused), true, 'no connection: 503')
  offline.disconnect()
  const closed = await failure(offline.get('k'))
  t.ok(['OFFLINE', 'CONNECTION_CLOSED'].includes(redisErrorCode(closed) ?? ''), `after disconnect: ${redisErrorCode(closed)}`)
  t.equal(isRedisUnavailable(closed), true)
  // A real reply error: its first word is Redis's code.
  const noscript = await failure(redis.evalsha('0'.repeat(40), 0))
  t.equal(redisErrorCode(noscript), 'NOSCRIPT')
  t.equal(isRedisUnavailable(noscript), true, 'a lost script cache is transient')
  const wrongArgs = await failure(redis.call('hget', 'only-one-argument'))
  t.equal(redisErrorCode(wrongArgs), 'ERR')
  t.equal(isRedisUnavailable(wrongArgs), false, 'our bug: 500')
  // Our own errors that merely mention Redis's words are not Redis answers.
  t.equal(isRedisUnavailable(new Error('OOM command not allowed')), false)
  t.equal(isRedisUnavailable(new Error('LOADING is a word in this message')), false)
  t.equal(redisErrorCode(new TypeError('x')), undefined)
})

t.test('a Cluster client that gave up during a failover is Redis unavailable (503), not a bug', async (t) => {
  // Built by hand with ioredis 5's exact text (cluster/index.js handleError): this suite runs on a
  // single server; faults/redis-cluster.faults.ts met the real one when a master was killed.
  const gaveUp = new Error('Too many Cluster redirections. Last error: Error: Command timed out')
  t.equal(redisErrorCode(gaveUp), 'CLUSTER_REDIRECTIONS')
  t.equal(isRedisUnavailable(gaveUp), true)
  t.equal(isRedisUnavailable(new Error('Failed to refresh slots cache.')), true)
  // A pipeline that met a slot move (seen with REDIS_WAIT_REPLICAS when a stale master was demoted).
  t.equal(isRedisUnavailable(new ReplyError('MOVED 16312 127.0.0.1:39623')), true)
  t.equal(isRedisUnavailable(new Error('we saw too many Cluster redirections')), false, 'only the client text, at its start')
})
