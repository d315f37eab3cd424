// Deletion against uploads in flight, with a real worker process (worker/server.ts) and the real
// CLI: a job already queued for a deleted session must not bring it back, and neither must a job
// that a worker is storing while the deletion runs (deletion/tombstones.ts says why both hold).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createDeletionAdmin } from '../deletion/admin.ts'
import { spawnProc, type Proc } from '../faults/lib/processes.ts'
import { buildGateway } from '../gateway/app.ts'
import { keys } from '../shared/keys.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { Redis } from 'ioredis'
import { createWorkerRedis } from '../shared/redis.ts'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { fakeJpeg } from '../testing/media.ts'
import { deleteKeysWithPrefix } from '../testing/redis-keys.ts'
import { seedToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { runCliProcess } from './helpers/cli-process.ts'
import { asRole, inspectorQueues, roleProcessEnv, testConfig } from './helpers/env.ts'
import { FIXTURES } from './helpers/worker-harness.ts'

const config = testConfig({ S3_BUCKET: `wt-${randomBytes(5).toString('hex')}` })
const bucket = config.s3.bucket
const s3 = createS3(config.s3) // the inspector's key, for checks
await ensureBucket(s3, bucket, config.s3.region)
const { client, db } = await connectMongo(config.mongodbUrl, 1)
const c = collections(db)
const inspector = new Redis(config.redisUrl, { maxRetriesPerRequest: null })
const queues = inspectorQueues(t, config)
const seeded = await seedToken(config, { slug: 'inflight' })
const ws = seeded.workspaceId
const gateway = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
await gateway.listen({ port: 0, host: '127.0.0.1' })
const port = (gateway.server.address() as AddressInfo).port
const logDir = mkdtempSync(join(tmpdir(), 'rdt-deletion-'))

const processEnv = {
  REDIS_PREFIX: config.redisPrefix,
  MONGODB_URL: config.mongodbUrl,
  S3_BUCKET: bucket,
  PUBLIC_URL: 'https://x.test',
}
let worker: Proc | null = null
const startWorker = async () => {
  worker = spawnProc('worker', roleProcessEnv('worker', { ...processEnv, LOG_LEVEL: 'info', METRICS_PORT: '0' }), logDir)
  await worker.waitForLine(/worker started/, 90_000)
}

t.teardown(async () => {
  await worker?.terminate(20_000)
  await gateway.close()
  await db.dropDatabase().catch(() => {})
  await client.close()
  await deleteKeysWithPrefix(inspector, config.redisPrefix)
  inspector.disconnect()
  const names: string[] = []
  for await (const o of s3.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>) if (o.name) names.push(o.name)
  if (names.length) await s3.removeObjects(bucket, names)
  await s3.removeBucket(bucket).catch(() => {})
  rmSync(logDir, { recursive: true, force: true })
})

function put(path: string, body: Buffer | string, type = 'application/json'): Promise<number> {
  const bytes = Buffer.from(body)
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'PUT', path, headers: { 'content-type': type, 'content-length': bytes.length } },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('error', reject)
    req.end(bytes)
  })
}

/** A whole session as a phone sends it: the session, its logs, two photos; the statuses. */
async function upload(session: string): Promise<number[]> {
  const base = `/ingest/${seeded.token}/test_session/${session}`
  return [
    await put(`${base}/`, FIXTURES.sessionRdtoolkit),
    await put(`${base}/logs/`, FIXTURES.logsRdtoolkit),
    ...(await Promise.all(['raw', 'cropped'].map((m) => put(`${base}/media/${m}/`, fakeJpeg(20_000), 'image/jpeg')))),
  ]
}

async function listKeys(prefix: string): Promise<string[]> {
  const out: string[] = []
  for await (const o of s3.listObjectsV2(bucket, prefix, true) as AsyncIterable<{ name?: string }>) if (o.name) out.push(o.name)
  return out
}

/** Until no job is waiting, delayed or running: a poll, since the worker is another process. */
async function drained(): Promise<void> {
  await waitFor(
    async () => {
      for (const q of [queues.sessions, queues.logs, queues.media]) {
        const n = await q.getJobCounts('wait', 'active', 'delayed', 'prioritized')
        if (Object.values(n).some((v) => v > 0)) return false
      }
      return true
    },
    { timeoutMs: 120_000, intervalMs: 200, what: 'the queues to drain' },
  )
}

/**
 * Every key of the session, found by listing the whole bucket (this test's own), not through
 * objectKeys.sessionPrefixes: an object under a prefix the deletion does not know of is found too.
 */
async function keysOf(session: string): Promise<string[]> {
  return (await listKeys('')).filter((k) => k.includes(`${ws}/${session}/`))
}

