// Outbound webhook delivery throughput and latency: a measurement, not a test (it prints
// figures and never fails on them). Runs a worker in this process against the local stack, with
// a real HTTP receiver on 127.0.0.1 (testing/webhook-receiver.ts):
//
//   npx tsx stack/with-stack.ts -- npx tsx bench/webhooks.ts [--records 2000] [--receiver-ms 0,50]
//
// Phase "end to end": N session jobs queued at once; per record, the time from its job being
// queued to its delivery reaching the receiver (sessions worker stores it, queues the delivery,
// the deliveries worker signs and POSTs it). Phase "deliveries only": N delivery jobs for
// already stored records, queued at once, for each receiver answer time given.
import { deleteKeysWithPrefix } from '../testing/redis-keys.ts'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { MongoClient } from 'mongodb'
import { pino } from 'pino'
import { inspectorEnv, roleEnv } from '../stack/roles.ts'
import { loadTestConfig, type TestConfig } from '../testing/config.ts'
import { startReceiver } from '../testing/webhook-receiver.ts'
import { jobIds } from '../shared/keys.ts'
import { defaultJobOptions } from '../shared/queue-settings.ts'
import type { DeliveryJob } from '../shared/queues.ts'
import { buildWorker } from '../worker/app.ts'
import { addWebhook } from '../webhooks/endpoints.ts'
import { deliveryId } from '../webhooks/events.ts'
import { deliveryJobOptions } from '../webhooks/retry-schedule.ts'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'

const { values } = parseArgs({
  options: { records: { type: 'string', default: '2000' }, 'receiver-ms': { type: 'string', default: '0,50' } },
})
const N = Number(values.records)
const receiverDelays = String(values['receiver-ms']).split(',').map(Number)
const SECRET = 'bench-secret-0123456789abcdef'

const id = randomBytes(5).toString('hex')
const mongo = new URL(process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27017/rdt')
mongo.pathname = `/bench_wh_${id}`
const env = {
  ...inspectorEnv(process.env),
  REDIS_PREFIX: `{bw${id}}`,
  MONGODB_URL: mongo.toString(),
  LOG_LEVEL: 'warn',
  WEBHOOK_ALLOW_PRIVATE: '1',
}
const config: TestConfig = loadTestConfig(env)
const workerEnv = roleEnv(process.env, 'worker')
const workerConfig = {
  ...config,
  redisUrl: workerEnv.REDIS_URL ?? config.redisUrl,
  s3: {
    ...config.s3,
    accessKey: workerEnv.S3_ACCESS_KEY ?? config.s3.accessKey,
    secretKey: workerEnv.S3_SECRET_KEY ?? config.s3.secretKey,
  },
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
function summary(latencies: number[]) {
  const s = [...latencies].sort((a, b) => a - b)
  return `p50 ${pct(s, 50)} ms, p95 ${pct(s, 95)} ms, p99 ${pct(s, 99)} ms, max ${s.at(-1)} ms`
}

const client = await MongoClient.connect(config.mongodbUrl)
const db = client.db()
const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null })
const worker = await buildWorker({ config: { ...workerConfig, workerQueues: ['sessions', 'deliveries'] }, logger: pino({ level: 'warn' }) })
const receiver = await startReceiver(SECRET)
const ws = 'w' + randomBytes(8).toString('hex')
await db
  .collection('workspaces')
  .insertOne({ _id: ws as never, slug: `bench-${id}`, name: 'bench', active: true, created_at: new Date(), updated_at: new Date() })
const hook = await addWebhook(db, { workspace: ws, url: receiver.url, secret: SECRET, events: ['session.stored'], actor: 'bench' })
const sessions = new Queue('sessions', { connection: redis, prefix: config.redisPrefix })
const deliveries = new Queue('deliveries', { connection: redis, prefix: config.redisPrefix })
const body = readFileSync(new URL('../testing/fixtures/session-rdtoolkit.json', import.meta.url), 'utf8')
console.log(
  `webhooks bench: ${N} records, worker concurrency sessions ${config.workerConcurrency.sessions}, deliveries ${config.workerConcurrency.deliveries}`,
)

