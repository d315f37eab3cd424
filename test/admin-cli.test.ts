// `npm run cli -- admin create|disable|reset-password <email>`, as real processes, and the roles
// commands (`admin list|grant|revoke|superadmin`) through runCli.
import t from 'tap'
import { startAdmin, login, browser, csrfOf } from './helpers/admin-support.ts'
import { spawn } from 'node:child_process'
import { connectMongo } from '../shared/mongo.ts'
import { verifyPassword, type PasswordHash } from '../tokens/passwords.ts'
import { runCli } from '../cli/run.ts'
import { roleProcessEnv, testConfig } from './helpers/env.ts'

const config = testConfig()
const { client, db } = await connectMongo(config.mongodbUrl, 1)
t.teardown(async () => {
  await db.dropDatabase().catch(() => {})
  await client.close()
})
const env = roleProcessEnv('cli', { MONGODB_URL: config.mongodbUrl, REDIS_PREFIX: config.redisPrefix })

function cli(args: string[], stdin: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (c) => (out += c))
    p.stderr.on('data', (c) => (err += c))
    p.once('exit', (code) => resolve({ code, out, err }))
    p.stdin.end(stdin)
  })
}

t.test('admin create --password-stdin (real process)', async (t) => {
  const res = await cli(['admin', 'create', 'First@Example.org', '--password-stdin', '--json'], 'a good long password\n')
  t.equal(res.code, 0, res.err)
  t.match(JSON.parse(res.out), { email: 'first@example.org', superadmin: true }, 'the first admin is a superadmin')
  const user = await db.collection('admin_users').findOne({ email: 'first@example.org' })
  t.ok(await verifyPassword('a good long password', user!.password as PasswordHash), 'the trailing newline is not part of the password')
  t.match(await db.collection('audit_log').findOne({ action: 'admin.create' }), { actor: /^cli:/, target: { email: 'first@example.org' } })
  const again = await cli(['admin', 'create', 'first@example.org', '--password-stdin'], 'another long password')
  t.equal(again.code, 1)
  t.match(again.err, 'already exists')
  const short = await cli(['admin', 'create', 'second@example.org', '--password-stdin'], 'short')
  t.equal(short.code, 1)
  t.match(short.err, 'at least 12 characters')
})

t.test('admin create without a terminal or --password-stdin asks for stdin', async (t) => {
  const res = await cli(['admin', 'create', 'third@example.org'], '')
  t.equal(res.code, 1)
  t.match(res.err, '--password-stdin')
})

t.test('runCli uses the injected password reader', async (t) => {
  let out = ''
  let err = ''
  const code = await runCli(['admin', 'create', 'fourth@example.org'], {
    out: (s) => (out += s),
    err: (s) => (err += s),
    env,
    readPassword: async (fromStdin) => (fromStdin ? 'wrong' : 'prompted password 123'),
  })
  t.equal(code, 0, err)
  t.match(out, 'Admin "fourth@example.org" created')
  const bad = await runCli(['admin', 'create'], { out: () => {}, err: (s) => (err += s), env })
  t.equal(bad, 2)
  t.match(err, 'needs <email>')
})

t.test('admin disable (real process): the sessions end at once, log-in is refused, audited', async (t) => {
  const { app } = await startAdmin(config)
  t.teardown(() => app.close())
  t.equal((await cli(['admin', 'create', 'leaver@example.org', '--password-stdin'], 'the leaver password\n')).code, 0)
  t.equal((await cli(['admin', 'create', 'stayer@example.org', '--password-stdin'], 'the stayer password\n')).code, 0)
  const a = await login(app, 'leaver@example.org', 'the leaver password')
  const a2 = await login(app, 'leaver@example.org', 'the leaver password')
  const other = await login(app, 'stayer@example.org', 'the stayer password')
  t.equal((await a.get('/workspaces')).statusCode, 200)

  const res = await cli(['admin', 'disable', 'Leaver@Example.org', '--json'], '')
  t.equal(res.code, 0, res.err)
  t.match(JSON.parse(res.out), { email: 'leaver@example.org', already_disabled: false, sessions_ended: 2 })
  for (const b of [a, a2]) t.equal((await b.get('/workspaces')).statusCode, 303, 'the session no longer works, at once')
  t.equal((await other.get('/workspaces')).statusCode, 200, "another admin's session is untouched")
  await t.rejects(login(app, 'leaver@example.org', 'the leaver password'), /401/, 'a disabled admin cannot log in')
  t.equal(await db.collection('admin_sessions').countDocuments({ email: 'leaver@example.org' }), 0)
  t.match(await db.collection('audit_log').findOne({ action: 'admin.disable' }), {
    actor: /^cli:/,
    target: { email: 'leaver@example.org', sessions_ended: 2 },
  })

  const again = await cli(['admin', 'disable', 'leaver@example.org'], '')
  t.equal(again.code, 0)
  t.match(again.out, 'was already disabled')
  const unknown = await cli(['admin', 'disable', 'nobody@example.org'], '')
  t.equal(unknown.code, 1)
  t.match(unknown.err, 'no admin "nobody@example.org"')
})

