// `STACK_TLS=1 npm start` on a fresh stack dir, end to end with real processes: it makes a local
// CA and a server certificate, writes GATEWAY_CA_FILE to the env file, the CLI prints https DSNs,
// and the real client's three PUTs (session, logs, photo) go over HTTPS to the gateway, trusting
// that CA, and are stored. A client that does not trust the CA fails the handshake, and plain
// http gets no answer. The admin panel serves HTTPS too.
import t from 'tap'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { request } from 'node:https'
import { rootCertificates, getCACertificates, setDefaultCACertificates } from 'node:tls'
import { promisify } from 'node:util'
import { jobIds } from '../shared/keys.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { createS3 } from '../shared/s3.ts'
import { loadTestConfig } from '../testing/config.ts'
import { inspectorEnv, roleEnv } from '../stack/roles.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { watchJobs } from '../testing/job-events.ts'
import { waitFor } from '../testing/wait.ts'
import { fakeJpeg, readObject } from '../testing/media.ts'
import { npmStart } from './helpers/npm-start.ts'

const run = promisify(execFile)
const app = await npmStart({ STACK_TLS: '1' })
t.teardown(() => app.cleanup())

/** A GET with only the given CAs trusted; resolves with the status or rejects with the TLS error. */
function get(url: string, ca: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { ca }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
      .on('error', reject)
      .end()
  })
}

t.test('STACK_TLS=1 npm start: HTTPS with a local CA, end to end', async (t) => {
  await app.waitForOutput(/\[start-all\] Ctrl-C to stop/, { timeoutMs: 120_000 })
  const base = `https://127.0.0.1:${app.port}`
  t.match(app.output(), `[start-all] gateway: ${base}`, 'prints the https URL')

  const envFile = await app.envFile()
  t.equal(envFile.GATEWAY_CA_FILE, `${app.dir}/tls/ca.crt`, 'the env file names the CA')
  t.equal(envFile.PUBLIC_URL, base, 'and the https PUBLIC_URL')
  for (const f of ['ca.key', 'server.key']) t.equal(statSync(`${app.dir}/tls/${f}`).mode & 0o777, 0o600, `${f} is private`)
  const ca = readFileSync(envFile.GATEWAY_CA_FILE!, 'utf8')

  // Without the CA: the handshake fails, before any HTTP. Plain http on the same port gets nothing.
  // Polls: a child process's readiness is seen only by asking it.
  await waitFor(() => get(`${base}/readyz`, [ca]).then((s) => s === 200), { timeoutMs: 60_000, what: 'gateway ready over HTTPS' })
  await t.rejects(
    get(`${base}/readyz`, [...rootCertificates]),
    { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    'a client that does not trust the CA fails the handshake',
  )
  await t.rejects(fetch(`http://127.0.0.1:${app.port}/readyz`), 'no cleartext answer')
  t.equal(await get(`https://localhost:${app.port}/readyz`, [ca]), 200, 'the certificate names localhost too')
  // The same for the admin panel.
  await waitFor(() => get(`https://127.0.0.1:${app.adminPort}/healthz`, [ca]).then((s) => s === 200), {
    timeoutMs: 60_000,
    what: 'admin panel ready over HTTPS',
  })
  await t.rejects(
    get(`https://127.0.0.1:${app.adminPort}/healthz`, [...rootCertificates]),
    { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    'the admin panel uses the same certificate',
  )

  // The CLI, as `npm run cli` runs it next to `npm start` (stack/run-as.ts: the env file, with the
  // CLI's own credentials): https DSNs.
  const cliEnv = roleEnv({ PATH: process.env.PATH, HOME: process.env.HOME, ...envFile }, 'cli')
  const cli = async (...args: string[]) =>
    (await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { env: cliEnv })).stdout
  await cli('workspace', 'create', 'clinic-tls')
  const created = JSON.parse(await cli('token', 'create', '--workspace', 'clinic-tls', '--label', 'tablet', '--json'))
  t.match(created.dsn, new RegExp(`^${base.replace(/\./g, '\\.')}/ingest/rdt_`), 'the CLI prints an https DSN')

  // From here on, this process trusts the CA, as a phone configured with it would.
  setDefaultCACertificates([...getCACertificates('default'), ca])
  const dsn: string = created.dsn
  const guid = '7a1d3c2e-5b4f-4e6a-9c8d-1f2e3d4c5b6a'
  const session = new Uint8Array(readFileSync(new URL('session-rdtoolkit.json', fixturesDir)))
  const logs = new Uint8Array(readFileSync(new URL('logs-rdtoolkit.json', fixturesDir)))
  const jpeg = fakeJpeg(300_000)
  const json = { 'content-type': 'application/json; charset=utf-8' }
  t.equal((await fetch(`${dsn}/test_session/${guid}/`, { method: 'PUT', body: session, headers: json })).status, 201, 'session over HTTPS')
  t.equal((await fetch(`${dsn}/test_session/${guid}/logs/`, { method: 'PUT', body: logs, headers: json })).status, 201, 'logs over HTTPS')
  const photo = await fetch(`${dsn}/test_session/${guid}/media/cropped/`, {
    method: 'PUT',
    body: new Uint8Array(jpeg),
    headers: { 'content-type': 'image/jpeg', 'content-disposition': 'attachment; filename=20210125_111802_cropped.jpg' },
  })
  t.equal(photo.status, 201, 'photo over HTTPS')

  // The test's own checks: the stack's test-only root credentials.
  const config = loadTestConfig(inspectorEnv(envFile))
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  const c = collections(db)
  // The worker process's jobs, heard on their events; 'completed' means stored.
  const ws: string = created.workspace_id
  const jobs: [string, string][] = [
    ['sessions', jobIds.session(ws, guid)],
    ['logs', jobIds.logs(ws, guid, createHash('sha256').update(logs).digest('hex'))],
    ['media', jobIds.media(ws, guid, 'cropped')],
  ]
  for (const [queue, id] of jobs) {
    const watch = await watchJobs(t, { redisUrl: config.redisUrl, prefix: config.redisPrefix, queue })
    t.same(await watch.settled([id], { timeoutMs: 30_000 }), [{ id, state: 'completed' }], `${queue} job completed`)
  }
  const doc = (await c.sessions.findOne({ session_id: guid }))!
  t.equal(doc.raw_body, Buffer.from(session).toString('utf8'), 'the session, byte for byte')
  t.equal(await c.logs.countDocuments({ session_id: guid }), 3, 'logs stored')
  const media = (await c.media.findOne({ session_id: guid, media_id: 'cropped' }))!
  t.ok((await readObject(createS3(config.s3), media.bucket, media.key)).equals(jpeg), 'the photo in the bucket, byte for byte')
})

t.test('Ctrl-C stops everything and exits 0', async (t) => {
  const code = await app.interrupt()
  t.equal(code, 0, code === 0 ? 'exit code 0' : app.output().slice(-3000))
})
