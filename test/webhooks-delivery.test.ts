// Outbound webhooks end to end on the real stack: records stored by the worker are delivered to
// a real local HTTP receiver (testing/webhook-receiver.ts), signed, retried with backoff, kept as
// dead letters when the schedule runs out, and never sent to a private address unless allowed.
import { randomBytes } from 'node:crypto'
import { Queue } from 'bullmq'
import t, { type Test } from 'tap'
import { startReceiver, type Receiver } from '../testing/webhook-receiver.ts'
import { waitFor } from '../testing/wait.ts'
import { watchJobs } from '../testing/job-events.ts'
import { buildWorker } from '../worker/app.ts'
import { addWebhook, removeWebhook } from '../webhooks/endpoints.ts'
import { deliveryId } from '../webhooks/events.ts'
import { listDeadLetters, retryDeadLetter } from '../webhooks/dead-letters.ts'
import { asRole } from './helpers/env.ts'
import { shardPrefix } from '../shared/redis-shards.ts'
import {
  captureLogger,
  FIXTURES,
  fakeJob,
  jobIdFor,
  logsJob,
  randomId,
  sessionJob,
  stageMedia,
  startTestWorker,
  type TestStack,
} from './helpers/worker-harness.ts'

const SECRET = 'receiver-secret-0123456789'
/** Fast retries so that a test sees several attempts; the schedule's shape is the product's. */
const FAST = {
  WEBHOOK_ALLOW_PRIVATE: '1',
  WEBHOOK_BACKOFF_MS: '50',
  WEBHOOK_BACKOFF_CAP_MS: '200',
  WEBHOOK_RETRY_FOR_MS: '600000',
  WEBHOOK_TIMEOUT_MS: '2000',
}

interface Setup {
  stack: TestStack
  receiver: Receiver
  ws: string
  hookId: string
  deliveries: Queue
}

async function setup(t: Test, env: Record<string, string> = {}, events?: string): Promise<Setup> {
  const stack = await startTestWorker(t, { ...FAST, ...env })
  const receiver = await startReceiver(SECRET)
  t.teardown(() => receiver.close())
  const ws = 'w' + randomBytes(8).toString('hex')
  const now = new Date()
  await stack.db
    .collection('workspaces')
    .insertOne({ _id: ws as never, slug: `ws-${ws}`, name: ws, active: true, created_at: now, updated_at: now })
  const hook = await addWebhook(stack.db, { workspace: ws, url: receiver.url, secret: SECRET, events, actor: 'test' })
  const deliveries = new Queue('deliveries', { connection: stack.redis, prefix: stack.config.redisPrefix })
  t.teardown(() => deliveries.close())
  return { stack, receiver, ws, hookId: hook.id, deliveries }
}

const sessionBody = (id: string) => FIXTURES.sessionRdtoolkit.replace(/"id"\s*:\s*"[^"]*"/, `"id": "${id}"`)
const jpeg = (n: number) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0'), randomBytes(n)])

/**
 * Waits for the delivery jobs to be completed. The receiver records a request before the worker
 * has recorded the job's completion, and nothing announces that on our side, so poll.
 */
async function completed(s: Setup, ids: string[]) {
  await waitFor(async () => (await Promise.all(ids.map((id) => s.deliveries.getJobState(id)))).every((st) => st === 'completed'), {
    what: `${ids.length} delivery job(s) to complete`,
  })
}

async function storeSession(s: Setup, session: string) {
  const data = sessionJob(s.ws, session, sessionBody(session))
  await s.stack.add('sessions', data)
  const { state } = await s.stack.settled('sessions', jobIdFor(data))
  if (state !== 'completed') throw new Error(`session job ${session} ended ${state}`)
  return data
}

t.test('a receiver that fails 3 times gets the 4th attempt; one delivery id, every signature verifies', async (t) => {
  const s = await setup(t)
  s.receiver.behaviour.failNext = 3
  const session = randomId('s')
  const data = await storeSession(s, session)
  const id = deliveryId(s.hookId, { event: 'session.stored', workspace_id: s.ws, session_id: session })
  await s.receiver.until(() => s.receiver.delivered().has(id), { what: 'the delivery to succeed' })
  const all = s.receiver.requests
  t.same(
    all.map((r) => r.status),
    [500, 500, 500, 200],
    'three failed attempts, then one success, and nothing after it',
  )
  t.ok(
    all.every((r) => r.deliveryId === id),
    'the same X-RDT-Delivery on every attempt',
  )
  t.ok(
    all.every((r) => r.signatureOk),
    'every request is signed with the endpoint secret',
  )
  t.ok(
    all.every((r) => r.event === 'session.stored' && /^\d{10}$/.test(r.timestamp)),
    'event and timestamp headers',
  )
  const last = all.at(-1)!.json
  t.equal(last.id, id)
  t.equal(last.event, 'session.stored')
  t.equal(last.workspace_id, s.ws)
  t.equal(last.session_id, session)
  const record = last.data as Record<string, unknown>
  t.equal(record.raw_body, data.body, 'the stored record, exact body included')
  t.notOk('_id' in record, "MongoDB's _id is not sent")
  await completed(s, [id])
  const job = await s.deliveries.getJob(id)
  t.equal(job?.attemptsMade, 4, 'four attempts')
  const stored = await s.stack.db.collection('test_sessions').findOne({ workspace_id: s.ws, session_id: session })
  t.equal(job?.data.record_id, stored?._id.toHexString(), "the job carries the stored document's _id (a primary-key read)")
})

