// The media queue and the upload sweeper against the real stack (Redis, FerretDB, S3 server).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { jobIds, objectKeys } from '../shared/keys.ts'
import { pino } from 'pino'
import { readObject } from '../worker/staged-object.ts'
import { createSweeper } from '../worker/sweeper.ts'
import { fakeJob, jobIdFor, randomId, sha256, stageMedia, startTestWorker, uploadMedia } from './helpers/worker-harness.ts'

const stack = await startTestWorker(t, { STAGING_GRACE_MS: '0' })
const media = stack.db.collection('test_session_media')
const conflicts = stack.db.collection('test_session_conflicts')
const bucket = stack.config.s3.bucket
const processMedia = stack.app.processors.get('media')!

const jpeg = (n = 200_000) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0'), randomBytes(n)])

async function exists(key: string): Promise<boolean> {
  return stack.s3.statObject(bucket, key).then(
    () => true,
    () => false,
  )
}

async function bytesOf(key: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of (await stack.s3.getObject(bucket, key)) as AsyncIterable<Buffer>) chunks.push(c)
  return Buffer.concat(chunks)
}

async function run(data: Awaited<ReturnType<typeof stageMedia>>) {
  await stack.add('media', data)
  return stack.settled('media', jobIdFor(data))
}

/** What the sweeper logged since line `from` (a failed sweep of one object is only logged). */
const sweepLogLines = (from: number) =>
  stack.lines
    .slice(from)
    .filter((l) => /sweep/.test(String(l.msg)))
    .map((l) => `${l.msg} ${String(l.err ?? '')}`)

t.test('an upload is recorded where the gateway wrote it, without reading it back', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'cropped', bytes, filename: '20210125_111802_cropped.jpg' })
  // The one fake here, for one reason: to prove the worker never reads the photo's bytes (a GET
  // costs a pass over the disk), which no outcome can show. Only the worker's client is wrapped.
  const s3 = stack.app.s3
  const realGet = s3.getObject.bind(s3)
  const reads: string[] = []
  s3.getObject = (async (...args: Parameters<typeof realGet>) => {
    reads.push(String(args[1]))
    return realGet(...args)
  }) as typeof s3.getObject
  t.teardown(() => {
    s3.getObject = realGet
  })
  const { state, job } = await run(data)
  t.equal(state, 'completed')
  t.same(job.returnvalue, { outcome: 'stored', sniffed_type: 'image/jpeg' })
  t.same(reads, [], 'the worker read no object')

  t.ok((await bytesOf(data.staging_key)).equals(bytes), 'the upload is where it was written, with the same bytes')
  t.notOk(await exists(objectKeys.pendingOf(data.staging_key)!), 'its marker is removed')
  t.notOk(await exists(objectKeys.final(ws, 's1', 'cropped')), 'nothing is copied')
  const doc = await media.findOne({ workspace_id: ws, session_id: 's1', media_id: 'cropped' })
  t.match(doc, {
    token_id: 'tok1',
    filename: '20210125_111802_cropped.jpg',
    content_type: 'image/jpeg',
    sniffed_type: 'image/jpeg',
    size: bytes.length,
    sha256: sha256(bytes),
    bucket,
    key: data.staging_key,
  })
  t.ok(doc?.received_at instanceof Date && doc?.stored_at instanceof Date)
  t.equal(await stack.redis.get(stack.idemKey('m', ws, 's1', 'cropped')), `${data.sha256}|a`, 'idempotency key accepted')
})

t.test('an upload of another length than the job says fails for good, without retries', async (t) => {
  const ws = randomId('w')
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(1000) })
  const { state, job } = await run({ ...data, size: data.size + 1 })
  t.equal(state, 'failed')
  t.equal(job.attemptsMade, 1, 'not retried')
  t.match(job.failedReason, /bytes, the job says/)
  t.ok(await exists(data.staging_key), 'upload kept for inspection')
  t.equal(await media.countDocuments({ workspace_id: ws }), 0)
  t.ok(stack.lines.some((l) => l.msg === 'job failed permanently' && l.queue === 'media' && l.jobId === job.id))
  await stack.s3.removeObjects(bucket, [data.staging_key, objectKeys.pendingOf(data.staging_key)!]) // or the sweeper tests would pick it up
})

t.test('a job whose key is not an upload of its own photo fails for good', async (t) => {
  const ws = randomId('w')
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(100) })
  const other = await uploadMedia(stack, { ws, session: 's2', media: 'raw', bytes: jpeg(100) })
  await t.rejects(processMedia(fakeJob({ ...data, staging_key: other.staging_key })), /not an upload of its photo/)
  await t.rejects(processMedia(fakeJob({ ...data, staging_key: `${ws}/s1/raw` })), /not an upload of its photo/)
  t.equal(await media.countDocuments({ workspace_id: ws }), 0)
  for (const d of [data, other]) await stack.s3.removeObjects(bucket, [d.staging_key, objectKeys.pendingOf(d.staging_key)!])
})

