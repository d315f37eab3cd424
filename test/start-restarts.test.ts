// `npm start` stays up, with real processes on a fresh stack dir: while phones keep
// uploading sessions, the worker and then the gateway are killed with SIGKILL. Each comes back by
// itself, uploads go on after each restart, and every upload that was answered 201 or 409 is
// stored exactly once. Then a local service (FerretDB) is killed: it comes back on the same port,
// so the env file stays valid. Ctrl-C still stops everything with exit code 0.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadTestConfig } from '../testing/config.ts'
import { jobIds } from '../shared/keys.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { inspectorEnv } from '../stack/roles.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'
import { watchJobs } from '../testing/job-events.ts'
import { waitFor } from '../testing/wait.ts'
import { npmStart } from './helpers/npm-start.ts'

const app = await npmStart({
  // A killed worker's jobs run again once their lock expires and a stalled check sees them;
  // shorter than the defaults so that this test does not wait a minute for it.
  WORKER_LOCK_MS: '8000',
  WORKER_STALLED_INTERVAL_MS: '2000',
  // A gateway killed between claiming an id and enqueueing leaves the claim pending this long.
  PENDING_TIMEOUT_MS: '2000',
  // Three phones sending one after another exceed the default 600 a minute per token; the
  // limit's 429 is not what this test is about.
  RATE_LIMIT_PER_MINUTE: '0',
})
t.teardown(() => app.cleanup())

const template = JSON.parse(readFileSync(new URL('session-rdtoolkit.json', fixturesDir), 'utf8')) as Record<string, unknown>

/**
 * Phones: each sends one session after another, each until it is accepted. Like the device, a
 * network error or a 5xx is retried with the very same request; 201 and 409 (already have it)
 * both count as accepted. Any other answer would make a phone retry forever: recorded as a failure.
 */
function phones(dsn: string, count: number) {
  const accepted: string[] = []
  const refused: string[] = []
  let stopping = false
  let retries = 0
  const one = async () => {
    while (!stopping) {
      const guid = randomUUID()
      const body = JSON.stringify({ ...template, id: guid })
      for (;;) {
        try {
          const r = await fetch(`${dsn}/test_session/${guid}/`, {
            method: 'PUT',
            body,
            headers: { 'content-type': 'application/json' },
            signal: AbortSignal.timeout(30_000),
          })
          await r.arrayBuffer()
          if (r.status === 201 || r.status === 409) {
            accepted.push(guid)
            // A clinic's pace, not a flood: the point is uploads across restarts, not load.
            await new Promise((r) => setTimeout(r, 50))
            break
          }
          if (r.status < 500) {
            refused.push(`${guid}: ${r.status}`)
            break
          }
        } catch {
          // connection refused or cut: the gateway is down or restarting
        }
        retries++
        await new Promise((r) => setTimeout(r, 100))
      }
    }
  }
  const running = Array.from({ length: count }, one)
  return {
    accepted,
    refused,
    retries: () => retries,
    /** Lets every phone finish the upload it is on (so nothing is left half sent), then resolves. */
    async stop() {
      stopping = true
      await Promise.all(running)
    },
  }
}

