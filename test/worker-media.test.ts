// The media queue and the staging sweeper against the real stack (Redis, FerretDB, S3 gateway).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { jobIds, objectKeys } from '../shared/keys.ts'
import { readObject } from '../worker/staged-object.ts'
import { fakeJob, jobIdFor, randomId, sha256, stageMedia, startTestWorker } from './helpers/worker-harness.ts'

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

t.test('a staged JPEG is verified, moved to its final key and recorded', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const data = await stageMedia(stack, { ws, session: 's1', media: 'cropped', bytes, filename: '20210125_111802_cropped.jpg' })
  const { state, job } = await run(data)
  t.equal(state, 'completed')
  t.same(job.returnvalue, { outcome: 'stored', sniffed_type: 'image/jpeg' })

  const key = objectKeys.final(ws, 's1', 'cropped')
  t.ok((await bytesOf(key)).equals(bytes), 'final object has the same bytes')
  const stat = await stack.s3.statObject(bucket, key)
  t.equal(stat.metaData['content-type'], 'image/jpeg')
  t.equal(stat.metaData.sha256, data.sha256)
  t.notOk(await exists(data.staging_key), 'staging removed')

  const doc = await media.findOne({ workspace_id: ws, session_id: 's1', media_id: 'cropped' })
  t.match(doc, {
    token_id: 'tok1',
    filename: '20210125_111802_cropped.jpg',
    content_type: 'image/jpeg',
    sniffed_type: 'image/jpeg',
    size: bytes.length,
    sha256: sha256(bytes),
    bucket,
    key,
  })
  t.ok(doc?.received_at instanceof Date && doc?.stored_at instanceof Date)
  t.equal(await stack.redis.get(stack.idemKey('m', ws, 's1', 'cropped')), `${data.sha256}|a`, 'idempotency key accepted')
})

t.test('HTML bytes declared as image/jpeg are never labelled an image', async (t) => {
  const ws = randomId('w')
  const bytes = Buffer.from('<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>')
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes, contentType: 'image/jpeg' })
  const { state, job } = await run(data)
  t.equal(state, 'completed')
  t.equal(job.returnvalue.sniffed_type, 'application/octet-stream')
  const stat = await stack.s3.statObject(bucket, objectKeys.final(ws, 's1', 'raw'))
  t.equal(stat.metaData['content-type'], 'application/octet-stream')
  const doc = await media.findOne({ workspace_id: ws })
  t.match(doc, { content_type: 'image/jpeg', sniffed_type: 'application/octet-stream' })
})

t.test('a staged object that does not match the job fails for good, without retries', async (t) => {
  const ws = randomId('w')
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(1000) })
  const tampered = { ...data, sha256: sha256('something else') }
  const { state, job } = await run(tampered)
  t.equal(state, 'failed')
  t.equal(job.attemptsMade, 1, 'not retried')
  t.match(job.failedReason, /does not match/)
  t.ok(await exists(data.staging_key), 'staged object kept for inspection')
  t.equal(await media.countDocuments({ workspace_id: ws }), 0)
  t.ok(stack.lines.some((l) => l.msg === 'job failed permanently' && l.queue === 'media' && l.jobId === job.id))
  await stack.s3.removeObject(bucket, data.staging_key) // or the sweeper test would pick it up
})

t.test('the same job twice (also at once) stores one document and one object', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes })
  const outcomes = (await Promise.all([processMedia(fakeJob(data)), processMedia(fakeJob(data))])).map(
    (o) => (o as { outcome: string }).outcome,
  )
  // Which run stores depends on timing; the other finds the record (replay), or, if it starts
  // only once the first has finished, nothing left to do (already_stored). Neither fails.
  t.equal(outcomes.filter((o) => o === 'stored').length, 1, `one run stores (${outcomes.join(', ')})`)
  t.match(
    outcomes.find((o) => o !== 'stored'),
    /^(replay|already_stored)$/,
  )
  const again = (await processMedia(fakeJob(data))) as { outcome: string }
  t.equal(again.outcome, 'already_stored', 'a re-run after success finds the staged copy gone and the record there')
  t.equal(await media.countDocuments({ workspace_id: ws }), 1)
  t.ok((await bytesOf(objectKeys.final(ws, 's1', 'raw'))).equals(bytes))
})