t.test('the same job twice (also at once) stores one document, and keeps its upload', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes })
  const outcomes = (await Promise.all([processMedia(fakeJob(data)), processMedia(fakeJob(data))])).map(
    (o) => (o as { outcome: string }).outcome,
  )
  // Which run stores depends on timing; the other finds the record (replay). Neither fails.
  t.equal(outcomes.filter((o) => o === 'stored').length, 1, `one run stores (${outcomes.join(', ')})`)
  t.match(
    outcomes.find((o) => o !== 'stored'),
    /^(replay|already_stored)$/,
  )
  const again = (await processMedia(fakeJob(data))) as { outcome: string }
  t.equal(again.outcome, 'replay', 'a re-run after success finds its own upload canonical')
  t.equal(await media.countDocuments({ workspace_id: ws }), 1)
  t.ok((await bytesOf(data.staging_key)).equals(bytes), 'the canonical upload is never removed')
})

t.test('a retried upload (the same bytes again) is stored once: its copy is removed', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const first = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes })
  await run(first)
  await (await stack.queues.media.getJob(jobIds.media(ws, 's1', 'raw')))?.remove()
  const retry = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes })
  const { state, job } = await run(retry)
  t.equal(state, 'completed')
  t.equal(job.returnvalue.outcome, 'replay')
  t.notOk(await exists(retry.staging_key), "the retry's copy is removed")
  t.notOk(await exists(objectKeys.pendingOf(retry.staging_key)!), 'and its marker')
  t.ok((await bytesOf(first.staging_key)).equals(bytes), 'the canonical upload is untouched')
  t.match(await media.findOne({ workspace_id: ws }), { key: first.staging_key })
  t.equal(await media.countDocuments({ workspace_id: ws }), 1)
  t.same(await processMedia(fakeJob(retry)), { outcome: 'already_stored' }, 'a re-run finds its copy gone and the photo recorded')
})

t.test('other bytes for an existing media id are kept as a conflict where they were written', async (t) => {
  const ws = randomId('w')
  const original = jpeg()
  const first = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: original })
  await run(first)
  await (await stack.queues.media.getJob(jobIds.media(ws, 's1', 'raw')))?.remove()
  const other = jpeg()
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: other })
  const { state, job } = await run(data)
  t.equal(state, 'completed')
  t.equal(job.returnvalue.outcome, 'conflict')
  t.ok((await bytesOf(first.staging_key)).equals(original), 'the canonical upload is untouched')
  t.ok((await bytesOf(data.staging_key)).equals(other), 'the other bytes stay where they were written')
  t.notOk(await exists(objectKeys.pendingOf(data.staging_key)!), 'its marker is removed')
  const c = await conflicts.findOne({ workspace_id: ws })
  t.match(c, { session_id: 's1', media_id: 'raw', sha256: sha256(other), original_sha256: sha256(original), key: data.staging_key })
  t.match(await media.findOne({ workspace_id: ws }), { key: first.staging_key, sha256: sha256(original) })

  // The conflicting bytes uploaded once more: one copy is kept.
  await (await stack.queues.media.getJob(jobIds.media(ws, 's1', 'raw')))?.remove()
  const again = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: other })
  t.equal((await run(again)).job.returnvalue.outcome, 'conflict')
  t.notOk(await exists(again.staging_key), 'the second copy of the conflicting bytes is removed')
  t.ok(await exists(data.staging_key), 'the first is kept')
  t.equal(await conflicts.countDocuments({ workspace_id: ws }), 1)
})

t.test('a missing upload is retried, not dropped', async (t) => {
  const ws = randomId('w')
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(10), noMarker: true })
  await stack.s3.removeObject(bucket, data.staging_key)
  await t.rejects(processMedia(fakeJob(data)), /uploaded object not found/)
  await stack.add('media', data, { attempts: 2, backoff: { type: 'fixed', delay: 10 } })
  const { state, job } = await stack.settled('media', jobIdFor(data))
  t.equal(state, 'failed')
  t.equal(job.attemptsMade, 2, 'retried until its attempts ran out')
  t.ok(
    stack.lines.some((l) => l.msg === 'job failed; will retry' && l.jobId === job.id),
    'the first failure is logged as a retry',
  )
  t.ok(
    stack.lines.some((l) => l.msg === 'job failed permanently' && l.jobId === job.id),
    'the last one as permanent',
  )
})

