// The local stack itself: a second stack in a temp dir (so it coexists with
// the one with-stack.ts started), real answers from each service, restart
// on the same port with data kept, and a clean stop.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { Client as MinioClient } from 'minio'
import { MongoClient } from 'mongodb'
import t from 'tap'
import { startStack } from '../stack/launcher.ts'
import { roleEnv } from '../stack/roles.ts'

const dir = await mkdtemp(join(tmpdir(), 'rdt-stack-test-'))
const stack = await startStack({ dir })
t.teardown(async () => {
  await stack.stop()
  await rm(dir, { recursive: true, force: true })
})
const { env } = stack

t.test('env and env file', async (t) => {
  t.same(Object.keys(env).sort(), [
    'MONGODB_URL',
    'REDIS_ADMIN_PASSWORD',
    'REDIS_GATEWAY_PASSWORD',
    'REDIS_URL',
    'REDIS_WORKER_PASSWORD',
    'S3_ADMIN_ACCESS_KEY',
    'S3_ADMIN_SECRET_KEY',
    'S3_BUCKET',
    'S3_ENDPOINT',
    'S3_GATEWAY_ACCESS_KEY',
    'S3_GATEWAY_SECRET_KEY',
    'S3_REGION',
    'S3_WORKER_ACCESS_KEY',
    'S3_WORKER_SECRET_KEY',
    'STACK_S3',
    'STACK_TOPOLOGY',
    'TEST_INSPECTOR_REDIS_URL',
    'TEST_INSPECTOR_S3_ACCESS_KEY',
    'TEST_INSPECTOR_S3_SECRET_KEY',
  ])
  t.equal(env.STACK_S3, stack.s3Server)
  t.equal(env.STACK_TOPOLOGY, stack.topology)
  // No user in REDIS_URL: each process gets its own (stack/roles.ts).
  t.match(env.REDIS_URL, /^redis:\/\/127\.0\.0\.1:\d+$/)
  t.match(env.MONGODB_URL, /^mongodb:\/\/127\.0\.0\.1:\d+\/rdt$/)
  t.match(env.S3_ENDPOINT, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(env.S3_REGION, 'us-east-1')
  t.equal(env.S3_BUCKET, 'rdt-media')
  t.ok((env.TEST_INSPECTOR_S3_SECRET_KEY ?? '').length >= 32, 'random root secret')
  if (stack.s3Server === 'minio') {
    for (const r of ['GATEWAY', 'WORKER', 'ADMIN']) {
      t.not(env[`S3_${r}_ACCESS_KEY`], env.TEST_INSPECTOR_S3_ACCESS_KEY, `${r} is not the S3 root`)
    }
  }
  const passwords = ['GATEWAY', 'WORKER', 'ADMIN'].map((r) => env[`REDIS_${r}_PASSWORD`])
  t.equal(new Set(passwords).size, 3, 'one Redis password per role')
  t.ok(
    passwords.every((p) => (p ?? '').length >= 32),
    'random Redis passwords',
  )

  const text = await readFile(join(dir, 'env'), 'utf8')
  const lines = Object.entries(env).map(([k, v]) => `${k}=${v}`)
  t.same(text.trimEnd().split('\n').sort(), lines.sort())
  t.equal((await stat(join(dir, 'env'))).mode & 0o777, 0o600)

  // Coexists with the stack with-stack.ts may have started for this run.
  for (const k of ['REDIS_URL', 'MONGODB_URL', 'S3_ENDPOINT']) {
    if (process.env[k]) t.not(env[k], process.env[k], `${k} differs from the outer stack`)
  }
  t.notOk([stack.redis.port, stack.mongo.port, stack.s3.port].includes(6379), 'never the default redis port')
})

t.test('a second launcher on the same dir is refused', async (t) => {
  await t.rejects(startStack({ dir }), /already running/)
})

t.test('redis answers; without a user nothing at all', async (t) => {
  // A client of its own per command: ioredis 6 treats a NOAUTH reply as a reason to reconnect.
  for (const [name, run] of [
    ['PING', (c: Redis) => c.ping()],
    ['GET', (c: Redis) => c.get('stack-test')],
  ] as const) {
    const anon = new Redis(env.REDIS_URL!, { enableReadyCheck: false, maxRetriesPerRequest: 0 })
    anon.on('error', () => {})
    t.teardown(() => anon.disconnect())
    await t.rejects(run(anon), /NOAUTH/, `${name} without a user`)
  }
  const r = new Redis(env.TEST_INSPECTOR_REDIS_URL!)
  t.teardown(() => r.disconnect())
  await r.set('stack-test', 'hello')
  t.equal(await r.get('stack-test'), 'hello')
  t.equal(await r.config('GET', 'maxmemory-policy').then((v) => (v as string[])[1]), 'noeviction')
})

t.test('mongo (FerretDB) answers', async (t) => {
  const client = new MongoClient(env.MONGODB_URL!)
  t.teardown(() => client.close())
  const col = client.db().collection('stack_test')
  await col.insertOne({ _id: 'a' as never, n: 1 })
  t.same(await col.find({}, { projection: { _id: 0 } }).toArray(), [{ n: 1 }])
})

t.test('s3 answers and the bucket is private', async (t) => {
  const endpoint = new URL(env.S3_ENDPOINT!)
  const s3 = new MinioClient({
    endPoint: endpoint.hostname,
    port: Number(endpoint.port),
    useSSL: false,
    accessKey: env.TEST_INSPECTOR_S3_ACCESS_KEY!,
    secretKey: env.TEST_INSPECTOR_S3_SECRET_KEY!,
    region: env.S3_REGION!,
    pathStyle: true,
  })
  await s3.putObject(env.S3_BUCKET!, 'dir/hello.bin', Buffer.from([1, 2, 3, 4]))
  const chunks: Buffer[] = []
  for await (const c of await s3.getObject(env.S3_BUCKET!, 'dir/hello.bin')) chunks.push(c as Buffer)
  t.same([...Buffer.concat(chunks)], [1, 2, 3, 4])

  const anon = await fetch(`${env.S3_ENDPOINT}/${env.S3_BUCKET}/dir/hello.bin`)
  await anon.arrayBuffer()
  t.equal(anon.status, 403, 'anonymous GET refused')
})

t.test('redis restarts on the same port with its data (AOF)', async (t) => {
  const port = stack.redis.port
  const oldPid = stack.redis.pid
  await stack.redis.stop()
  t.equal(stack.redis.pid, undefined)
  t.notOk(await accepts(port), 'port closed while stopped')
  await stack.redis.start()
  t.equal(stack.redis.port, port)
  t.not(stack.redis.pid, oldPid)
  const r = new Redis(env.TEST_INSPECTOR_REDIS_URL!)
  t.teardown(() => r.disconnect())
  t.equal(await r.get('stack-test'), 'hello')
})

t.test('redis keeps a MULTI/EXEC of an ACL user across a crash (AOF replay)', async (t) => {
  // Redis replays the AOF as its default user and re-checks that user's rights at each EXEC
  // (redis/redis#14541): with a PING-only default user these writes were dropped at load.
  const w = new Redis(roleEnv(env, 'worker').REDIS_URL!)
  t.teardown(() => w.disconnect())
  await w.multi().set('{stack}:sessions:m1', '1').set('{stack}:sessions:m2', '2').exec()
  await stack.redis.kill('SIGKILL')
  await stack.redis.start()
  const r = new Redis(env.TEST_INSPECTOR_REDIS_URL!)
  t.teardown(() => r.disconnect())
  t.same(await r.mget('{stack}:sessions:m1', '{stack}:sessions:m2'), ['1', '2'])
})

t.test('ferretdb survives SIGKILL and restarts with its data', async (t) => {
  await stack.mongo.kill('SIGKILL')
  t.notOk(await accepts(stack.mongo.port))
  await stack.mongo.start()
  const client = new MongoClient(env.MONGODB_URL!)
  t.teardown(() => client.close())
  t.equal(await client.db().collection('stack_test').countDocuments(), 1)
})

t.test('stop closes every port', async (t) => {
  const ports = [stack.redis.port, stack.mongo.port, stack.s3.port]
  await stack.stop()
  for (const p of ports) t.notOk(await accepts(p), `port ${p} closed`)
  t.equal(stack.redis.pid ?? stack.mongo.pid ?? stack.s3.pid, undefined, 'no process left')
  await t.rejects(stat(join(dir, 'stack.pid')), 'pid file removed')
  await stack.stop() // twice is fine
})

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port })
    sock.once('connect', () => {
      sock.destroy()
      resolve(true)
    })
    sock.once('error', () => resolve(false))
  })
}
