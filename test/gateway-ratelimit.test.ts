// Abuse resistance through real gateways on real Redis: the per-token rate limit
// (per workspace, set with the CLI, shared by two gateways), the per-address limit on unknown
// tokens, and the two-round-trip budget of an accepted JSON request with the limit folded in.
import t from 'tap'
import pino from 'pino'
import { Writable } from 'node:stream'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { buildGateway } from '../gateway/app.ts'
import { addressKey } from '../gateway/unknown-token-limit.ts'
import { runCli } from '../cli/run.ts'
import { jobIds, keys } from '../shared/keys.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { hashToken, type TokenEntry } from '../shared/token-registry.ts'
import { asRole, inspectorQueues, roleProcessEnv, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'
import { onceWithin, waitFor } from '../testing/wait.ts'

const UNKNOWN_MAX = 5
const config = testConfig({
  // High enough that only the workspaces given their own limit below ever meet one.
  RATE_LIMIT_PER_MINUTE: '100000',
  UNKNOWN_TOKEN_MAX_PER_IP: String(UNKNOWN_MAX),
  UNKNOWN_TOKEN_WINDOW_MS: '60000',
})
const k = keys(config.redisPrefix)
const limited = await seedToken(config, { slug: 'limited-ws' })
const other = await seedToken(config, { slug: 'other-ws' })
const refill = await seedToken(config, { slug: 'refill-ws' })

const lines: Record<string, unknown>[] = []
const logger = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    },
  }),
)
// Two gateways, same prefix: the limit must hold across them.
const gwA = await buildGateway({ config: asRole(config, 'gateway'), logger })
const gwB = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
// The test's checks of what was queued (the gateway's user cannot read jobs back).
const queues = inspectorQueues(t, config)
const redis = new Redis(config.redisUrl)
const { client: mongo, db } = await connectMongo(config.mongodbUrl, 1)
t.teardown(async () => {
  await Promise.all([gwA.close(), gwB.close()])
  redis.disconnect()
  await db.dropDatabase().catch(() => {})
  await mongo.close()
})

const cliEnv = roleProcessEnv('cli', { MONGODB_URL: config.mongodbUrl, REDIS_URL: config.redisUrl, REDIS_PREFIX: config.redisPrefix })
async function cli(args: string[]) {
  let out = ''
  let err = ''
  const code = await runCli(args, { out: (s) => void (out += s), err: (s) => void (err += s), env: cliEnv })
  return { code, out, err }
}
const mirrorEntry = async (token: string) => JSON.parse((await redis.hget(k.tokens, hashToken(token))) ?? 'null') as TokenEntry | null

const session = (app: FastifyInstance, token: string, guid: string, remoteAddress = '127.0.0.1') =>
  app.inject({
    method: 'PUT',
    url: `/ingest/${token}/test_session/${guid}/`,
    payload: '{"state":"QUEUED"}',
    remoteAddress,
    headers: { 'content-type': 'application/json; charset=utf-8' },
  })

t.test('workspace set-rate-limit: validated, audited, mirrored with a newer version', async (t) => {
  const before = await mirrorEntry(limited.token)
  t.equal(before?.rate_limit_per_minute, null, 'no setting: the gateway default applies')

  const bad = await cli(['workspace', 'set-rate-limit', 'limited-ws', 'lots'])
  t.equal(bad.code, 1)
  t.match(bad.err, /invalid rate limit "lots"/)
  t.equal((await cli(['workspace', 'set-rate-limit', 'no-such-ws', '5'])).code, 1, 'unknown workspace')

  const set = await cli(['workspace', 'set-rate-limit', 'limited-ws', '3', '--json'])
  t.equal(set.code, 0, set.err)
  const out = JSON.parse(set.out) as {
    rate_limit_per_minute: number
    previous_rate_limit_per_minute: number | null
    tokens_republished: number
  }
  t.equal(out.rate_limit_per_minute, 3)
  t.equal(out.previous_rate_limit_per_minute, null)
  t.equal(out.tokens_republished, 1)
  const after = await mirrorEntry(limited.token)
  t.equal(after?.rate_limit_per_minute, 3, 'carried in the token entry')
  t.ok(after!.v > before!.v, 'the entry version moved, so a stale full sync cannot undo it')
  t.equal((await mirrorEntry(other.token))?.rate_limit_per_minute, null, 'other workspaces untouched')

  const audit = await collections(db).audit.findOne({ action: 'workspace.set_rate_limit', 'target.workspace_id': limited.workspaceId })
  t.equal(audit?.target.rate_limit_per_minute, 3)
  t.match(audit?.actor, /^cli:/)

  // 120/min: a 120-request burst, then one every 500 ms (used by the refill test below).
  t.equal((await cli(['workspace', 'set-rate-limit', 'refill-ws', '120'])).code, 0)
  // "default" goes back to RATE_LIMIT_PER_MINUTE; checked on a scratch workspace.
  const scratch = await seedToken(config, { slug: 'scratch-ws' })
  await cli(['workspace', 'set-rate-limit', 'scratch-ws', '7'])
  const reset = await cli(['workspace', 'set-rate-limit', 'scratch-ws', 'default'])
  t.equal(reset.code, 0, reset.err)
  t.match(reset.out, /gateway default.*was 7 requests per minute/)
  t.equal((await mirrorEntry(scratch.token))?.rate_limit_per_minute, null)
})