t.test('every stored session, logs batch and photo is delivered once, and every delivery verifies', async (t) => {
  const s = await setup(t)
  // Failures spread over the first deliveries: each is retried until it gets through.
  s.receiver.behaviour.failNext = 7
  const expected = new Set<string>()
  const sessions: ReturnType<typeof sessionJob>[] = []
  for (let i = 0; i < 10; i++) {
    const session = randomId('s')
    const data = sessionJob(s.ws, session, sessionBody(session))
    sessions.push(data)
    await s.stack.add('sessions', data)
    expected.add(deliveryId(s.hookId, { event: 'session.stored', workspace_id: s.ws, session_id: session }))
  }
  for (let i = 0; i < 5; i++) {
    const data = logsJob(s.ws, sessions[i]!.session_id, FIXTURES.logsRdtoolkit.replace('{', `{"n": ${i},`))
    await s.stack.add('logs', data)
    expected.add(deliveryId(s.hookId, { event: 'logs.stored', workspace_id: s.ws, session_id: data.session_id, extra: data.sha256 }))
  }
  for (let i = 0; i < 3; i++) {
    const data = await stageMedia(s.stack, { ws: s.ws, session: sessions[i]!.session_id, media: 'cropped', bytes: jpeg(5000) })
    await s.stack.add('media', data)
    expected.add(deliveryId(s.hookId, { event: 'media.stored', workspace_id: s.ws, session_id: data.session_id, extra: 'cropped' }))
  }
  await s.receiver.until(() => s.receiver.delivered().size >= expected.size, { what: `${expected.size} deliveries`, timeoutMs: 60_000 })
  const delivered = s.receiver.delivered()
  t.same(new Set(delivered.keys()), expected, 'one delivery per stored record, with the expected ids')
  t.ok(
    [...delivered.values()].every((list) => list.length === 1),
    'none delivered twice',
  )
  t.ok(
    s.receiver.requests.every((r) => r.signatureOk),
    `all ${s.receiver.requests.length} requests verify`,
  )
  const media = [...delivered.values()].flat().filter((r) => r.event === 'media.stored')
  t.ok(
    media.every(
      (r) =>
        (r.json.data as { media_id?: string }).media_id === 'cropped' && typeof (r.json.data as { sha256?: string }).sha256 === 'string',
    ),
    'photo deliveries carry the media document (metadata; not the bytes)',
  )

  await completed(s, [...expected])
  // A record job run again after everything was delivered (a stalled lock, a retry) adds nothing:
  // the delivery job ids are deterministic and the completed jobs are still there.
  const before = await s.deliveries.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed')
  await s.stack.app.processors.get('sessions')!(fakeJob(sessions[0]))
  const after = await s.deliveries.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed')
  t.same(after, before, 'a re-run of a stored record job queues no second delivery')
})

t.test('a record_id that names another document is not trusted: the record is read by its ids', async (t) => {
  const s = await setup(t)
  const a = randomId('s')
  const b = randomId('s')
  await storeSession(s, a)
  await storeSession(s, b)
  await s.receiver.until(() => s.receiver.delivered().size === 2)
  const docA = await s.stack.db.collection('test_sessions').findOne({ workspace_id: s.ws, session_id: a })
  // A second endpoint, so the delivery id is new; its job claims session A's _id for session B.
  const other = await addWebhook(s.stack.db, { workspace: s.ws, url: s.receiver.url, secret: SECRET, actor: 'test' })
  const id = deliveryId(other.id, { event: 'session.stored', workspace_id: s.ws, session_id: b })
  await s.deliveries.add(
    'session.stored',
    {
      kind: 'delivery',
      event: 'session.stored',
      endpoint_id: other.id,
      delivery_id: id,
      workspace_id: s.ws,
      session_id: b,
      record_id: docA!._id.toHexString(),
    },
    { jobId: id },
  )
  await s.receiver.until(() => s.receiver.delivered().has(id))
  t.equal((s.receiver.delivered().get(id)![0]!.json.data as { session_id: string }).session_id, b, "session B's record, not A's")
})