try {
  // End to end.
  const queuedAt = new Map<string, number>()
  const jobs = Array.from({ length: N }, (_, i) => {
    const session = `bench-${i}`
    const text = body.replace(/"id"\s*:\s*"[^"]*"/, `"id": "${session}"`)
    const data = {
      kind: 'session',
      workspace_id: ws,
      session_id: session,
      token_id: 'bench',
      received_at: new Date().toISOString(),
      sha256: createHash('sha256').update(text).digest('hex'),
      body: text,
    }
    return { name: 'session', data, opts: { ...defaultJobOptions, jobId: jobIds.session(ws, session) } }
  })
  const t0 = Date.now()
  for (let i = 0; i < jobs.length; i += 500) {
    const chunk = jobs.slice(i, i + 500)
    await sessions.addBulk(chunk)
    const now = Date.now()
    for (const j of chunk)
      queuedAt.set(deliveryId(hook.id, { event: 'session.stored', workspace_id: ws, session_id: j.data.session_id }), now)
  }
  await receiver.until(() => receiver.delivered().size >= N, { timeoutMs: 600_000, what: `${N} deliveries` })
  const elapsed = Date.now() - t0
  const lat = [...receiver.delivered()].map(([d, [r]]) => r!.at - queuedAt.get(d)!)
  const bad = receiver.requests.filter((r) => !r.signatureOk).length
  console.log(
    `end to end (queued session -> stored -> delivered): ${N} in ${(elapsed / 1000).toFixed(1)} s = ${Math.round((N * 1000) / elapsed)} deliveries/s; latency ${summary(lat)}; ${bad} bad signatures`,
  )

  // Deliveries only: the stored records again, to a fresh endpoint (new delivery ids).
  for (const delayMs of receiverDelays) {
    const h = await addWebhook(db, { workspace: ws, url: receiver.url, secret: SECRET, events: ['session.stored'], actor: 'bench' })
    receiver.requests.length = 0
    receiver.behaviour.delayMs = delayMs
    receiver.behaviour.slowNext = delayMs > 0 ? Number.MAX_SAFE_INTEGER : 0
    const added = new Map<string, number>()
    const opts = deliveryJobOptions(config.webhooks)
    // With each record's _id, as the worker queues them (worker/webhook-fanout.ts).
    const ids = new Map<string, string>()
    for await (const d of db.collection('test_sessions').find({ workspace_id: ws }, { projection: { session_id: 1 } }))
      ids.set(String(d.session_id), d._id.toHexString())
    const list = Array.from({ length: N }, (_, i) => {
      const ref = { event: 'session.stored' as const, workspace_id: ws, session_id: `bench-${i}` }
      const did = deliveryId(h.id, ref)
      const data: DeliveryJob = { kind: 'delivery', endpoint_id: h.id, delivery_id: did, ...ref, record_id: ids.get(ref.session_id) }
      return { name: ref.event, data, opts: { ...opts, jobId: did } }
    })
    const t1 = Date.now()
    for (let i = 0; i < list.length; i += 500) {
      const chunk = list.slice(i, i + 500)
      await deliveries.addBulk(chunk)
      const now = Date.now()
      for (const j of chunk) added.set(j.data.delivery_id, now)
    }
    await receiver.until(() => receiver.delivered().size >= N, { timeoutMs: 600_000, what: `${N} deliveries` })
    const el = Date.now() - t1
    const l = [...receiver.delivered()].map(([d, [r]]) => r!.at - added.get(d)!)
    // Where a delivery's time goes: the whole processor run, and the HTTP exchange within it.
    const done = (await deliveries.getJobs(['completed'], 0, 199)).filter((j) => j.data.endpoint_id === h.id)
    const run = done.map((j) => (j.finishedOn ?? 0) - (j.processedOn ?? 0))
    const http = done.map((j) => (j.returnvalue as { ms?: number }).ms ?? 0)
    console.log(`  per delivery (sample of ${done.length}): processor run ${summary(run)}; HTTP exchange ${summary(http)}`)
    console.log(
      `deliveries only, receiver answering in ${delayMs} ms: ${N} in ${(el / 1000).toFixed(1)} s = ${Math.round((N * 1000) / el)} deliveries/s; latency (queued -> received) ${summary(l)}`,
    )
  }
} finally {
  await receiver.close()
  await worker.close()
  await sessions.close()
  await deliveries.close()
  await db.dropDatabase().catch(() => {})
  await client.close()
  await deleteKeysWithPrefix(redis, config.redisPrefix)
  redis.disconnect()
}