t.test('admin reset-password --password-stdin (real process): the new password works, the old one and its sessions do not', async (t) => {
  const { app } = await startAdmin(config)
  t.teardown(() => app.close())
  t.equal((await cli(['admin', 'create', 'forgetful@example.org', '--password-stdin'], 'the first password\n')).code, 0)
  const before = await login(app, 'forgetful@example.org', 'the first password')

  const res = await cli(['admin', 'reset-password', 'forgetful@example.org', '--password-stdin', '--json'], 'the second password\n')
  t.equal(res.code, 0, res.err)
  t.match(JSON.parse(res.out), { email: 'forgetful@example.org', sessions_ended: 1, disabled: false })
  t.notMatch(res.out + res.err, 'second password', 'the password is never printed')
  t.equal((await before.get('/workspaces')).statusCode, 303, 'sessions made with the old password end')
  const b = browser(app)
  const old = await b.post('/login', {
    _csrf: csrfOf((await b.get('/login')).body),
    email: 'forgetful@example.org',
    password: 'the first password',
  })
  t.equal(old.statusCode, 401, 'the old password is refused')
  t.ok(await login(app, 'forgetful@example.org', 'the second password'), 'the new one works')
  const audit = await db.collection('audit_log').findOne({ action: 'admin.reset_password' })
  t.match(audit, { actor: /^cli:/, target: { email: 'forgetful@example.org', sessions_ended: 1 } })
  t.notMatch(JSON.stringify(audit), 'second password')

  const short = await cli(['admin', 'reset-password', 'forgetful@example.org', '--password-stdin'], 'short')
  t.equal(short.code, 1)
  t.match(short.err, 'at least 12 characters')
  const unknown = await cli(['admin', 'reset-password', 'nobody@example.org', '--password-stdin'], 'a long enough password')
  t.equal(unknown.code, 1)
  t.match(unknown.err, 'no admin')
  const noTty = await cli(['admin', 'reset-password', 'forgetful@example.org'], '')
  t.equal(noTty.code, 1)
  t.match(noTty.err, '--password-stdin')
})

/** runCli in this process, collecting its output. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await runCli(args, { out: (s) => (out += s), err: (s) => (err += s), env })
  return { code, out, err }
}

t.test('admin grant|revoke|superadmin|list: roles from the CLI, with --json, audited', async (t) => {
  t.equal((await run(['workspace', 'create', 'roles-ws', '--json'])).code, 0)
  const later = await runCli(['admin', 'create', 'member@example.org'], {
    out: () => {},
    err: () => {},
    env,
    readPassword: async () => 'the member password',
  })
  t.equal(later, 0)
  t.match(await db.collection('admin_users').findOne({ email: 'member@example.org' }), { superadmin: false, workspace_roles: {} })

  const grant = await run(['admin', 'grant', 'Member@Example.org', '--workspace', 'roles-ws', '--role', 'analyst', '--json'])
  t.equal(grant.code, 0, grant.err)
  const g = JSON.parse(grant.out)
  t.match(g, { email: 'member@example.org', slug: 'roles-ws', role: 'analyst', previous_role: null, workspace_id: /^w[0-9a-f]{16}$/ })
  const up = await run(['admin', 'grant', 'member@example.org', '--workspace', g.workspace_id, '--role', 'owner'])
  t.equal(up.code, 0, up.err)
  t.match(up.out, '"member@example.org" is now owner of workspace "roles-ws" (was analyst)')

  const list = await run(['admin', 'list', '--json'])
  t.equal(list.code, 0, list.err)
  const member = (JSON.parse(list.out) as { email: string }[]).find((u) => u.email === 'member@example.org')
  t.match(member, { superadmin: false, roles: [{ slug: 'roles-ws', role: 'owner' }] })
  t.notMatch(list.out, 'scrypt', 'no password hash in the list')
  t.match((await run(['admin', 'list'])).out, /member@example\.org\s+active\s+no\s+roles-ws:owner/)

  const revoke = await run(['admin', 'revoke', 'member@example.org', '--workspace', 'roles-ws', '--json'])
  t.equal(revoke.code, 0, revoke.err)
  t.match(JSON.parse(revoke.out), { role: null, previous_role: 'owner' })
  t.same((await db.collection('admin_users').findOne({ email: 'member@example.org' }))?.workspace_roles, {})

  const on = await run(['admin', 'superadmin', 'member@example.org', 'on', '--json'])
  t.equal(on.code, 0, on.err)
  t.match(JSON.parse(on.out), { superadmin: true, changed: true })
  t.match(await db.collection('audit_log').findOne({ action: 'admin.grant' }), { actor: /^cli:/, target: { email: 'member@example.org' } })
  t.match(await db.collection('audit_log').findOne({ action: 'admin.revoke' }), { actor: /^cli:/ })
  t.match(await db.collection('audit_log').findOne({ action: 'admin.superadmin', 'target.email': 'member@example.org' }), {
    target: { superadmin: true },
  })

  // Refusals: exit 1 with the reason, or 2 for a command line that cannot be parsed.
  const badRole = await run(['admin', 'grant', 'member@example.org', '--workspace', 'roles-ws', '--role', 'admin'])
  t.equal(badRole.code, 2)
  t.match(badRole.err, '--role must be owner or analyst')
  t.equal((await run(['admin', 'superadmin', 'member@example.org', 'maybe'])).code, 2)
  const noWs = await run(['admin', 'grant', 'member@example.org', '--workspace', 'no-such-ws', '--role', 'owner'])
  t.equal(noWs.code, 1)
  t.match(noWs.err, 'unknown workspace "no-such-ws"')
  const noUser = await run(['admin', 'revoke', 'ghost@example.org', '--workspace', 'roles-ws'])
  t.equal(noUser.code, 1)
  t.match(noUser.err, 'no admin "ghost@example.org"')
  // Only enabled superadmins count: turn every other one off, then the last is refused.
  for (const u of await db
    .collection('admin_users')
    .find({ superadmin: true, email: { $ne: 'member@example.org' } })
    .toArray()) {
    t.equal((await run(['admin', 'superadmin', String(u.email), 'off'])).code, 0)
  }
  const last = await run(['admin', 'superadmin', 'member@example.org', 'off'])
  t.equal(last.code, 1)
  t.match(last.err, 'last enabled superadmin')
  t.equal((await db.collection('admin_users').findOne({ email: 'member@example.org' }))?.superadmin, true)
})