t.test('the sweeper finishes an upload whose job was lost, and removes a marker whose upload never came', async (t) => {
  const ws = randomId('w')
  const bytes = Buffer.from('<!DOCTYPE html><html><body>not a photo</body></html>')
  const data = await uploadMedia(stack, { ws, session: 's9', media: 'secondary_raw', bytes, filename: 'a b ü.jpg' })
  // Unusable metadata is skipped with a warning, never a crash.
  const junk = await uploadMedia(stack, { ws, session: 's9', media: 'junk', bytes: jpeg(10), metadata: { 'media-id': 'not/valid' } })
  // A marker whose upload never arrived (the gateway died after writing it; the device got no 201).
  const lonely = await uploadMedia(stack, { ws, session: 's9', media: 'lonely', bytes: jpeg(10) })
  await stack.s3.removeObject(bucket, lonely.staging_key)
  const sweeper = stack.app.sweeper!
  const result = await sweeper.sweepOnce()
  t.ok(result.enqueued >= 1, `enqueued ${result.enqueued}`)
  const { state } = await stack.settled('media', jobIds.media(ws, 's9', 'secondary_raw'))
  t.equal(state, 'completed')
  // Completed means stored: the document is there to read, no poll needed.
  const doc = await media.findOne({ workspace_id: ws, media_id: 'secondary_raw' })
  t.match(doc, {
    size: bytes.length,
    sha256: data.sha256,
    filename: 'a b ü.jpg',
    content_type: 'image/jpeg',
    sniffed_type: 'application/octet-stream',
    key: data.staging_key,
  })
  t.notOk(await exists(objectKeys.pendingOf(data.staging_key)!), 'its marker is removed')
  t.notOk(await exists(objectKeys.pendingOf(lonely.staging_key)!), 'the lonely marker is removed')
  t.equal(await stack.queues.media.getJob(jobIds.media(ws, 's9', 'lonely')), undefined, 'and nothing enqueued for it')
  const junkMarker = objectKeys.pendingOf(junk.staging_key)!
  t.ok(
    stack.lines.some((l) => l.msg.includes('unusable metadata') && l.key === junkMarker),
    'junk logged',
  )
  t.ok(await exists(junk.staging_key), 'junk left for an operator')

  const again = await sweeper.sweepOnce()
  t.equal(again.enqueued, 0, 'nothing left to do')
  await stack.s3.removeObjects(bucket, [junk.staging_key, junkMarker])
})

t.test('the sweeper does not duplicate a job that is waiting, and asks its state as the worker Redis user', async (t) => {
  const ws = randomId('w')
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(10) })
  // A paused queue keeps the job waiting (in a list: BullMQ 6's getState finds it with LPOS).
  await stack.queues.media.pause()
  t.teardown(() => stack.queues.media.resume())
  await stack.add('media', data)
  const linesBefore = stack.lines.length
  const res = await stack.app.sweeper!.sweepOnce()
  t.equal(res.enqueued, 0, 'the waiting job is not duplicated')
  t.same(sweepLogLines(linesBefore), [], 'no sweep failed')
  t.ok(await exists(data.staging_key), 'its upload is left alone')
  await stack.queues.media.resume()
  t.equal((await stack.settled('media', jobIdFor(data))).state, 'completed')
})

t.test('the sweeper does not duplicate a job that is still queued', async (t) => {
  const ws = randomId('w')
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(10) })
  // Delayed, so that it is certainly still queued while the sweeper looks.
  const job = await stack.add('media', data, { delay: 60_000 })
  const linesBefore = stack.lines.length
  const res = await stack.app.sweeper!.sweepOnce()
  t.equal(res.enqueued, 0, 'the queued job is not duplicated')
  // It asked the job's state, with the worker's own Redis user: a script it may not run (BullMQ 6's
  // getState needs LPOS) fails the object's sweep quietly, which the count above cannot tell apart.
  t.same(sweepLogLines(linesBefore), [], 'no sweep failed')
  t.equal(await stack.queues.media.getJobState(jobIdFor(data)), 'delayed')
  await job.promote()
  t.equal((await stack.settled('media', jobIdFor(data))).state, 'completed')
})

