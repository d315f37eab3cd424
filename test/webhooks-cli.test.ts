// `webhook add|list|remove|test` through the real CLI (a child process with the CLI's own
// credentials), with a worker serving the deliveries queue and a real local receiver.
import { runCliProcess, type CliRun } from './helpers/cli-process.ts'
import { Queue } from 'bullmq'
import t from 'tap'
import { startReceiver } from '../testing/webhook-receiver.ts'
import { roleProcessEnv } from './helpers/env.ts'
import { startTestWorker } from './helpers/worker-harness.ts'

const SECRET = 'cli-receiver-secret-0123456789'
const stack = await startTestWorker(t, { WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_BACKOFF_MS: '50', WEBHOOK_BACKOFF_CAP_MS: '200' })
const receiver = await startReceiver(SECRET)
t.teardown(() => receiver.close())
const env = roleProcessEnv('cli', { MONGODB_URL: stack.config.mongodbUrl, REDIS_PREFIX: stack.config.redisPrefix })

const cli = (args: string[]): Promise<CliRun> => runCliProcess(args, env, { timeoutMs: 60_000 })

let hookId = ''

t.test('webhook add --json: every event by default, the secret never printed or audited', async (t) => {
  t.equal((await cli(['workspace', 'create', 'clinic-a'])).code, 0)
  const r = await cli(['webhook', 'add', '--workspace', 'clinic-a', '--url', receiver.url, '--secret', SECRET, '--json'])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as Record<string, unknown>
  t.match(out, { workspace: 'clinic-a', url: receiver.url, events: ['session.stored', 'media.stored', 'logs.stored'], disabled: false })
  t.match(out.id, /^h[0-9a-f]{16}$/)
  hookId = String(out.id)
  t.notOk(r.stdout.includes(SECRET), 'the secret is not printed')
  const stored = await stack.db.collection('webhooks').findOne({ _id: hookId as never })
  t.equal(stored?.secret, SECRET, 'stored as given, for signing')
  const audit = await stack.db.collection('audit_log').findOne({ action: 'webhook.add' })
  t.match(audit, { actor: /^cli:/, target: { webhook_id: hookId, url: receiver.url } })
  t.notOk(JSON.stringify(audit).includes(SECRET), 'the audit entry has no secret')

  const some = await cli([
    'webhook',
    'add',
    '--workspace',
    'clinic-a',
    '--url',
    receiver.url,
    '--secret',
    SECRET,
    '--events',
    'media.stored,session.stored',
    '--json',
  ])
  t.same((JSON.parse(some.stdout) as { events: string[] }).events, ['session.stored', 'media.stored'], '--events, in canonical order')
  t.equal((await cli(['webhook', 'remove', (JSON.parse(some.stdout) as { id: string }).id])).code, 0)
})

t.test('webhook add refuses what it cannot use, naming why', async (t) => {
  const refused: [string[], RegExp][] = [
    [['--url', 'ftp://example.org/', '--secret', SECRET], /https:\/\/ or http:\/\//],
    [['--url', 'https://user:pw@example.org/', '--secret', SECRET], /user name or password/],
    [['--url', 'not a url', '--secret', SECRET], /not a valid absolute URL/],
    [['--url', receiver.url, '--secret', 'short'], /16 to 256 printable characters/],
    [['--url', receiver.url, '--secret', SECRET, '--events', 'session.deleted'], /unknown event "session.deleted"/],
  ]
  for (const [args, message] of refused) {
    const r = await cli(['webhook', 'add', '--workspace', 'clinic-a', ...args])
    t.equal(r.code, 1, args.join(' '))
    t.match(r.stderr, message)
  }
  const noWs = await cli(['webhook', 'add', '--workspace', 'nope', '--url', receiver.url, '--secret', SECRET])
  t.equal(noWs.code, 1)
  t.match(noWs.stderr, /unknown workspace "nope"/)
  const usage = await cli(['webhook', 'add', '--workspace', 'clinic-a', '--url', receiver.url])
  t.equal(usage.code, 2, 'a missing --secret is a usage error')
})

t.test('webhook list --json has no secret', async (t) => {
  const r = await cli(['webhook', 'list', '--workspace', 'clinic-a', '--json'])
  t.equal(r.code, 0, r.stderr)
  const list = JSON.parse(r.stdout) as { id: string; secret?: string }[]
  t.same(
    list.map((w) => w.id),
    [hookId],
  )
  t.notOk(r.stdout.includes(SECRET))
  const human = await cli(['webhook', 'list'])
  t.match(human.stdout, new RegExp(`${hookId}\\s+clinic-a\\s+${receiver.url.replace(/[.]/g, '\\.')}`))
})

t.test('webhook test: a signed test request through the deliveries worker, and its result', async (t) => {
  const r = await cli(['webhook', 'test', hookId, '--json'])
  t.equal(r.code, 0, r.stderr)
  const res = JSON.parse(r.stdout) as { delivered: boolean; status: number; delivery_id: string }
  t.match(res, { delivered: true, status: 200 })
  const got = receiver.requests.find((q) => q.deliveryId === res.delivery_id)
  t.ok(got, 'the receiver got it')
  t.equal(got?.event, 'webhook.test')
  t.ok(got?.signatureOk, 'signed with the secret')

  receiver.behaviour.failNext = 1
  const failed = await cli(['webhook', 'test', hookId])
  t.equal(failed.code, 1, 'a failed test exits 1')
  t.match(failed.stdout, /test NOT delivered: answered 500/)
  t.equal(receiver.requests.length, 2, 'one attempt only: a test is never retried')
  const deliveries = new Queue('deliveries', { connection: stack.redis, prefix: stack.config.redisPrefix })
  t.teardown(() => deliveries.close())
  t.equal(await deliveries.getFailedCount(), 0, 'and a failed test leaves no dead letter behind')
  t.equal((await stack.db.collection('audit_log').countDocuments({ action: 'webhook.test' })) >= 2, true, 'each test is audited')
})

t.test('webhook remove', async (t) => {
  const r = await cli(['webhook', 'remove', hookId, '--json'])
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout), { id: hookId, removed: true })
  t.equal((await cli(['webhook', 'remove', hookId])).code, 1, 'removing it again is refused')
  t.equal((await cli(['webhook', 'list', '--json'])).stdout.trim(), '[]')
})
