// The real CLI, end to end: `node --import tsx cli/main.ts …` as a child process against the stack,
// with its own MongoDB database and Redis prefix.
import { runCliProcess, type CliRun } from './helpers/cli-process.ts'
import { randomBytes } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import t from 'tap'
import { keys } from '../shared/keys.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { hashToken, type TokenEntry } from '../shared/token-registry.ts'
import { inspectorEnv, roleEnv } from '../stack/roles.ts'

const base = { ...process.env }
if (!base.MONGODB_URL || !base.REDIS_URL) throw new Error('MONGODB_URL and REDIS_URL must be set (run through `npm test`)')

const mongoUrl = new URL(base.MONGODB_URL)
mongoUrl.pathname = `/t_cli_${randomBytes(4).toString('hex')}`
const prefix = `{t-${randomBytes(5).toString('hex')}}`
const PUBLIC_URL = 'https://ingest.test.example:8443'
const cliEnv: Record<string, string> = roleEnv({ ...base, MONGODB_URL: mongoUrl.toString(), REDIS_PREFIX: prefix, PUBLIC_URL }, 'cli')

const { client, db } = await connectMongo(mongoUrl.toString(), 1)
const c = collections(db)
// The test's own checks: the test-only inspector user.
const redis = new Redis(inspectorEnv(base).REDIS_URL!)
const k = keys(prefix)
t.teardown(async () => {
  await redis.del(k.tokens, k.tokensSynced)
  await db.dropDatabase().catch(() => {})
  await client.close()
  redis.disconnect()
})

function cli(args: string[], env: Record<string, string> = cliEnv): Promise<CliRun> {
  return runCliProcess(args, env, { timeoutMs: 30_000 })
}

async function mirrorEntry(hash: string): Promise<TokenEntry | null> {
  const raw = await redis.hget(k.tokens, hash)
  return raw === null ? null : (JSON.parse(raw) as TokenEntry)
}

let wsId = ''

t.test('workspace create / list', async (t) => {
  const r = await cli(['workspace', 'create', 'field-x', '--name', 'Field team X', '--json'])
  t.equal(r.code, 0, r.stderr)
  const ws = JSON.parse(r.stdout) as { id: string; slug: string; name: string; active: boolean }
  t.match(ws, { slug: 'field-x', name: 'Field team X', active: true })
  t.match(ws.id, /^w[0-9a-f]{16}$/)
  wsId = ws.id

  const human = await cli(['workspace', 'create', 'field-y'])
  t.equal(human.code, 0)
  t.match(human.stdout, /Workspace "field-y" created \(id w[0-9a-f]{16}\)/)

  const dup = await cli(['workspace', 'create', 'field-x'])
  t.equal(dup.code, 1, 'duplicate slug is an error')
  t.match(dup.stderr, /already exists/)
  t.equal(dup.stdout, '')

  const bad = await cli(['workspace', 'create', 'Not A Slug'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /invalid slug/)

  const list = await cli(['workspace', 'list'])
  t.equal(list.code, 0)
  t.match(list.stdout, /^ID\s+SLUG\s+NAME\s+STATUS\s+TOKENS\s+CREATED\s+RETENTION\n/)
  t.match(list.stdout, /field-x\s+Field team X\s+active/)
  const listJson = JSON.parse((await cli(['workspace', 'list', '--json'])).stdout) as { slug: string }[]
  t.same(
    listJson.map((w) => w.slug),
    ['field-x', 'field-y'],
  )
  const audit = await c.audit.findOne({ action: 'workspace.create', 'target.workspace_id': wsId })
  t.match(audit?.actor, /^cli:.+/, 'actor is cli:<os user>')
})

t.test('token create --json prints one parseable object and stores only the hash', async (t) => {
  const r = await cli(['token', 'create', '--workspace', 'field-x', '--json'])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '', 'nothing on stderr')
  const out = JSON.parse(r.stdout) as { id: string; token: string; dsn: string; workspace: string; permissions: string[] }
  t.match(out.id, /^t[0-9a-f]{16}$/)
  t.ok(out.dsn.startsWith(PUBLIC_URL + '/ingest/'), `dsn ${out.dsn}`)
  t.equal(out.dsn, `${PUBLIC_URL}/ingest/${out.token}`)
  t.equal(out.workspace, 'field-x')
  t.same(out.permissions, ['test_session', 'logs', 'media'])
  t.notOk('mirrored' in out || 'token_hash' in out, 'no internal fields')

  const hash = hashToken(out.token)
  t.notOk(r.stdout.includes(hash), 'the hash is never printed')
  const doc = await c.tokens.findOne({ _id: out.id })
  t.equal(doc?.token_hash, hash)
  t.notOk(JSON.stringify(doc).includes(out.token.replace(/^rdt_/, '')), 'the token itself is not stored')
  t.match(await mirrorEntry(hash), { id: out.id, workspace_id: wsId, revoked: false, workspace_active: true }, 'mirrored for the gateways')
  t.ok(await c.audit.findOne({ action: 'token.create', 'target.token_id': out.id }), 'audited')
})