/** Nothing of the session in any collection or anywhere in the bucket. */
async function assertGone(t: Test, session: string): Promise<void> {
  const of = { workspace_id: ws, session_id: session }
  let docs = 0
  for (const coll of [c.sessions, c.logs, c.logBatches, c.media, c.conflicts]) docs += await coll.countDocuments(of)
  t.equal(docs, 0, `${session}: no document`)
  t.same(await keysOf(session), [], `${session}: no object`)
}

async function assertStored(t: Test, session: string): Promise<void> {
  const of = { workspace_id: ws, session_id: session }
  t.equal(await c.sessions.countDocuments(of), 1, `${session}: stored`)
  t.equal(await c.logBatches.countDocuments(of), 1, `${session}: its logs`)
  t.equal(await c.media.countDocuments(of), 2, `${session}: its photos`)
  t.equal((await listKeys(`media/${ws}/${session}/`)).length, 2, `${session}: its photo objects`)
  t.same(await listKeys(`pending/${ws}/${session}/`), [], `${session}: its uploads settled`)
}

t.test('jobs queued while the worker is stopped store nothing of a session deleted meanwhile', async (t) => {
  const gone = ['q-gone-0', 'q-gone-1', 'q-gone-2']
  const kept = ['q-kept-0', 'q-kept-1']
  for (const s of [...gone, ...kept]) t.same(await upload(s), [201, 201, 201, 201], `${s} accepted`)
  // Written but not recorded: the uploads and their pending/ markers are there, their jobs queued.
  t.equal((await listKeys(`media/${ws}/q-gone-0/`)).length, 2, 'its photos are uploaded, their jobs queued')
  t.equal((await listKeys(`pending/${ws}/q-gone-0/`)).length, 2, 'with their markers')

  for (const s of gone) {
    const res = await runCliProcess(['session', 'delete', '--workspace', 'inflight', s, '--json'], roleProcessEnv('cli', processEnv))
    t.equal(res.code, 0, res.stderr)
    // Nothing recorded yet: only the two uploads and their two markers go.
    t.match(JSON.parse(res.stdout), { removed: { test_sessions: 0 }, objects: 4 }, `${s}: its unrecorded uploads deleted`)
  }

  await startWorker()
  await drained()
  for (const s of gone) await assertGone(t, s)
  for (const s of kept) await assertStored(t, s)
  const session = await queues.sessions.getJob(`s.${ws}.q-gone-0`)
  t.same(session?.returnvalue, { outcome: 'deleted' }, 'the session job was dropped, not failed')
  const media = await queues.media.getJob(`m.${ws}.q-gone-0.raw`)
  t.same(media?.returnvalue, { outcome: 'deleted' }, 'so was the photo job')
  t.equal(Number(await inspector.get(keys(config.redisPrefix).stagedMediaBytes)), 0, 'the dropped photos released their unsettled bytes')
  t.equal(await queues.media.getFailedCount(), 0, 'no job failed')
})

t.test('deletions while the worker stores under load: nothing deleted comes back', async (t) => {
  if (!worker) await startWorker()
  // The same code the CLI runs, in this process so that deletions overlap the uploads closely.
  const adminRedis = createWorkerRedis(asRole(config, 'admin'))
  t.teardown(() => adminRedis.disconnect())
  const admin = createDeletionAdmin({
    db,
    redis: adminRedis,
    prefix: config.redisPrefix,
    publicUrl: 'https://x.test',
    s3: createS3(asRole(config, 'admin').s3),
    bucket,
  })
  const sessions = Array.from({ length: 24 }, (_, i) => `c-${i}`)
  const gone = sessions.filter((_, i) => i % 2 === 0)
  const deletions: Promise<unknown>[] = []
  // Eight phones at a time; each even session is deleted as soon as its session JSON was accepted,
  // while its logs and photos (and other sessions) are still being uploaded and stored.
  const queue = [...sessions]
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
        const base = `/ingest/${seeded.token}/test_session/${s}`
        t.equal(await put(`${base}/`, FIXTURES.sessionRdtoolkit), 201)
        if (gone.includes(s)) deletions.push(admin.deleteSession('inflight', s, 'test:concurrent'))
        // After the deletion started these may be 201 (before its tombstone) or 409 (after).
        await put(`${base}/logs/`, FIXTURES.logsRdtoolkit)
        await Promise.all(['raw', 'cropped'].map((m) => put(`${base}/media/${m}/`, fakeJpeg(20_000), 'image/jpeg')))
      }
    }),
  )
  await Promise.all(deletions)
  await drained()
  for (const s of gone) await assertGone(t, s)
  for (const s of sessions.filter((x) => !gone.includes(x))) await assertStored(t, s)
  t.equal(await queues.sessions.getFailedCount(), 0, 'no session job failed')
  t.equal(await queues.logs.getFailedCount(), 0, 'no logs job failed')
  t.equal(await queues.media.getFailedCount(), 0, 'no photo job failed')
  // And the phones' retries now: 409, nothing stored.
  t.same(await upload(gone[0]!), [409, 409, 409, 409])
  await drained()
  await assertGone(t, gone[0]!)
})