t.test('a receiver down across a worker restart gets every delivery once it is back', async (t) => {
  const s = await setup(t)
  await s.receiver.close()
  const ids: string[] = []
  for (let i = 0; i < 5; i++) {
    const session = randomId('s')
    await storeSession(s, session)
    ids.push(deliveryId(s.hookId, { event: 'session.stored', workspace_id: s.ws, session_id: session }))
  }
  // Nothing announces a failed attempt that will be retried, so poll the jobs' attempt counts.
  await waitFor(async () => (await Promise.all(ids.map((id) => s.deliveries.getJob(id)))).every((j) => (j?.attemptsMade ?? 0) >= 2), {
    what: 'every delivery to have failed twice',
  })
  await s.stack.app.close()
  await s.receiver.reopen()
  const { logger } = captureLogger()
  const again = await buildWorker({ config: asRole(s.stack.config, 'worker'), logger, closeDeadlineMs: 2000 })
  t.teardown(() => again.close())
  await s.receiver.until(() => ids.every((id) => s.receiver.delivered().has(id)), { what: 'the deliveries after the restart' })
  t.equal(s.receiver.requests.length, 5, 'each delivered once (the failed attempts never reached the receiver)')
  t.ok(
    s.receiver.requests.every((r) => r.signatureOk),
    'and each verifies',
  )
  for (const id of ids) {
    const job = await s.deliveries.getJob(id)
    t.equal(await job?.getState(), 'completed', `${id} completed`)
    t.ok((job?.attemptsMade ?? 0) >= 3, 'after its failed attempts')
  }
})

t.test('a slow receiver: an answer past the timeout is a failed attempt, and the retry gets through', async (t) => {
  const s = await setup(t, { WEBHOOK_TIMEOUT_MS: '500' })
  // Within the timeout: delivered at the first attempt.
  s.receiver.behaviour.delayMs = 200
  s.receiver.behaviour.slowNext = 1
  const first = randomId('s')
  await storeSession(s, first)
  const firstId = deliveryId(s.hookId, { event: 'session.stored', workspace_id: s.ws, session_id: first })
  await s.receiver.until(() => s.receiver.delivered().has(firstId))
  await completed(s, [firstId])
  t.equal((await s.deliveries.getJob(firstId))?.attemptsMade, 1, 'a slow answer within the timeout is one attempt')

  // Past it: the worker gives up on the first request, and the second (fast) one succeeds.
  s.receiver.behaviour.delayMs = 3000
  s.receiver.behaviour.slowNext = 1
  const second = randomId('s')
  await storeSession(s, second)
  const secondId = deliveryId(s.hookId, { event: 'session.stored', workspace_id: s.ws, session_id: second })
  await s.receiver.until(() => s.receiver.delivered().has(secondId))
  await completed(s, [secondId])
  const done = await s.deliveries.getJob(secondId)
  t.equal(done?.attemptsMade, 2, 'the slow attempt failed, the next one succeeded')
  t.match(done?.failedReason, /no complete answer within 500 ms/, 'the first attempt was cut at the timeout')
})

t.test('when the schedule runs out the delivery is a dead letter, and a retry sends it again', async (t) => {
  // 50 ms, then 100 ms: 3 attempts fit in 300 ms.
  const s = await setup(t, { WEBHOOK_RETRY_FOR_MS: '300' })
  s.receiver.behaviour.failNext = 1000
  const watch = await watchJobs(t, { redisUrl: s.stack.config.redisUrl, prefix: s.stack.config.redisPrefix, queue: 'deliveries' })
  const session = randomId('s')
  const id = deliveryId(s.hookId, { event: 'session.stored', workspace_id: s.ws, session_id: session })
  const settled = watch.settled([id], { what: 'the delivery to fail for good' })
  await storeSession(s, session)
  const [outcome] = await settled
  t.equal(outcome?.state, 'failed')
  t.equal(s.receiver.requests.length, 3, 'three attempts')
  const dead = await listDeadLetters([s.deliveries], s.ws)
  t.equal(dead.jobs.length, 1, 'listed as a dead letter of the workspace')
  t.equal(dead.jobs[0]?.id, id)
  t.match(dead.jobs[0]?.failed_reason, /answered 500/)
  t.equal((await listDeadLetters([s.deliveries], 'w0000000000000000')).jobs.length, 0, "not another workspace's")
  await t.rejects(retryDeadLetter([s.deliveries], s.stack.db, 'w0000000000000000', id, 'test'), { code: 'unknown_delivery' })

  s.receiver.behaviour.failNext = 0
  await retryDeadLetter([s.deliveries], s.stack.db, s.ws, id, 'admin:test@example.org')
  await s.receiver.until(() => s.receiver.delivered().has(id), { what: 'the retried delivery' })
  t.equal(s.receiver.delivered().get(id)?.[0]?.deliveryId, id, 'the same delivery id as before')
  const audit = await s.stack.db.collection('audit_log').findOne({ action: 'webhook.retry_delivery' })
  t.equal(audit?.target?.delivery_id, id, 'the retry is audited')
})