t.test('a workspace limit of 3/min: the 4th request is 429 with Retry-After, on either gateway', async (t) => {
  // Neither gateway has looked this token up yet, so both read the new entry from the mirror.
  const codes: number[] = []
  const guids: string[] = []
  let n = 0
  for (const app of [gwA, gwB, gwA]) {
    const guid = `rl-${n++}`
    guids.push(guid)
    codes.push((await session(app, limited.token, guid)).statusCode)
  }
  t.same(codes, [201, 201, 201], 'the burst of 3 is accepted, alternating gateways')
  const refused = await session(gwB, limited.token, 'rl-refused')
  t.equal(refused.statusCode, 429, refused.body)
  t.equal(JSON.parse(refused.body).error, 'rate_limited')
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 20, `Retry-After ${retryAfter}s: the time until the next slot (60/3 = 20 s at most)`)
  t.notOk(refused.body.includes(limited.token), 'no token in the error body')

  t.equal(await redis.exists(k.idempotency('s', limited.workspaceId, 'rl-refused')), 0, 'a refused request claims nothing')
  t.equal(await queues.sessions.getJob(jobIds.session(limited.workspaceId, 'rl-refused')), undefined, 'and queues nothing')
  t.equal((await session(gwA, limited.token, 'rl-refused-2')).statusCode, 429, 'gateway A sees the same count')

  // The same limit covers the other routes (their claims go through the same script).
  const logs = await gwA.inject({ method: 'PUT', url: `/ingest/${limited.token}/test_session/rl-0/logs`, payload: '[]' })
  t.equal(logs.statusCode, 429)
  const media = await gwA.inject({
    method: 'PUT',
    url: `/ingest/${limited.token}/test_session/rl-0/media/raw`,
    payload: Buffer.from('jpeg'),
    headers: { 'content-type': 'image/jpeg' },
  })
  t.equal(media.statusCode, 429)
  t.ok(media.headers['retry-after'])

  for (let i = 0; i < 5; i++)
    t.equal((await session(i % 2 ? gwA : gwB, other.token, `other-${i}`)).statusCode, 201, 'another workspace is not limited')

  const logged = lines.filter((l) => l.reason === 'rate_limited' && l.limit === 'token')
  t.ok(logged.length >= 2, 'every 429 is logged with reason rate_limited')
  t.equal(logged[0]?.token_id, limited.tokenId)
  t.notOk(JSON.stringify(lines).includes(limited.token), 'no log line carries the token')
})

t.test('the bucket refills: after Retry-After the token is accepted again', async (t) => {
  // 120/min refills a slot every 500 ms, so a slow burst may get a few more than 120 through:
  // send until refused (bounded), and check the count against what the elapsed time allows.
  const started = Date.now()
  let accepted = 0
  let refused: Awaited<ReturnType<typeof session>> | null = null
  for (let i = 0; i < 400 && !refused; i++) {
    const res = await session(i % 2 ? gwA : gwB, refill.token, `fill-${i}`)
    if (res.statusCode === 201) accepted++
    else refused = res
  }
  const allowed = 120 + Math.ceil((Date.now() - started) / 500) + 1
  t.ok(accepted >= 120 && accepted <= allowed, `${accepted} accepted: the burst of 120, plus at most what refilled meanwhile (${allowed})`)
  t.equal(refused?.statusCode, 429)
  t.equal(refused?.headers['retry-after'], '1', 'one request every 500 ms: retry within the second')
  // Polls with a deadline (a slot freeing is only a matter of time, no event); refused attempts
  // use up nothing, so one is accepted as soon as a slot frees.
  await waitFor(async () => (await session(gwB, refill.token, 'fill-over')).statusCode === 201, {
    timeoutMs: 10_000,
    intervalMs: 100,
    what: 'a refilled slot',
  })
  t.pass('accepted once a slot freed')
})