t.test('a run whose staged copy another run of the same job removed before its copy answers replay, not an error', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes })
  // The one fake here, for one reason: to place the other run exactly between this run's read and
  // its copy (as a stalled job's second run can), instead of hoping a race lands there. The
  // worker's real S3 client gets its copyObject wrapped for a single call, which first lets the
  // other run finish, then copies for real: from a staged object that is gone by then.
  const s3 = stack.app.s3
  const realCopy = s3.copyObject.bind(s3)
  t.teardown(() => {
    s3.copyObject = realCopy
  })
  let other: { outcome: string } | undefined
  s3.copyObject = (async (...args: Parameters<typeof realCopy>) => {
    s3.copyObject = realCopy
    other = (await processMedia(fakeJob(data))) as { outcome: string }
    return realCopy(...args)
  }) as typeof s3.copyObject
  const first = (await processMedia(fakeJob(data))) as { outcome: string }
  t.equal(other?.outcome, 'stored', 'the other run stored the photo')
  t.equal(first.outcome, 'replay', 'this run answers replay instead of failing on the missing staged object')
  t.equal(await media.countDocuments({ workspace_id: ws }), 1)
  t.ok((await bytesOf(objectKeys.final(ws, 's1', 'raw'))).equals(bytes))
  t.notOk(await exists(data.staging_key), 'staging removed')
})

t.test('other bytes for an existing media id are kept as a conflict, never overwriting', async (t) => {
  const ws = randomId('w')
  const original = jpeg()
  await run(await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: original }))
  await (await stack.queues.media.getJob(jobIds.media(ws, 's1', 'raw')))?.remove()
  const other = jpeg()
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: other })
  const { state, job } = await run(data)
  t.equal(state, 'completed')
  t.equal(job.returnvalue.outcome, 'conflict')
  t.ok((await bytesOf(objectKeys.final(ws, 's1', 'raw'))).equals(original), 'final object untouched')
  const conflictKey = objectKeys.conflict(ws, 's1', 'raw', sha256(other))
  t.ok((await bytesOf(conflictKey)).equals(other), 'new bytes under conflicts/')
  t.notOk(await exists(data.staging_key))
  const c = await conflicts.findOne({ workspace_id: ws })
  t.match(c, { session_id: 's1', media_id: 'raw', sha256: sha256(other), original_sha256: sha256(original), key: conflictKey })
  t.equal(await media.countDocuments({ workspace_id: ws }), 1)
})

t.test('a missing staged object is retried, not dropped', async (t) => {
  const ws = randomId('w')
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(10) })
  await stack.s3.removeObject(bucket, data.staging_key)
  await t.rejects(processMedia(fakeJob(data)), /staged object not found/)
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

t.test('the sweeper finishes a staged object whose job was lost', async (t) => {
  const ws = randomId('w')
  const bytes = jpeg()
  const data = await stageMedia(stack, { ws, session: 's9', media: 'secondary_raw', bytes, filename: 'a b ü.jpg' })
  // Unusable metadata is skipped with a warning, never a crash.
  const junk = await stageMedia(stack, { ws, session: 's9', media: 'junk', bytes: jpeg(10), metadata: { 'media-id': 'not/valid' } })
  const sweeper = stack.app.sweeper!
  const result = await sweeper.sweepOnce()
  t.ok(result.enqueued >= 1, `enqueued ${result.enqueued}`)
  const { state } = await stack.settled('media', jobIds.media(ws, 's9', 'secondary_raw'))
  t.equal(state, 'completed')
  // Completed means stored: the document is there to read, no poll needed.
  const doc = await media.findOne({ workspace_id: ws, media_id: 'secondary_raw' })
  t.match(doc, { size: bytes.length, sha256: data.sha256, filename: 'a b ü.jpg', content_type: 'image/jpeg', sniffed_type: 'image/jpeg' })
  t.notOk(await exists(data.staging_key))
  t.ok(
    stack.lines.some((l) => l.msg.includes('unusable metadata') && l.key === junk.staging_key),
    'junk logged',
  )
  t.ok(await exists(junk.staging_key), 'junk left for an operator')

  const again = await sweeper.sweepOnce()
  t.equal(again.enqueued, 0, 'nothing left to do')
  await stack.s3.removeObject(bucket, junk.staging_key)
})

t.test('the sweeper does not duplicate a job that is waiting, and asks its state as the worker Redis user', async (t) => {
  const ws = randomId('w')
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(10) })
  // A paused queue keeps the job waiting (in a list: BullMQ 6's getState finds it with LPOS).
  await stack.queues.media.pause()
  t.teardown(() => stack.queues.media.resume())
  await stack.add('media', data)
  const linesBefore = stack.lines.length
  const res = await stack.app.sweeper!.sweepOnce()
  t.equal(res.enqueued, 0, 'the waiting job is not duplicated')
  t.same(sweepLogLines(linesBefore), [], 'no sweep failed')
  await stack.queues.media.resume()
  t.equal((await stack.settled('media', jobIdFor(data))).state, 'completed')
})

t.test('the sweeper does not duplicate a job that is still queued', async (t) => {
  const ws = randomId('w')
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg(10) })
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
