// `jobs failed` / `jobs retry`: against a real worker on its own prefix, database and bucket.
// One job fails for good because its payload is invalid (UnrecoverableError); one fails because
// its uploaded photo is missing (a transient cause that outlasts its attempts). The CLI lists both
// without ever printing a body, and once the photo appears, `jobs retry` gets it stored.
import t from 'tap'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { runCli } from '../cli/run.ts'
import { jobIds, objectKeys } from '../shared/keys.ts'
import type { MediaJob } from '../shared/queues.ts'
import { streamPut } from '../shared/s3-stream-put.ts'
import { fakeJpeg } from '../testing/media.ts'
import { asRole, roleProcessEnv } from './helpers/env.ts'
import { randomId, sha256, startTestWorker } from './helpers/worker-harness.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const stack = await startTestWorker(t)
const { config } = stack
const env = roleProcessEnv('cli', { MONGODB_URL: config.mongodbUrl, REDIS_URL: config.redisUrl, REDIS_PREFIX: config.redisPrefix })

async function cli(args: string[], extraEnv: Record<string, string> = {}) {
  let out = ''
  let err = ''
  const code = await runCli(args, { out: (s) => (out += s), err: (s) => (err += s), env: { ...env, ...extraEnv } })
  return { code, out, err }
}

// A marker standing for patient data (and a DSN-looking token): it must never reach CLI output or a log line.
const SECRET = `PATIENT-${randomId()}-rdt_${randomId()}${randomId()}`
const ws = 'w' + randomId().padEnd(16, '0').slice(0, 16)
const session = randomId('s')

// 1. An invalid payload (a workspace id with a space): the processor throws UnrecoverableError.
const badId = jobIds.session('wbad', session)
await stack.queues.sessions.add(
  'session',
  {
    kind: 'session',
    workspace_id: 'not a valid id',
    session_id: session,
    token_id: 't1',
    received_at: new Date().toISOString(),
    sha256: '0'.repeat(64),
    body: `{"secret":"${SECRET}"}`,
  },
  { jobId: badId, attempts: 300, removeOnFail: false },
)

// 2. A media job whose upload is missing: "will retry", twice, then failed for good.
const photo = fakeJpeg(20_000)
const media: MediaJob = {
  kind: 'media',
  workspace_id: ws,
  session_id: session,
  token_id: 't1',
  received_at: new Date().toISOString(),
  media_id: 'cropped',
  bucket: config.s3.bucket,
  staging_key: objectKeys.upload(ws, session, 'cropped', randomUUID()),
  size: photo.length,
  sha256: sha256(photo),
  filename: `${SECRET}.jpg`,
  content_type: 'image/jpeg',
  sniffed_type: 'image/jpeg',
}
const mediaId = jobIds.media(ws, session, 'cropped')
await stack.queues.media.add('media', media, {
  jobId: mediaId,
  attempts: 2,
  backoff: { type: 'capped-jitter', delay: 100 },
  removeOnFail: false,
})

const bad = await stack.settled('sessions', badId)
const missing = await stack.settled('media', mediaId)

t.test('the jobs end in the failed set, and the worker says so in one line without the body', async (t) => {
  t.equal(bad.state, 'failed')
  t.match(bad.job.failedReason, /invalid sessions job payload/)
  t.equal(missing.state, 'failed')
  t.equal(missing.job.attemptsMade, 2, 'the transient failure was retried before it was given up')
  t.match(missing.job.failedReason, /uploaded object not found/)

  const lines = stack.lines.filter((l) => l.msg === 'job failed permanently')
  const byJob = new Map(lines.map((l) => [l.jobId, l]))
  t.match(byJob.get(badId), { level: 50, queue: 'sessions', jobId: badId, reason: /UnrecoverableError: invalid sessions job payload/ })
  t.match(byJob.get(mediaId), { level: 50, queue: 'media', jobId: mediaId, attempts: 2, reason: /uploaded object not found/ })
  t.notOk(
    stack.lines.some((l) => JSON.stringify(l).includes(SECRET)),
    'no log line carries the body or the filename',
  )
  t.same(stack.app.stats().permanentFailures, { sessions: 1, media: 1 }, 'counted per queue')
})

t.test('jobs failed lists them, newest first, without bodies', async (t) => {
  const res = await cli(['jobs', 'failed', '--json'])
  t.equal(res.code, 0, res.err)
  t.notOk(res.out.includes(SECRET), 'no body, no filename')
  const list = JSON.parse(res.out) as { total: Record<string, number>; jobs: Record<string, unknown>[] }
  t.same(list.total, { sessions: 1, logs: 0, media: 1 })
  const ids = list.jobs.map((j) => j.id)
  t.same(ids.sort(), [badId, mediaId].sort())
  t.same(Object.keys(list.jobs[0]!).sort(), [
    'attempts_made',
    'created_at',
    'failed_at',
    'failed_reason',
    'id',
    'media_id',
    'name',
    'queue',
    'session_id',
    'workspace_id',
  ])
  const m = list.jobs.find((j) => j.id === mediaId)!
  t.match(m, {
    queue: 'media',
    name: 'media',
    workspace_id: ws,
    session_id: session,
    media_id: 'cropped',
    attempts_made: 2,
    failed_reason: /uploaded object not found/,
  })
  t.ok(Date.parse(String(m.failed_at)) >= Date.parse(String(m.created_at)))
  const b = list.jobs.find((j) => j.id === badId)!
  t.match(b, { queue: 'sessions', workspace_id: null, session_id: session }, 'an invalid id from the payload is not echoed')

  const only = await cli(['jobs', 'failed', '--queue', 'media', '--json'])
  t.same(
    JSON.parse(only.out).jobs.map((j: { id: string }) => j.id),
    [mediaId],
  )
  t.same(JSON.parse(only.out).total, { media: 1 })

  const human = await cli(['jobs', 'failed'])
  t.equal(human.code, 0)
  t.match(human.out, /^QUEUE\s+JOB ID\s+ATTEMPTS\s+FAILED\s+REASON/)
  t.match(human.out, mediaId)
  t.match(human.out, 'Failed jobs: sessions 1, logs 0, media 1')
  t.notOk(human.out.includes(SECRET))

  const limited = await cli(['jobs', 'failed', '--limit', '1', '--json'])
  t.equal(JSON.parse(limited.out).jobs.length, 1)
})

