// The panel's webhooks page: add (refusals shown, the secret never echoed), list, send a test,
// remove, and the dead letters with their retry button. A real worker (with private addresses
// refused, as in production) turns a stored session into a delivery that fails for good.
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import t from 'tap'
import { buildWorker } from '../worker/app.ts'
import { deliveryId } from '../webhooks/events.ts'
import { watchJobs } from '../testing/job-events.ts'
import { addAdmin, login, startAdmin } from './helpers/admin-support.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { FIXTURES, jobIdFor, sessionJob } from './helpers/worker-harness.ts'

const SECRET = 'panel-secret-0123456789abcdef'
const config = testConfig({ PUBLIC_URL: 'https://rdt.example.org', WEBHOOK_ALLOW_PRIVATE: '0' })
const { app } = await startAdmin(config)
const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null })
const prefix = config.redisPrefix
const queues = {
  sessions: new Queue('sessions', { connection: redis, prefix }),
  deliveries: new Queue('deliveries', { connection: redis, prefix }),
}
t.teardown(async () => {
  await app.db.dropDatabase().catch(() => {})
  await Promise.all(Object.values(queues).map((q) => q.close()))
  const ks = await redis.keys(`${prefix}:*`)
  if (ks.length) await redis.del(...ks)
  redis.disconnect()
  await app.close()
})
await addAdmin(app, 'ops@example.org')
const b = await login(app, 'ops@example.org')
const created = await b.post('/workspaces', { slug: 'clinic-w', _csrf: b.csrf })
const wsId = /\/workspaces\/(w[0-9a-f]{16})\//.exec(created.headers.location as string)![1]!
const hooksUrl = `/workspaces/${wsId}/webhooks`

let hookId = ''
t.test('add an endpoint: refusals are shown, the secret is never echoed', async (t) => {
  const bad = await b.post(hooksUrl, { url: 'ftp://example.org/x', secret: SECRET, events: ['session.stored'], _csrf: b.csrf })
  t.equal(bad.statusCode, 400)
  t.match(bad.body, 'must start with https:// or http://')
  t.notMatch(bad.body, SECRET, 'the secret is not put back into the form')
  const none = await b.post(hooksUrl, { url: 'https://example.org/x', secret: SECRET, _csrf: b.csrf })
  t.equal(none.statusCode, 400, 'no event ticked')
  t.match(none.body, 'name at least one event')
  const noCsrf = await b.post(hooksUrl, { url: 'https://example.org/x', secret: SECRET, events: ['session.stored'] })
  t.equal(noCsrf.statusCode, 403, 'a POST without the CSRF token is refused')

  // A loopback URL is accepted here; where it points is checked at each delivery.
  const res = await b.post(hooksUrl, {
    url: 'http://127.0.0.1:9/hook',
    secret: SECRET,
    events: ['session.stored', 'logs.stored'],
    _csrf: b.csrf,
  })
  t.equal(res.statusCode, 303)
  const page = await b.get(`${hooksUrl}?done=added`)
  t.equal(page.statusCode, 200)
  t.match(page.body, 'Endpoint added')
  t.match(page.body, 'http://127.0.0.1:9/hook')
  t.match(page.body, 'session.stored, logs.stored')
  t.notMatch(page.body, SECRET, 'the list never shows the secret')
  hookId = /data-webhook="(h[0-9a-f]{16})"/.exec(page.body)![1]!
  const doc = await app.db.collection('webhooks').findOne({ _id: hookId as never })
  t.match(doc, { workspace_id: wsId, secret: SECRET, events: ['session.stored', 'logs.stored'], disabled: false })
  t.equal((await b.get(`/workspaces/wffffffffffffffff/webhooks`)).statusCode, 404)
})

t.test(
  'a delivery refused by the address guard is a dead letter, shown with a retry button; another workspace cannot touch it',
  async (t) => {
    const worker = await buildWorker({ config: asRole(config, 'worker'), logger: pino({ level: 'silent' }), closeDeadlineMs: 2000 })
    let workerClosed = false
    t.teardown(() => (workerClosed ? undefined : worker.close()))
    const watch = await watchJobs(t, { redisUrl: config.redisUrl, prefix, queue: 'deliveries' })
    const data = sessionJob(wsId, 'sess-1', FIXTURES.sessionRdtoolkit)
    const id = deliveryId(hookId, { event: 'session.stored', workspace_id: wsId, session_id: 'sess-1' })
    const settled = watch.settled([id], { what: 'the refused delivery' })
    await queues.sessions.add('session', data, { jobId: jobIdFor(data) })
    t.equal((await settled)[0]?.state, 'failed')

    const page = await b.get(hooksUrl)
    t.match(page.body, `data-delivery="${id}"`, 'listed under failed deliveries')
    t.match(page.body, '127.0.0.1 is not a public address')
    t.match(page.body, `/webhooks/dead-letters/${id}/retry`)

    // "Send test" goes through the same guard.
    const tested = await b.post(`${hooksUrl}/${hookId}/test`, { _csrf: b.csrf })
    t.equal(tested.statusCode, 200)
    t.match(tested.body, /Test not delivered: refused: 127\.0\.0\.1 is not a public address/)

    const other = await b.post('/workspaces', { slug: 'clinic-other', _csrf: b.csrf })
    const otherId = /\/workspaces\/(w[0-9a-f]{16})\//.exec(other.headers.location as string)![1]!
    t.equal(
      (await b.post(`/workspaces/${otherId}/webhooks/dead-letters/${id}/retry`, { _csrf: b.csrf })).statusCode,
      404,
      "not through another workspace's page",
    )
    t.equal((await b.post(`/workspaces/${otherId}/webhooks/${hookId}/remove`, { _csrf: b.csrf })).statusCode, 404)

    // Retry with the worker stopped, so the job's new state stays visible.
    await worker.close()
    workerClosed = true
    const retried = await b.post(`${hooksUrl}/dead-letters/${id}/retry`, { _csrf: b.csrf })
    t.equal(retried.statusCode, 303)
    t.equal(await queues.deliveries.getJobState(id), 'waiting', 'back in the queue')
    t.equal((await queues.deliveries.getJob(id))?.attemptsMade, 0, 'with the whole retry schedule again')
    t.match(await app.db.collection('audit_log').findOne({ action: 'webhook.retry_delivery' }), {
      actor: 'admin:ops@example.org',
      target: { delivery_id: id },
    })
    t.equal((await b.post(`${hooksUrl}/dead-letters/${id}/retry`, { _csrf: b.csrf })).statusCode, 409, 'a delivery no longer failed')
    t.notMatch((await b.get(hooksUrl)).body, `data-delivery="${id}"`, 'no longer listed')
  },
)

t.test('remove an endpoint', async (t) => {
  const res = await b.post(`${hooksUrl}/${hookId}/remove`, { _csrf: b.csrf })
  t.equal(res.statusCode, 303)
  t.equal(await app.db.collection('webhooks').countDocuments({ _id: hookId as never }), 0)
  t.match(await app.db.collection('audit_log').findOne({ action: 'webhook.remove' }), {
    actor: 'admin:ops@example.org',
    target: { webhook_id: hookId },
  })
  t.match((await b.get(hooksUrl)).body, 'No endpoint yet.')
})
