// `npm run cli -- token rotate <id> --grace <duration>` end to end: the real CLI as a child
// process, a real gateway (buildGateway) on the test's Redis. The old DSN works during the grace
// period and gets 403 after it; the new DSN works throughout. With no grace, a push the gateways
// never got is an error (exit 1), as for `token revoke`.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildGateway } from '../gateway/app.ts'
import type { TestConfig } from '../testing/config.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { asRole, roleProcessEnv, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { privateRedis } from './helpers/private-redis.ts'

const run = promisify(execFile)

async function cli(config: TestConfig, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = roleProcessEnv('cli', {
    MONGODB_URL: config.mongodbUrl,
    REDIS_URL: config.redisUrl,
    REDIS_PREFIX: config.redisPrefix,
    PUBLIC_URL: config.publicUrl,
  })
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { env })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

let n = 0
const put = (app: FastifyInstance, token: string) =>
  app.inject({
    method: 'PUT',
    url: `/ingest/${token}/test_session/rot-${process.pid}-${n++}/`,
    payload: '{"state":"QUEUED"}',
    headers: { 'content-type': 'application/json' },
  })

const tokenOf = (dsn: string) => dsn.split('/ingest/')[1]!.replace(/\/$/, '')

async function gateway(t: Test, config: TestConfig): Promise<FastifyInstance> {
  const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
  t.teardown(() => app.close())
  // A poll: the token cache announces nothing when its subscription is confirmed.
  await waitFor(() => app.tokenCache.subscribed(), { what: 'the token-change subscription' })
  return app
}

t.test('--grace 2s: the old DSN works during the grace period and gets 403 after it; the new one works throughout', async (t) => {
  const config = testConfig()
  const seeded = await seedToken(config)
  const app = await gateway(t, config)
  t.equal((await put(app, seeded.token)).statusCode, 201, 'the old token works before the rotation')

  const r = await cli(config, ['token', 'rotate', seeded.tokenId, '--grace', '2s', '--json'])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.match(out, { old_id: seeded.tokenId, grace_ms: 2000, old_mirrored: true, new: { id: /^t/, dsn: /\/ingest\/rdt_/ } })
  const expires = new Date(out.old_expires_at).getTime()
  const newToken = tokenOf(out.new.dsn)
  t.equal(out.new.token, newToken)

  // During the grace period (each request sent before the expiry, with a margin for the answer).
  let duringGrace = 0
  while (Date.now() < expires - 300) {
    t.equal((await put(app, seeded.token)).statusCode, 201, 'old DSN during the grace period')
    t.equal((await put(app, newToken)).statusCode, 201, 'new DSN during the grace period')
    duringGrace++
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(duringGrace > 0, `the old DSN was tried ${duringGrace} time(s) within its grace period`)

  // After it: wait (with a deadline) for the 403; never a 201 once the expiry has passed. A poll:
  // an expiry is a moment in time, no event marks it.
  const refusedAt = await waitFor(
    async () => {
      const sent = Date.now()
      const res = await put(app, seeded.token)
      if (sent > expires + 50) t.not(res.statusCode, 201, 'never accepted after its expiry')
      t.equal((await put(app, newToken)).statusCode, 201, 'new DSN meanwhile')
      return res.statusCode === 403 ? Date.now() : null
    },
    { timeoutMs: 10_000, intervalMs: 50, what: 'the old DSN to get 403' },
  )
  t.ok(refusedAt >= expires - 100, 'not refused before the grace period ended')
  t.equal((await put(app, newToken)).statusCode, 201, 'the new DSN still works afterwards')

  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  t.match(await collections(db).audit.findOne({ action: 'token.rotate', 'target.token_id': seeded.tokenId }), {
    actor: /^cli:/,
    target: { new_token_id: out.new.id, grace_ms: 2000 },
  })
})

t.test('--grace 0: the old DSN is refused at once, the new one works; human output', async (t) => {
  const config = testConfig()
  const seeded = await seedToken(config)
  const app = await gateway(t, config)
  t.equal((await put(app, seeded.token)).statusCode, 201)
  const r = await cli(config, ['token', 'rotate', seeded.tokenId, '--grace', '0'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, 'the old token stopped working now')
  const dsn = /^\s+(http\S+\/ingest\/rdt_\S+)$/m.exec(r.stdout)![1]!
  // A poll: the pushed change reaches the gateway's cache with no event a test can hear.
  await waitFor(async () => (await put(app, seeded.token)).statusCode === 403, { timeoutMs: 5000, what: 'the old DSN to get 403' })
  t.equal((await put(app, tokenOf(dsn))).statusCode, 201, 'the new DSN works')
})

t.test('durations: bounded like the panel, typos are usage errors', async (t) => {
  const config = testConfig()
  const seeded = await seedToken(config)
  for (const bad of ['5', '1w', '-1h', '1.5h', '']) {
    const r = await cli(config, ['token', 'rotate', seeded.tokenId, '--grace', bad])
    t.equal(r.code, 2, `--grace ${JSON.stringify(bad)} is a usage error`)
  }
  const tooLong = await cli(config, ['token', 'rotate', seeded.tokenId, '--grace', '91d'])
  t.equal(tooLong.code, 1)
  t.match(tooLong.stderr, 'at most 90 days')
  const missing = await cli(config, ['token', 'rotate', seeded.tokenId])
  t.equal(missing.code, 2, '--grace is required')
  const unknown = await cli(config, ['token', 'rotate', 'tdoesnotexist00', '--grace', '1h'])
  t.equal(unknown.code, 1)
  const { parseGrace } = await import('../cli/token-commands.ts')
  t.same(['0', '30s', '30m', '1h', '7d', '90d', '91d'].map(parseGrace), [
    0,
    30_000,
    1_800_000,
    3_600_000,
    7 * 86_400_000,
    90 * 86_400_000,
    null,
  ])
})

t.test('--grace 0 with the gateways unreachable: the rotation stands, the CLI exits 1 and says so', async (t) => {
  const redis = await privateRedis(t)
  const config = testConfig({ REDIS_URL: redis.url })
  const seeded = await seedToken(config)
  await redis.stop()
  const started = Date.now()
  const r = await cli(config, ['token', 'rotate', seeded.tokenId, '--grace', '0', '--json'])
  t.equal(r.code, 1, 'exit 1')
  t.match(r.stderr, /saved in MongoDB, but the gateways could not be told/)
  t.match(r.stderr, `token revoke ${seeded.tokenId}`, 'says how to push it again')
  t.match(JSON.parse(r.stdout), { old_id: seeded.tokenId, old_mirrored: false }, 'the result is still printed')
  t.ok(Date.now() - started < 40_000, 'within a bounded time')
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  t.ok((await collections(db).tokens.findOne({ _id: seeded.tokenId }))!.expires_at! <= new Date(), 'the old token has expired in MongoDB')
})