t.test('an upload whose own job failed for good is removed after the expiry, unless a document names it', async (t) => {
  const ws = randomId('w')
  const failed = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(100) })
  // Fails for good: the job says another length than the object has.
  t.equal((await run({ ...failed, size: failed.size + 1 })).state, 'failed')
  // Recorded, but its job failed after that (here: a job of another length, run after the record).
  const recorded = await uploadMedia(stack, { ws, session: 's2', media: 'raw', bytes: jpeg(100) })
  await processMedia(fakeJob(recorded))
  await stack.s3.putObject(bucket, objectKeys.pendingOf(recorded.staging_key)!, Buffer.alloc(0))
  t.equal((await run({ ...recorded, size: recorded.size + 1 })).state, 'failed')

  const app = stack.app
  const sweep = (expiryMs: number) =>
    createSweeper({
      s3: app.s3,
      bucket,
      queue: () => stack.queues.media,
      logger: pino({ level: 'silent' }),
      graceMs: 0,
      intervalMs: 3600_000,
      expiryMs,
      named: async (ids, key) => (await media.findOne({ ...ids, key })) !== null,
    }).sweepOnce()
  await sweep(3600_000)
  t.ok(await exists(failed.staging_key), 'before the expiry, a failed upload waits for an operator')
  const res = await sweep(0)
  t.ok(res.removed >= 1, `removed ${res.removed}`)
  t.notOk(await exists(failed.staging_key), 'after it, the upload of a failed job is removed')
  t.notOk(await exists(objectKeys.pendingOf(failed.staging_key)!), 'with its marker')
  t.ok(await exists(recorded.staging_key), 'an upload a document names is never removed')
  await stack.s3.removeObject(bucket, objectKeys.pendingOf(recorded.staging_key)!)
})

// The earlier layout: jobs and objects staged under staging/ before an upgrade are still finished.

t.test('a job staged by the earlier layout is verified, moved to its final key and recorded', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const data = await stageMedia(stack, { ws, session: 's1', media: 'cropped', bytes })
  const { state, job } = await run(data)
  t.equal(state, 'completed')
  t.same(job.returnvalue, { outcome: 'stored', sniffed_type: 'image/jpeg' })
  const key = objectKeys.final(ws, 's1', 'cropped')
  t.ok((await bytesOf(key)).equals(bytes), 'final object has the same bytes')
  const stat = await stack.s3.statObject(bucket, key)
  t.equal(stat.metaData['content-type'], 'image/jpeg')
  t.notOk(await exists(data.staging_key), 'staging removed')
  t.match(await media.findOne({ workspace_id: ws }), { key, sha256: sha256(bytes), sniffed_type: 'image/jpeg' })

  // An upload of the same bytes after the upgrade is a replay of the photo at its final key.
  await (await stack.queues.media.getJob(jobIds.media(ws, 's1', 'cropped')))?.remove()
  const retry = await uploadMedia(stack, { ws, session: 's1', media: 'cropped', bytes })
  t.equal((await run(retry)).job.returnvalue.outcome, 'replay')
  t.notOk(await exists(retry.staging_key), "the retry's copy is removed")
  t.ok((await bytesOf(key)).equals(bytes), 'the photo at its final key is untouched')
  // Other bytes: a conflict, kept where they were written.
  await (await stack.queues.media.getJob(jobIds.media(ws, 's1', 'cropped')))?.remove()
  const other = await uploadMedia(stack, { ws, session: 's1', media: 'cropped', bytes: jpeg() })
  t.equal((await run(other)).job.returnvalue.outcome, 'conflict')
  t.match(await conflicts.findOne({ workspace_id: ws }), { key: other.staging_key, original_sha256: sha256(bytes) })
})

t.test('a staged object that does not match its job fails for good, without retries', async (t) => {
  const ws = randomId('w')
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(1000) })
  const { state, job } = await run({ ...data, sha256: sha256('something else') })
  t.equal(state, 'failed')
  t.equal(job.attemptsMade, 1, 'not retried')
  t.match(job.failedReason, /does not match/)
  t.ok(await exists(data.staging_key), 'staged object kept for inspection')
  await stack.s3.removeObject(bucket, data.staging_key) // or the sweeper tests would pick it up
})

t.test('the sweeper finishes a staged object of the earlier layout whose job was lost', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const data = await stageMedia(stack, { ws, session: 's8', media: 'raw', bytes })
  const result = await stack.app.sweeper!.sweepOnce()
  t.ok(result.enqueued >= 1, `enqueued ${result.enqueued}`)
  t.equal((await stack.settled('media', jobIds.media(ws, 's8', 'raw'))).state, 'completed')
  t.match(await media.findOne({ workspace_id: ws }), { key: objectKeys.final(ws, 's8', 'raw'), sha256: data.sha256 })
  t.notOk(await exists(data.staging_key))
})

t.test('readObject streams: size and sha256 of a larger object', async (t) => {
  const bytes = randomBytes(5 * 1024 * 1024 + 17)
  const key = `scratch/${randomId()}`
  await stack.s3.putObject(bucket, key, bytes)
  const r = await readObject(stack.s3, bucket, key)
  t.equal(r.size, bytes.length)
  t.equal(r.sha256, sha256(bytes))
  t.equal(r.head.length, 16)
  await stack.s3.removeObject(bucket, key)
})