t.test('unknown tokens: per address, shared by gateways, then 429 for the unknown tokens of that address only', async (t) => {
  // Two clients behind one carrier NAT (one address): a guesser, and a clinic's phone with a valid
  // token. The guesser's unknown tokens are refused once over the limit; the clinic is never
  // refused because of the address it shares.
  const nat = '203.0.113.7'
  let n = 0
  const guess = (app: FastifyInstance, token: string, from = nat) => session(app, token, `g-${n++}`, from)
  const statuses: number[] = []
  for (let i = 0; i < UNKNOWN_MAX; i++) statuses.push((await guess(i % 2 ? gwA : gwB, `rdt_guess${i}`)).statusCode)
  t.same(statuses, Array(UNKNOWN_MAX).fill(403), `the first ${UNKNOWN_MAX} unknown tokens are plain 403s, counted on both gateways`)
  const over = await guess(gwA, 'rdt_guess-over')
  t.equal(over.statusCode, 429)
  t.equal(JSON.parse(over.body).error, 'ip_rate_limited')
  const wait = Number(over.headers['retry-after'])
  t.ok(wait >= 1 && wait <= 60, `Retry-After ${wait}s: until the window ends`)
  t.equal((await guess(gwA, 'bad.token!')).statusCode, 429, 'malformed tokens are unknown tokens too')

  // The clinic on the same address, interleaved with the guesser, on both gateways.
  for (let i = 0; i < 4; i++) {
    const app = i % 2 ? gwA : gwB
    t.equal(
      (await guess(app, other.token)).statusCode,
      201,
      `the valid token from the shared address is served (#${i}, gateway ${i % 2 ? 'A' : 'B'})`,
    )
    t.equal((await guess(app, `rdt_guess-more${i}`)).statusCode, 429, `while the guesser's next unknown token is refused (#${i})`)
  }
  const media = await gwA.inject({
    method: 'PUT',
    url: `/ingest/${other.token}/test_session/g-nat/media/raw`,
    payload: Buffer.from('jpeg'),
    remoteAddress: nat,
    headers: { 'content-type': 'image/jpeg' },
  })
  t.equal(media.statusCode, 201, 'every route: a photo from the shared address')
  const logs = await gwB.inject({ method: 'PUT', url: `/ingest/${other.token}/test_session/g-nat/logs`, payload: '[]', remoteAddress: nat })
  t.equal(logs.statusCode, 201, 'and its logs')
  // A revoked or unpermitted token is still a plain 403 (not counted, not 429).
  const readOnly = await seedToken(config, { permissions: ['logs'] })
  t.equal((await guess(gwA, readOnly.token)).statusCode, 403, 'a token without the permission stays 403 from a blocked address')

  t.equal((await guess(gwA, 'rdt_elsewhere', '198.51.100.1')).statusCode, 403, 'other addresses are unaffected')
  t.equal(await redis.exists(k.unknownTokenIp('198.51.100.2')), 0)
  t.equal((await guess(gwA, other.token, '198.51.100.2')).statusCode, 201)
  t.equal(await redis.exists(k.unknownTokenIp('198.51.100.2')), 0, 'accepted requests are never counted')
  t.ok(
    lines.some((l) => l.reason === 'rate_limited' && l.limit === 'unknown_token_ip'),
    'logged with reason rate_limited',
  )
})

