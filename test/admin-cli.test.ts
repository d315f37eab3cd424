// `npm run cli -- admin create <email>`: the first admin, with the password from stdin.
import t from 'tap'
import { spawn } from 'node:child_process'
import { connectMongo } from '../shared/mongo.ts'
import { verifyPassword, type PasswordHash } from '../admin/security/passwords.ts'
import { runCli } from '../cli/run.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const { client, db } = await connectMongo(config.mongodbUrl, 1)
t.teardown(async () => {
  await db.dropDatabase().catch(() => {})
  await client.close()
})
const env = { ...process.env, MONGODB_URL: config.mongodbUrl, REDIS_PREFIX: config.redisPrefix }

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
  t.match(JSON.parse(res.out), { email: 'first@example.org' })
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