t.test('the real process prints the same list', async (t) => {
  const res = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'jobs', 'failed', '--json'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    p.stdout.on('data', (c) => (out += c))
    p.stderr.on('data', (c) => (err += c))
    p.once('exit', (code) => resolve({ code, out, err }))
  })
  t.equal(res.code, 0, res.err)
  t.equal(JSON.parse(res.out).jobs.length, 2)
})

t.test('usage errors exit 2 before connecting', async (t) => {
  for (const args of [
    ['jobs', 'retry'],
    ['jobs', 'retry', 'x', '--all'],
    ['jobs', 'failed', '--queue', 'photos'],
    ['jobs', 'failed', '--limit', '0'],
    ['jobs', 'retry', 'a', 'b'],
  ]) {
    const res = await cli(args)
    t.equal(res.code, 2, args.join(' '))
    t.match(res.err, /^error: /)
  }
})

t.test('retrying something that is not a failed job is refused', async (t) => {
  const none = await cli(['jobs', 'retry', 'no-such-job'])
  t.equal(none.code, 1)
  t.match(none.err, 'no job "no-such-job"')
  const wrongQueue = await cli(['jobs', 'retry', mediaId, '--queue', 'logs'])
  t.equal(wrongQueue.code, 1)
  t.match(wrongQueue.err, 'in queue logs')
})

t.test('once the photo exists, jobs retry <id> stores it, and the retry is audited', async (t) => {
  // The transient cause goes away: the upload appears.
  await streamPut(asRole(config, 'gateway').s3, config.s3.bucket, media.staging_key, Readable.from([photo]), {
    contentLength: photo.length,
  })
  const res = await cli(['jobs', 'retry', mediaId, '--json'])
  t.equal(res.code, 0, res.err)
  t.match(JSON.parse(res.out), { retried: [{ queue: 'media', id: mediaId, attempts_made: 2 }], skipped: [] })
  const done = await stack.settled('media', mediaId)
  t.equal(done.state, 'completed', String(done.job.failedReason))
  // BullMQ counts the successful attempt too: 1 here, not 3, because the retry reset the counter.
  t.equal(done.job.attemptsMade, 1, 'the retry started with a fresh attempt budget')
  const doc = await stack.db.collection('test_session_media').findOne({ workspace_id: ws, session_id: session, media_id: 'cropped' })
  t.match(doc, { sha256: sha256(photo), size: photo.length, sniffed_type: 'image/jpeg' })

  const audit = await stack.db.collection('audit_log').findOne({ action: 'job.retry', 'target.job_id': mediaId })
  t.match(audit, {
    actor: /^cli:/,
    target: {
      queue: 'media',
      job_id: mediaId,
      workspace_id: ws,
      session_id: session,
      media_id: 'cropped',
      attempts_made: 2,
      failed_reason: /uploaded object not found/,
    },
  })
  t.notOk(JSON.stringify(audit).includes(SECRET))

  const again = await cli(['jobs', 'retry', mediaId])
  t.equal(again.code, 1, 'a completed job is not retried')
  t.match(again.err, 'is completed, not failed')
})

t.test('jobs retry --all retries what is failed; an invalid payload fails again and stays for inspection', async (t) => {
  // Listening before the retry: the job is 'failed' now, so only its next 'failed' event tells.
  const failedAgain = (await stack.watch('sessions')).next(badId, 'failed', { what: 'the invalid job to fail again' })
  const res = await cli(['jobs', 'retry', '--all', '--json'])
  t.equal(res.code, 0, res.err)
  t.match(JSON.parse(res.out), { retried: [{ queue: 'sessions', id: badId }], skipped: [] })
  await failedAgain
  t.not((await stack.queues.sessions.getJob(badId))?.finishedOn, bad.job.finishedOn, 'it ran again')
  t.equal(await stack.queues.sessions.getFailedCount(), 1, 'still kept, never dropped')
  t.equal(await stack.db.collection('audit_log').countDocuments({ action: 'job.retry' }), 2, 'one audit entry per retried job')
  const human = await cli(['jobs', 'retry', '--all', '--queue', 'media'])
  t.equal(human.code, 0)
  t.equal(human.out, 'No failed jobs to retry.\n')
})

t.test('with Redis unreachable, the jobs commands fail clearly', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port
      s.close(() => resolve(p))
    })
  })
  const res = await cli(['jobs', 'failed'], { REDIS_URL: `redis://127.0.0.1:${port}` })
  t.equal(res.code, 1)
  t.match(res.err, /Redis at redis:\/\/127\.0\.0\.1:\d+\/? is unreachable/)
})