t.test('addresses are counted per IPv4 address and per IPv6 /64', async (t) => {
  t.equal(addressKey('192.0.2.1'), '192.0.2.1')
  t.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1', 'IPv4-mapped is the IPv4 address')
  t.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
  t.equal(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64', 'same /64, same count')
  t.equal(addressKey('2001:DB8::1'), '2001:db8:0:0::/64')
  t.equal(addressKey('::1'), '0:0:0:0::/64')
  t.equal(addressKey(undefined), 'unknown')
})

t.test('an accepted session or logs PUT makes exactly two Redis round trips, the limit and byte budget checks included', async (t) => {
  // Counted on the gateway's command connection: every command it sends (ioredis sendCommand,
  // which custom scripts and BullMQ's add go through) and every write to its socket (a pipeline
  // or MULTI is one write). No pipelining happens on the JSON path, so writes = round trips.
  // The token lookup is served from the in-process cache (warmed first), and the backpressure
  // poller runs on its own timer: the gateway gets a long poll interval so it cannot interleave.
  // A default of 6/min (a slot is 10 s) keeps the limit's state in Redis long enough to be seen below.
  const cfg = { ...config, backpressurePollMs: 3_600_000, rateLimitPerMinute: 6 }
  const app = await buildGateway({ config: asRole(cfg, 'gateway'), logger: false })
  t.teardown(() => app.close())
  // A poll: the backpressure poller announces nothing; the subscriber's connection has 'ready'.
  await waitFor(() => app.backlog.snapshot().polls >= 1, { what: 'the first backpressure poll' })
  if (app.subscriber.status !== 'ready') await onceWithin(app.subscriber, 'ready', { what: 'the token-change subscription' })
  t.equal((await session(app, other.token, 'rt-warm')).statusCode, 201, 'warm-up (fills the token cache)')

  const commands: string[] = []
  const args: string[][] = []
  let writes = 0
  const r = app.redis as unknown as { sendCommand: (cmd: { name: string; args: unknown[] }, ...rest: unknown[]) => unknown }
  const send = r.sendCommand
  r.sendCommand = function (this: unknown, cmd, ...rest) {
    commands.push(cmd.name)
    args.push(cmd.args.map(String))
    return send.call(this, cmd, ...rest)
  }
  const stream = (app.redis as unknown as { stream: { write: (...a: unknown[]) => boolean } }).stream
  const write = stream.write
  stream.write = function (this: unknown, ...a: unknown[]) {
    writes++
    return write.apply(this, a)
  }
  t.teardown(() => {
    r.sendCommand = send
    stream.write = write
  })
  const measure = async (what: string, req: () => Promise<{ statusCode: number }>) => {
    commands.length = 0
    args.length = 0
    writes = 0
    t.equal((await req()).statusCode, 201, what)
    t.equal(writes, 2, `${what}: 2 round trips (commands: ${commands.join(', ')})`)
    t.same(
      commands.map((c) => (c === 'evalsha' ? 'eval' : c)),
      ['eval', 'eval'],
      `${what}: the claim script (with the rate limit), then BullMQ's add script`,
    )
  }
  await redis.del(k.tokenRate(other.tokenId))
  await measure('session PUT', () => session(app, other.token, 'rt-1'))
  t.equal(await redis.exists(k.tokenRate(other.tokenId)), 1, 'the rate limit was checked (and its state written) within those two')
  // An 18-byte body uses 4 µs of a 256 MiB/min budget, too little to see in Redis afterwards:
  // check that the claim carried the workspace's budget key and this body's size instead.
  t.ok(cfg.workspaceBytesPerMinute > 0, 'with the workspace byte budget on (the default)')
  const claimArgs = args[0] ?? []
  t.ok(
    claimArgs.includes(k.workspaceBytes(other.workspaceId)),
    'the claim script checked the workspace byte budget within those two as well',
  )
  t.equal(claimArgs.at(-2), '18', "charging the body's 18 bytes")
  t.ok(claimArgs.includes(k.deletedSessions(other.workspaceId)), "and the workspace's deleted-session tombstones, within those two")
  t.equal(claimArgs.at(-1), 'rt-1', 'for this session')
  await measure('logs PUT', () =>
    app.inject({ method: 'PUT', url: `/ingest/${other.token}/test_session/rt-1/logs/`, payload: '[{"tag":"x"}]' }),
  )

  // Media is not bound by the budget, but its staged-bytes accounting rides in the enqueue's MULTI
  // (one socket write), so it stays at two as well: the claim, then MULTI {add job, stage bytes} EXEC.
  writes = 0
  const media = await app.inject({
    method: 'PUT',
    url: `/ingest/${other.token}/test_session/rt-1/media/raw/`,
    payload: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]),
    headers: { 'content-type': 'image/jpeg' },
  })
  t.equal(media.statusCode, 201, media.body)
  t.equal(writes, 2, 'media PUT: 2 round trips to Redis (the photo itself goes to S3)')
})