t.test('only subscribed events are delivered, and a removed endpoint gets nothing more', async (t) => {
  const s = await setup(t, {}, 'logs.stored')
  const session = randomId('s')
  await storeSession(s, session)
  const logs = logsJob(s.ws, session, FIXTURES.logsRdtoolkit)
  await s.stack.add('logs', logs)
  await s.stack.settled('logs', jobIdFor(logs))
  await s.receiver.until(() => s.receiver.delivered().size === 1)
  await completed(s, [...s.receiver.delivered().keys()])
  t.same(
    s.receiver.requests.map((r) => r.event),
    ['logs.stored'],
    'the session was not sent to a logs-only endpoint',
  )
  t.equal((await s.deliveries.getJobCounts('completed')).completed, 1, 'and no job was queued for it')

  // Removed while its delivery waits: the delivery ends without a request.
  s.receiver.behaviour.failNext = 1000
  const logs2 = logsJob(s.ws, session, FIXTURES.logsRdtoolkit.replace('{', '{"again": 1,'))
  await s.stack.add('logs', logs2)
  await s.stack.settled('logs', jobIdFor(logs2))
  const id = deliveryId(s.hookId, { event: 'logs.stored', workspace_id: s.ws, session_id: session, extra: logs2.sha256 })
  await s.receiver.until(() => s.receiver.requests.some((r) => r.deliveryId === id), { what: 'a failed attempt' })
  await removeWebhook(s.stack.db, s.hookId, 'test')
  await completed(s, [id])
  t.same((await s.deliveries.getJob(id))?.returnvalue, { outcome: 'endpoint_removed' })
})

t.test('without WEBHOOK_ALLOW_PRIVATE a loopback endpoint is refused without a request, as a dead letter', async (t) => {
  const s = await setup(t, { WEBHOOK_ALLOW_PRIVATE: '0' })
  const watch = await watchJobs(t, { redisUrl: s.stack.config.redisUrl, prefix: s.stack.config.redisPrefix, queue: 'deliveries' })
  const session = randomId('s')
  const id = deliveryId(s.hookId, { event: 'session.stored', workspace_id: s.ws, session_id: session })
  const settled = watch.settled([id], { what: 'the refused delivery' })
  await storeSession(s, session)
  const [outcome] = await settled
  t.equal(outcome?.state, 'failed')
  const job = await s.deliveries.getJob(id)
  t.equal(job?.attemptsMade, 1, 'not retried: a refused address is a configuration to fix')
  t.match(job?.failedReason, /127\.0\.0\.1 is not a public address/)
  t.equal(s.receiver.requests.length, 0, 'the receiver never saw a request')
})

t.test("a workspace on another Redis shard gets its deliveries through that shard's queue", async (t) => {
  const s = await setup(t, { REDIS_SHARDS: '2' })
  await s.stack.db.collection('workspaces').updateOne({ _id: s.ws as never }, { $set: { redis_shard: 1 } })
  const prefix = shardPrefix(s.stack.config.redisPrefix, 1)
  const shardQueue = new Queue('deliveries', { connection: s.stack.redis, prefix })
  t.teardown(async () => {
    await shardQueue.close()
    // The harness removes its own prefix's keys; shard 1's are under another tag.
    for (const key of await s.stack.redis.keys(`${prefix}*`)) await s.stack.redis.del(key)
  })
  const session = randomId('s')
  const data = sessionJob(s.ws, session, sessionBody(session))
  // Queued where the gateway queues a shard-1 workspace's jobs.
  const sessions = new Queue('sessions', { connection: s.stack.redis, prefix })
  t.teardown(() => sessions.close())
  await sessions.add('session', data, { jobId: jobIdFor(data) })
  const id = deliveryId(s.hookId, { event: 'session.stored', workspace_id: s.ws, session_id: session })
  await s.receiver.until(() => s.receiver.delivered().has(id), { what: 'the shard-1 delivery' })
  await waitFor(async () => (await shardQueue.getJobState(id)) === 'completed', { what: 'the shard-1 delivery job to complete' })
  t.equal(await s.deliveries.getJobState(id), 'unknown', "nothing in shard 0's deliveries queue")
})
