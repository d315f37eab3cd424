// The first-user path, end to end, with real processes: `npm start`'s launcher (gateway + worker),
// the CLI to issue a DSN, then the real client's requests (with trailing slashes) over HTTP.
// Afterwards the documents are in MongoDB and the photo is in the bucket, byte for byte.
import t from 'tap'
import { spawn, execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { jobIds, objectKeys } from '../shared/keys.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { createS3 } from '../shared/s3.ts'
import { freePort } from '../stack/ports.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { roleProcessEnv, testConfig } from './helpers/env.ts'
import { watchJobs } from '../testing/job-events.ts'
import { waitFor } from '../testing/wait.ts'
import { fakeJpeg, readObject } from '../testing/media.ts'

const run = promisify(execFile)
const port = await freePort()
const adminPort = await freePort()
const config = testConfig({ PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` })
const env = {
  ...process.env,
  PORT: String(port),
  ADMIN_PORT: String(adminPort),
  PUBLIC_URL: config.publicUrl,
  REDIS_PREFIX: config.redisPrefix,
  MONGODB_URL: config.mongodbUrl,
  SWEEP_INTERVAL_MS: '1000',
  LOG_LEVEL: 'warn',
}
const cli = async (...args: string[]) =>
  (await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { env: roleProcessEnv('cli', env) })).stdout

const app = spawn(process.execPath, ['--import', 'tsx', 'stack/start-all.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
let output = ''
app.stdout.on('data', (c) => (output += c))
app.stderr.on('data', (c) => (output += c))
const exited = new Promise<number | null>((resolve) => app.once('exit', (code) => resolve(code)))
t.teardown(() => {
  app.kill('SIGKILL')
})

t.test('npm start serves the real client end to end', async (t) => {
  // A poll: a child process's readiness is seen only by asking it.
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, { timeoutMs: 60_000, what: 'gateway ready' })
  t.match(output, `http://127.0.0.1:${port}`, 'prints the gateway URL')

  await cli('workspace', 'create', 'clinic-e2e')
  const created = JSON.parse(await cli('token', 'create', '--workspace', 'clinic-e2e', '--label', 'tablet', '--json'))
  t.match(created.dsn, `http://127.0.0.1:${port}/ingest/`)
  const dsn: string = created.dsn
  // The worker loads the token mirror; the CLI also pushes it. Either way the DSN works promptly.
  const guid = '5f0c2a4e-8d1b-4c7e-9a3f-2b6d8e1f4a90'
  const session = new Uint8Array(readFileSync(new URL('session-rdtoolkit.json', fixturesDir)))
  const logs = new Uint8Array(readFileSync(new URL('logs-rdtoolkit.json', fixturesDir)))
  const jpeg = fakeJpeg(1_500_000)
  const jpegBody = new Uint8Array(jpeg)
  const json = { 'content-type': 'application/json; charset=utf-8' }
  const r1 = await fetch(`${dsn}/test_session/${guid}/`, { method: 'PUT', body: session, headers: json })
  t.equal(r1.status, 201)
  const r2 = await fetch(`${dsn}/test_session/${guid}/logs/`, { method: 'PUT', body: logs, headers: json })
  t.equal(r2.status, 201)
  const r3 = await fetch(`${dsn}/test_session/${guid}/media/cropped/`, {
    method: 'PUT',
    body: jpegBody,
    headers: { 'content-type': 'image/jpeg', 'content-disposition': 'attachment; filename=20210125_111802_cropped.jpg' },
  })
  t.equal(r3.status, 201)
  t.equal((await fetch(`${dsn}/test_session/${guid}/`, { method: 'PUT', body: session, headers: json })).status, 409, 'replay is 409')

  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  const c = collections(db)
  // The worker process's jobs, heard on their events; 'completed' means stored.
  const ws: string = created.workspace_id
  const watch = (queue: string) => watchJobs(t, { redisUrl: config.redisUrl, prefix: config.redisPrefix, queue })
  const jobs: [string, string][] = [
    ['sessions', jobIds.session(ws, guid)],
    ['logs', jobIds.logs(ws, guid, createHash('sha256').update(logs).digest('hex'))],
    ['media', jobIds.media(ws, guid, 'cropped')],
  ]
  for (const [queue, id] of jobs)
    t.same(await (await watch(queue)).settled([id], { timeoutMs: 30_000 }), [{ id, state: 'completed' }], `${queue} job completed`)
  const doc = (await c.sessions.findOne({ session_id: guid }))!
  t.equal(doc.raw_body, Buffer.from(session).toString('utf8'), 'exact body kept')
  t.ok(doc.time_started instanceof Date, 'dates are BSON dates')
  t.equal(doc.state, 'QUEUED')
  t.equal(doc.test_profile_id, 'sd_bioline_mal_pf_pv')
  t.equal(await c.logs.countDocuments({ session_id: guid }), 3, 'logs stored')
  const media = (await c.media.findOne({ session_id: guid, media_id: 'cropped' }))!
  t.equal(media.size, jpeg.length)
  t.equal(media.filename, '20210125_111802_cropped.jpg')
  t.ok(
    objectKeys.isPhotoOf(media.key, doc.workspace_id, guid, 'cropped') && media.key.startsWith('media/'),
    `its own upload key (${media.key})`,
  )
  const s3 = createS3(config.s3)
  t.ok((await readObject(s3, media.bucket, media.key)).equals(jpeg), 'object in the bucket, byte for byte')
  const anon = await fetch(`${config.s3.endpoint}/${media.bucket}/${media.key}`)
  t.equal(anon.status, 403, 'the bucket is private')

  const redis = new Redis(config.redisUrl)
  t.teardown(() => redis.disconnect())
  await cli('token', 'revoke', created.id)
  // The change is pushed to the gateway over pub/sub, which is asynchronous and seen by no
  // event outside the gateway process: poll with a deadline.
  await waitFor(async () => (await fetch(`${dsn}/test_session/other/`, { method: 'PUT', body: session, headers: json })).status === 403, {
    timeoutMs: 10_000,
    what: 'revocation',
  })
  t.pass('the revoked DSN is refused')
})

t.test('Ctrl-C stops everything and exits 0', async (t) => {
  app.kill('SIGINT')
  t.equal(await exited, 0, output.slice(-2000))
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'gateway is down')
})
