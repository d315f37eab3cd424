// Least privilege (README "Least privilege"), checked on the running local stack: the users and policies come
// from the production sources (deploy/redis/users.acl.in, deploy/minio/policies/), and every
// other test runs the gateway, workers, admin panel and CLI under them, which proves the rights
// are enough. This file proves they are not more: the build fails if the internet-facing gateway's
// storage key can read, list or delete an object, or write outside media/ and pending/ (a photo's
// upload and its marker), or if its Redis user
// can run a command or touch a key outside its list.
import { randomBytes, randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { keys } from '../shared/keys.ts'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { readObject } from '../testing/media.ts'

const config = testConfig()
const k = keys(config.redisPrefix)

t.test(
  "object storage: each key has its role's rights and no more",
  {
    skip:
      process.env.STACK_S3 === 'versity' &&
      'the Versity gateway cannot express per-prefix policies; the local stack uses its root key for every role there (README "Least privilege")',
  },
  async (t) => {
    const root = createS3(config.s3) // the test-only inspector (root) key
    const gateway = createS3(asRole(config, 'gateway').s3)
    const worker = createS3(asRole(config, 'worker').s3)
    const admin = createS3(asRole(config, 'admin').s3)
    const { bucket, region } = config.s3
    await ensureBucket(root, bucket, region)
    const id = randomBytes(6).toString('hex')
    const finalKey = `wlp${id}/session/photo`
    const uploadId = randomUUID()
    const upload = `media/wlp${id}/session/photo/${uploadId}`
    const marker = `pending/wlp${id}/session/photo/${uploadId}`
    const body = Buffer.from(`least privilege ${id}`)
    await root.putObject(bucket, finalKey, body)
    t.teardown(() =>
      root
        .removeObjects(bucket, [
          finalKey,
          upload,
          marker,
          `staging/wlp${id}/a`,
          `staging/wlp${id}/b`,
          `wlp${id}/worker`,
          `wlp${id}/copy`,
          `conflicts/wlp${id}/s/m/x`,
        ])
        .catch(() => {}),
    )
    const denied = { code: 'AccessDenied' }

    t.test('gateway: writes photo uploads and their markers only, and can never read, list or delete', async (t) => {
      await gateway.putObject(bucket, upload, Buffer.from('uploaded'))
      await gateway.putObject(bucket, marker, Buffer.alloc(0))
      t.pass('PUT under media/ and pending/ is allowed')
      await t.rejects(readObject(gateway, bucket, upload), denied, 'GET of its own upload')
      await t.rejects(gateway.statObject(bucket, upload), denied, 'HEAD of its own upload')
      await t.rejects(readObject(gateway, bucket, finalKey), denied, 'GET of a stored photo')
      await t.rejects(gateway.statObject(bucket, finalKey), denied, 'HEAD of a stored photo')
      await t.rejects(gateway.putObject(bucket, finalKey, Buffer.from('overwrite')), denied, 'PUT outside media/ and pending/')
      await t.rejects(gateway.putObject(bucket, `staging/wlp${id}/a`, Buffer.from('x')), denied, 'PUT under staging/ (the earlier layout)')
      await t.rejects(gateway.putObject(bucket, `conflicts/wlp${id}/s/m/x`, Buffer.from('x')), denied, 'PUT under conflicts/')
      await t.rejects(gateway.removeObject(bucket, upload), denied, 'DELETE, even of its own upload')
      await t.rejects(gateway.removeObject(bucket, marker), denied, 'DELETE of a marker (the sweeper would lose sight of its upload)')
      await t.rejects(gateway.removeObject(bucket, finalKey), denied, 'DELETE of a stored photo')
      t.match(
        await gateway.removeObjects(bucket, [finalKey, upload]),
        [{ Code: 'AccessDenied' }, { Code: 'AccessDenied' }],
        'multi-object DELETE, refused per key',
      )
      await t.rejects(
        gateway.copyObject(bucket, `media/wlp${id}/s/m/${randomUUID()}`, `/${bucket}/${finalKey}`),
        denied,
        'server-side copy of a photo into media/',
      )
      const listing = new Promise((resolve, reject) => {
        const s = gateway.listObjectsV2(bucket, '', true)
        s.on('data', () => {})
        s.once('error', reject)
        s.once('end', resolve)
      })
      await t.rejects(listing, denied, 'LIST')
      await t.rejects(gateway.makeBucket(`wlp${id}`, region), denied, 'creating a bucket')
      await t.rejects(gateway.setBucketLifecycle(bucket, { Rule: [] }), denied, 'changing the lifecycle (e.g. expiring photos)')
      t.ok((await readObject(root, bucket, finalKey)).equals(body), 'the stored photo is unchanged')
    })

    t.test('admin panel and CLI: read and delete (session delete, workspace purge), never write', async (t) => {
      t.ok((await readObject(admin, bucket, finalKey)).equals(body), 'GET is allowed')
      await t.rejects(admin.putObject(bucket, `staging/wlp${id}/b`, Buffer.from('x')), denied, 'PUT')
      await t.rejects(admin.putObject(bucket, finalKey, Buffer.from('overwrite')), denied, 'PUT over a stored photo')
      await t.rejects(admin.putObject(bucket, `media/wlp${id}/s/m/${randomUUID()}`, Buffer.from('x')), denied, 'PUT of an upload')
      await t.rejects(admin.copyObject(bucket, `wlp${id}/copy`, `/${bucket}/${finalKey}`), denied, 'server-side copy (a write)')
      await t.rejects(admin.setBucketLifecycle(bucket, { Rule: [] }), denied, 'changing the lifecycle')
      await t.rejects(admin.setBucketPolicy(bucket, '{}'), denied, 'changing the bucket policy (e.g. making media public)')
      // What a deletion removes: uploads and their pending/ markers, earlier-layout final,
      // conflict and staged objects, one by one and in bulk.
      await root.putObject(bucket, upload, Buffer.from('u'))
      await root.putObject(bucket, marker, Buffer.alloc(0))
      await root.putObject(bucket, `staging/wlp${id}/b`, Buffer.from('s'))
      await root.putObject(bucket, `conflicts/wlp${id}/s/m/x`, Buffer.from('c'))
      t.same(
        await admin.removeObjects(bucket, [upload, marker, `staging/wlp${id}/b`, `conflicts/wlp${id}/s/m/x`]),
        [],
        'multi-object DELETE',
      )
      await t.rejects(root.statObject(bucket, upload), { code: 'NotFound' }, 'the upload is gone')
      await t.rejects(root.statObject(bucket, marker), { code: 'NotFound' }, 'its marker is gone')
      await admin.removeObject(bucket, finalKey)
      await t.rejects(root.statObject(bucket, finalKey), { code: 'NotFound' }, 'the stored photo is gone')
      await t.rejects(root.statObject(bucket, `staging/wlp${id}/b`), { code: 'NotFound' }, 'the staged upload is gone')
      await root.putObject(bucket, finalKey, body)
    })

    t.test('worker: reads and writes objects, but no bucket administration', async (t) => {
      await worker.putObject(bucket, `wlp${id}/worker`, Buffer.from('w'))
      t.ok((await readObject(worker, bucket, finalKey)).equals(body), 'GET')
      await worker.removeObject(bucket, `wlp${id}/worker`)
      t.pass('PUT and DELETE')
      // The retention run deletes stored photos and conflicting uploads with one multi-object DELETE.
      await root.putObject(bucket, `conflicts/wlp${id}/s/m/x`, Buffer.from('c'))
      await root.putObject(bucket, `wlp${id}/worker`, Buffer.from('w'))
      t.same(await worker.removeObjects(bucket, [`wlp${id}/worker`, `conflicts/wlp${id}/s/m/x`]), [], 'multi-object DELETE (retention)')
      await t.rejects(root.statObject(bucket, `conflicts/wlp${id}/s/m/x`), { code: 'NotFound' }, 'the conflict object is gone')
      await t.rejects(worker.makeBucket(`wlp${id}`, region), denied, 'creating a bucket')
      await t.rejects(worker.setBucketPolicy(bucket, '{}'), denied, 'changing the bucket policy (e.g. making media public)')
      await t.rejects(worker.setBucketLifecycle(bucket, { Rule: [] }), denied, 'changing the lifecycle (only deploy/minio/init.sh sets it)')
    })
  },
)

t.test('Redis: the gateway user runs only its commands on its keys', async (t) => {
  const gw = new Redis(asRole(config, 'gateway').redisUrl, { maxRetriesPerRequest: 0 })
  const root = new Redis(config.redisUrl)
  t.teardown(async () => {
    await root.del(k.tokens, `${config.redisPrefix}:idem:lp`)
    gw.disconnect()
    root.disconnect()
  })
  const noperm = /NOPERM/
  await root.hset(k.tokens, 'a'.repeat(64), '{"id":"t1"}')

  // What it needs: reading the token mirror, its own idempotency keys.
  t.equal(await gw.hget(k.tokens, 'a'.repeat(64)), '{"id":"t1"}', 'reads the token mirror')
  t.equal(await gw.set(`${config.redisPrefix}:idem:lp`, '1'), 'OK', 'writes an idempotency key')
  t.equal(await gw.hexists(k.deletedSessions('wlp'), 's'), 0, "reads a workspace's deleted-session tombstones")

  // Commands outside its list.
  for (const [name, run] of [
    ['KEYS', () => gw.keys('*')],
    ['SCAN', () => gw.scan('0')],
    ['FLUSHALL', () => gw.flushall()],
    ['FLUSHDB', () => gw.flushdb()],
    ['CONFIG SET', () => gw.config('SET', 'maxmemory-policy', 'allkeys-lru')],
    ['CONFIG REWRITE', () => gw.call('CONFIG', 'REWRITE')],
    ['FUNCTION FLUSH', () => gw.call('FUNCTION', 'FLUSH')],
    ['BGREWRITEAOF', () => gw.call('BGREWRITEAOF')],
    ['MONITOR', () => gw.call('MONITOR')],
    ['CLIENT LIST', () => gw.call('CLIENT', 'LIST')],
    ['ACL LIST', () => gw.call('ACL', 'LIST')],
    ['SCRIPT FLUSH', () => gw.call('SCRIPT', 'FLUSH')],
    ['SHUTDOWN', () => gw.call('SHUTDOWN', 'NOSAVE')],
    ['PUBLISH', () => gw.publish(k.tokensChannel, 'x')],
    ['HDEL', () => gw.hdel(k.tokens, 'a'.repeat(64))],
  ] as const) {
    await t.rejects(run(), noperm, `${name} is refused`)
  }

  // Keys outside its patterns.
  await t.rejects(gw.hset(k.tokens, 'b'.repeat(64), '{"id":"forged"}'), noperm, 'writing the token mirror (a made-up DSN made valid)')
  await t.rejects(gw.set(k.tokensSynced, '1'), noperm, 'writing tokens:synced')
  await t.rejects(gw.get(`${config.redisPrefix}:admin:sessions:x`), noperm, 'an admin panel key')
  // Outbound webhooks are the workers' queue: the internet-facing process can neither add a
  // delivery (a request to a URL of its choosing) nor read one.
  await t.rejects(gw.hset(`${config.redisPrefix}:deliveries:d1`, 'data', '{}'), noperm, 'writing a deliveries job')
  await t.rejects(gw.hget(`${config.redisPrefix}:deliveries:d1`, 'data'), noperm, 'reading a deliveries job')
  await t.rejects(gw.zadd(`${config.redisPrefix}:deliveries:failed`, 1, 'd1'), noperm, "the deliveries queue's failed set")
  await t.rejects(gw.set('rdt-no-prefix', '1'), noperm, 'a key outside any prefix')
  await t.rejects(gw.get('rdt:tokens'), noperm, 'a prefix that is not a hash tag')
  // Scripts are checked against the user that runs them.
  await t.rejects(gw.eval("return redis.call('HSET', KEYS[1], 'c', 'forged')", 1, k.tokens), noperm, 'a script writing the token mirror')
  t.equal(await root.hget(k.tokens, 'b'.repeat(64)), null, 'no forged token entry')
})

t.test('Redis: the worker and admin users cannot administer the server', async (t) => {
  for (const role of ['worker', 'admin'] as const) {
    const r = new Redis(asRole(config, role).redisUrl, { maxRetriesPerRequest: 0 })
    t.teardown(() => r.disconnect())
    await t.rejects(r.flushall(), /NOPERM/, `${role}: FLUSHALL`)
    await t.rejects(r.keys('*'), /NOPERM/, `${role}: KEYS`)
    await t.rejects(r.config('SET', 'appendonly', 'no'), /NOPERM/, `${role}: CONFIG SET`)
  }
  const admin = new Redis(asRole(config, 'admin').redisUrl, { maxRetriesPerRequest: 0 })
  t.teardown(() => admin.disconnect())
  // Both need the deliveries queue: workers add and run its jobs, the admin panel and CLI retry
  // dead letters and queue test deliveries.
  for (const [role, r] of [
    ['worker', new Redis(asRole(config, 'worker').redisUrl, { maxRetriesPerRequest: 0 })],
    ['admin', admin],
  ] as const) {
    if (role === 'worker') t.teardown(() => r.disconnect())
    t.equal(await r.hget(`${config.redisPrefix}:deliveries:none`, 'data'), null, `${role}: reads the deliveries queue`)
  }
  await t.rejects(admin.get(`${config.redisPrefix}:idem:x`), /NOPERM/, "admin: the gateway's idempotency keys")
  // `session delete` mirrors its tombstone; the worker re-mirrors lost ones.
  const tomb = k.deletedSessions('wlp-admin')
  t.equal(await admin.hset(tomb, 's1', '1'), 1, 'admin: writes a tombstone')
  const worker = new Redis(asRole(config, 'worker').redisUrl, { maxRetriesPerRequest: 0 })
  t.teardown(() => worker.disconnect())
  t.equal(await worker.hlen(tomb), 1, 'worker: reads the tombstones (re-mirroring)')
  t.equal(await admin.del(tomb), 1)
})