t.test('token create (human) shows the DSN once with a warning; options are honoured', async (t) => {
  const r = await cli([
    'token',
    'create',
    '--workspace',
    'field-x',
    '--permissions',
    'logs,media',
    '--label',
    'tablet 3',
    '--expires',
    '2099-12-31T23:00:00Z',
  ])
  t.equal(r.code, 0, r.stderr)
  const dsn = new RegExp(`${PUBLIC_URL.replace(/[.]/g, '\\.')}/ingest/rdt_[A-Za-z0-9_-]+`).exec(r.stdout)?.[0]
  t.ok(dsn, 'DSN printed')
  t.match(r.stdout, /only once/i)
  t.match(r.stdout, /logs, media/)
  t.match(r.stdout, /tablet 3/)
  const id = /Token (t[0-9a-f]{16})/.exec(r.stdout)?.[1]
  const doc = await c.tokens.findOne({ _id: id ?? '' })
  t.same(doc?.permissions, ['logs', 'media'])
  t.equal(doc?.label, 'tablet 3')
  t.equal(doc?.expires_at?.toISOString(), '2099-12-31T23:00:00.000Z')
  t.equal(doc?.token_hash, hashToken(dsn!.split('/ingest/')[1]!))
})

t.test('token create errors', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--workspace', 'nope'], /unknown workspace "nope"/],
    [['--workspace', 'field-x', '--permissions', 'logs,admin'], /unknown permission "admin"/],
    [['--workspace', 'field-x', '--expires', '2001-01-01'], /future/],
    [['--workspace', 'field-x', '--expires', 'next week'], /ISO 8601/],
  ]
  const before = await c.tokens.countDocuments()
  for (const [args, msg] of cases) {
    const r = await cli(['token', 'create', ...args, '--json'])
    t.equal(r.code, 1, args.join(' '))
    t.match(r.stderr, msg)
    t.equal(r.stdout, '', 'nothing on stdout')
  }
  t.equal(await c.tokens.countDocuments(), before, 'nothing stored')
})

t.test('token list, revoke, workspace deactivate', async (t) => {
  const created = JSON.parse((await cli(['token', 'create', '--workspace', 'field-y', '--label', 'to revoke', '--json'])).stdout) as {
    id: string
    token: string
  }
  const hash = hashToken(created.token)

  const list = await cli(['token', 'list'])
  t.equal(list.code, 0)
  t.match(list.stdout, /^ID\s+WORKSPACE\s+LABEL\s+PERMISSIONS\s+CREATED\s+EXPIRES\s+STATUS\n/)
  t.match(list.stdout, new RegExp(`${created.id}\\s+field-y\\s+to revoke\\s+test_session,logs,media\\s+\\S+ \\S+\\s+never\\s+active`))
  t.notOk(list.stdout.includes(hash) || list.stdout.includes(created.token), 'neither hash nor token listed')

  const onlyY = JSON.parse((await cli(['token', 'list', '--workspace', 'field-y', '--json'])).stdout) as { id: string; workspace: string }[]
  t.same(
    onlyY.map((x) => [x.id, x.workspace]),
    [[created.id, 'field-y']],
  )

  const rev = await cli(['token', 'revoke', created.id])
  t.equal(rev.code, 0, rev.stderr)
  t.match(rev.stdout, /revoked/)
  t.equal((await mirrorEntry(hash))?.revoked, true, 'mirror updated')
  const again = await cli(['token', 'revoke', created.id])
  t.equal(again.code, 0, 'revoking twice is fine')
  t.match(again.stdout, /already revoked/)
  const unknown = await cli(['token', 'revoke', 't0000000000000000'])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /unknown token/)
  t.match((await cli(['token', 'list', '--workspace', 'field-y'])).stdout, /\srevoked\n/)

  const xTokens = await c.tokens.find({ workspace_id: wsId }).toArray()
  const off = await cli(['workspace', 'deactivate', 'field-x'])
  t.equal(off.code, 0, off.stderr)
  t.match(off.stdout, /inactive/)
  for (const tok of xTokens) t.equal((await mirrorEntry(tok.token_hash))?.workspace_active, false, `${tok._id} inactive in the mirror`)
  t.equal((await mirrorEntry(hash))?.workspace_active, true, 'other workspace untouched')
  t.equal((await cli(['workspace', 'activate', 'field-x'])).code, 0)
  for (const tok of xTokens) t.equal((await mirrorEntry(tok.token_hash))?.workspace_active, true)
  t.equal(await c.audit.countDocuments({ actor: { $not: /^cli:/ } }), 0, 'every action audited as cli:<user>')
})

t.test('usage errors exit 2 with usage on stderr', async (t) => {
  for (const args of [
    [],
    ['help'],
    ['token', 'frob'],
    ['token'],
    ['token', 'create'],
    ['token', 'list', '--bogus'],
    ['token', 'revoke'],
    ['workspace', 'create', 'a', 'b'],
  ]) {
    const r = await cli(args)
    t.equal(r.code, 2, `exit 2 for ${JSON.stringify(args)}`)
    t.match(r.stderr, /usage: /)
    t.equal(r.stdout, '')
  }
})

t.test('with Redis down the change is saved, the CLI warns and exits promptly', async (t) => {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as AddressInfo).port
  await new Promise((resolve) => srv.close(resolve))

  const r = await cli(['token', 'create', '--workspace', 'field-x', '--json'], { ...cliEnv, REDIS_URL: `redis://127.0.0.1:${port}` })
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { id: string; token: string }
  t.match(r.stderr, /warning: .*not updated/)
  t.match(r.stderr, /next mirror sync by a worker/)
  t.ok(await c.tokens.findOne({ _id: out.id }), 'stored in MongoDB')
  t.equal(await mirrorEntry(hashToken(out.token)), null, 'not in the mirror yet')
  t.ok(r.ms < 10_000, `exited in ${r.ms} ms`)

  // Read-only commands do not need Redis at all.
  const list = await cli(['token', 'list'], { ...cliEnv, REDIS_URL: `redis://127.0.0.1:${port}` })
  t.equal(list.code, 0)
  t.equal(list.stderr, '')
})