t.test('the worker and then the gateway killed with SIGKILL while phones upload', async (t) => {
  await app.waitForOutput(/\[start-all\] Ctrl-C to stop/, { timeoutMs: 120_000 })
  const envFile = await app.envFile()
  // Seeding and checks with the stack's test-only root credentials.
  const config = loadTestConfig({ ...inspectorEnv(envFile), PUBLIC_URL: `http://127.0.0.1:${app.port}` })
  // Polls: a child process's readiness, and the phones' progress below, have no event to wait on.
  await waitFor(async () => (await fetch(`http://127.0.0.1:${app.port}/readyz`)).ok, { timeoutMs: 60_000, what: 'gateway ready' })
  const { token, workspaceId } = await seedToken(config)
  // The worker process's jobs, heard on their events; 'completed' means stored.
  const sessionJobs = await watchJobs(t, { redisUrl: config.redisUrl, prefix: config.redisPrefix, queue: 'sessions' })
  const jobOf = (guid: string) => jobIds.session(workspaceId, guid)
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  const c = collections(db)
  const dsn = `http://127.0.0.1:${app.port}/ingest/${token}`
  const stored = (guid: string) => c.sessions.countDocuments({ session_id: guid })

  const pidOf = async (name: string, from = 0) =>
    Number((await app.waitForOutput(new RegExp(`\\[start-all\\] ${name} started \\(pid (\\d+)\\)`), { from }))[1])
  const p = phones(dsn, 3)
  t.teardown(() => p.stop())
  await waitFor(() => p.accepted.length >= 20, { timeoutMs: 60_000, what: '20 uploads accepted' })

  for (const name of ['worker', 'gateway']) {
    const mark = app.output().length
    const pid = await pidOf(name)
    const before = p.accepted.length
    process.kill(pid, 'SIGKILL')
    await app.waitForOutput(new RegExp(`\\[start-all\\] ${name} was killed by SIGKILL; restarting it in \\d+ ms`), {
      from: mark,
      timeoutMs: 30_000,
    })
    const newPid = await pidOf(name, mark)
    t.not(newPid, pid, `${name} restarted as a new process`)
    // Uploads go on: accepted after the new process started, and (for the worker) stored by it.
    await waitFor(() => p.accepted.length >= before + 20, { timeoutMs: 60_000, what: `20 more uploads accepted after the ${name} restart` })
    const late = p.accepted[p.accepted.length - 1]!
    await sessionJobs.settled([jobOf(late)], { timeoutMs: 60_000, what: `an upload accepted after the ${name} restart to be stored` })
    t.equal(await stored(late), 1, `uploads continue after the ${name} restart`)
  }

  await p.stop()
  t.same(p.refused, [], 'no upload refused with a 4xx other than 409')
  t.ok(p.retries() > 0, 'the phones did see the restarts (and retried)')
  // Every accepted upload, including the jobs the killed worker held, stored once and only once.
  const ids = [...new Set(p.accepted)]
  const outcomes = await sessionJobs.settled(ids.map(jobOf), { timeoutMs: 90_000, what: `all ${ids.length} accepted sessions stored` })
  t.same(
    outcomes.filter((o) => o.state !== 'completed'),
    [],
    'every job completed',
  )
  t.equal(await c.sessions.countDocuments({ session_id: { $in: ids } }), ids.length, 'every accepted session stored')
  const dup = await c.sessions.aggregate([{ $group: { _id: '$session_id', n: { $sum: 1 } } }, { $match: { n: { $gt: 1 } } }]).toArray()
  t.same(dup, [], 'no session stored twice')
  t.equal(await c.sessions.countDocuments({}), ids.length, 'nothing stored that was not accepted')
  t.comment(`${ids.length} sessions accepted and stored once; ${p.retries()} retries`)
})

t.test('a local service killed with SIGKILL comes back on the same port', async (t) => {
  const envBefore = await app.envFile()
  const pids = JSON.parse(await readFile(join(app.dir, 'stack.pid'), 'utf8')) as { services: Record<string, number> }
  const pid = pids.services.ferretdb!
  const port = new URL(envBefore.MONGODB_URL!).port
  const mark = app.output().length
  process.kill(pid, 'SIGKILL')
  await app.waitForOutput(/\[start-all\] ferretdb killed by SIGKILL; restarting it in \d+ ms/, { from: mark, timeoutMs: 30_000 })
  const back = await app.waitForOutput(/\[start-all\] ferretdb is back on port (\d+) \(pid (\d+)\)/, { from: mark, timeoutMs: 60_000 })
  t.equal(back[1], port, 'the same port')
  t.not(Number(back[2]), pid, 'a new process')
  t.same(await app.envFile(), envBefore, 'the env file is unchanged, and still right')
  const config = loadTestConfig(inspectorEnv(envBefore))
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  t.ok((await collections(db).sessions.countDocuments({})) > 0, 'the same data, through the same URL')
})

t.test('Ctrl-C stops everything and exits 0', async (t) => {
  const code = await app.interrupt()
  t.equal(code, 0, code === 0 ? 'exit code 0' : app.output().slice(-3000))
  await t.rejects(fetch(`http://127.0.0.1:${app.port}/healthz`), 'the gateway is down')
})
