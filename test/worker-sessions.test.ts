// The sessions queue end to end: jobs added the way the gateway adds them, processed by a real
// worker, stored in the real MongoDB-compatible server.
import t from 'tap'
import { defaultJobOptions } from '../shared/queue-settings.ts'
import { FIXTURES, fakeJob, jobIdFor, randomId, sessionJob, sha256, startTestWorker } from './helpers/worker-harness.ts'

const stack = await startTestWorker(t)
const sessions = stack.db.collection('test_sessions')
const conflicts = stack.db.collection('test_session_conflicts')
const processSession = stack.app.processors.get('sessions')!

/** Adds the job, waits for it, and returns its state and return value. */
async function run(data: ReturnType<typeof sessionJob>) {
  const id = jobIdFor(data)
  await (await stack.queues.sessions.getJob(id))?.remove() // a replay after the job was removed
  await stack.add('sessions', data)
  const { state, job } = await stack.settled('sessions', id)
  return { state, returnvalue: job.returnvalue as { outcome: string } | undefined, job }
}

t.test('the real client body is stored with normalised fields', async (t) => {
  const ws = randomId('w')
  const session = '5f0c2a4e-8d1b-4c7e-9a3f-2b6d8e1f4a90'
  const data = sessionJob(ws, session, FIXTURES.sessionRdtoolkit)
  const { state, returnvalue } = await run(data)
  t.equal(state, 'completed')
  t.same(returnvalue, { outcome: 'stored' })

  const doc = await sessions.findOne({ workspace_id: ws, session_id: session })
  if (!doc) throw new Error('not stored')
  t.equal(doc.raw_body, FIXTURES.sessionRdtoolkit, 'exact body kept')
  t.equal(doc.raw_sha256, sha256(FIXTURES.sessionRdtoolkit))
  t.equal(doc.token_id, 'tok1')
  t.ok(doc.received_at instanceof Date)
  t.equal(doc.body_id, session)
  t.equal(doc.state, 'QUEUED')
  t.equal(doc.test_profile_id, 'sd_bioline_mal_pf_pv')
  for (const f of ['time_started', 'time_resolved', 'time_expired']) t.ok(doc[f] instanceof Date, `${f} is a Date`)
  t.equal((doc.time_started as Date).toISOString(), '2021-01-25T11:02:41.118Z')
  t.ok(doc.result.time_read instanceof Date)
  t.equal(doc.result.time_read.toISOString(), '2021-01-25T11:18:02.563Z')
  t.match(doc.configuration, {
    session_type: 'TWO_PHASE',
    provision_mode: 'TEST_PROFILE',
    provision_mode_data: 'sd_bioline_mal_pf_pv',
    classifier_mode: 'CHECK_YOUR_WORK',
    cloudworks_context: 'district_7',
    flavor_text: null,
    flavor_text_two: null,
    flags: { FLAG_CLOUDWORKS_CAPTURE_TRACE: 'TRUE', FLAG_SESSION_CLOUDWORKS_FULL_IMAGE_SUBMISSION: 'FALSE', FLAG_NO_EARLY_READS: 'TRUE' },
  })
  t.equal(doc.result.main_image_path, '/data/user/0/org.rdtoolkit/files/20210125_111802_cropped.jpg')
  t.same(Object.keys(doc.result.images), ['raw', 'cropped'])
  t.same(doc.result.results, { mal_pf: 'mal_pf_pos', mal_pv: 'mal_pv_neg' })
  t.equal(doc.result.raw_image_file_path, null)
  t.equal(doc.metrics.data.device_type, 'SM-A105F')
  t.equal(doc.extra, null)
  t.same(doc.validation, { ok: true, errors: [] })
  t.equal(doc.storage_notes, undefined)

  const key = stack.idemKey('s', ws, session)
  t.equal(await stack.redis.get(key), `${data.sha256}|a`, 'idempotency key accepted')
  const ttl = await stack.redis.pttl(key)
  t.ok(ttl > stack.config.idempotencyTtlMs - 60_000 && ttl <= stack.config.idempotencyTtlMs, 'with the configured TTL')
})

t.test("the spec's example (no id, Z times, flavor texts) is valid", async (t) => {
  const ws = randomId('w')
  const data = sessionJob(ws, 'spec-session', FIXTURES.sessionSpecExample)
  t.equal((await run(data)).state, 'completed')
  const doc = await sessions.findOne({ workspace_id: ws, session_id: 'spec-session' })
  t.equal(doc?.body_id, null)
  t.equal(doc?.state, 'COMPLETE')
  t.equal(doc?.configuration.flavor_text, 'flavor_one')
  t.equal(doc?.result.raw_image_file_path, 'testpath')
  t.equal((doc?.time_expired as Date).toISOString(), '2020-10-16T16:25:34.727Z')
  t.same(doc?.validation, { ok: true, errors: [] })
})

t.test('a body that breaks the schema is stored, with what is wrong', async (t) => {
  const ws = randomId('w')
  const body = JSON.stringify({
    id: 'another-guid',
    state: 7,
    time_started: 'yesterday',
    time_resolved: '2021-01-25T11:17:41',
    configuration: 'not an object',
    result: { time_read: '2021-02-30T00:00:00Z', results: { a: 1 } },
    surprise: { 'x.y': [1, 2] },
  })
  const data = sessionJob(ws, 's-broken', body)
  t.equal((await run(data)).state, 'completed')
  const doc = await sessions.findOne({ workspace_id: ws, session_id: 's-broken' })
  if (!doc) throw new Error('not stored')
  t.equal(doc.validation.ok, false)
  const paths = (doc.validation.errors as { path: string }[]).map((e) => e.path)
  for (const p of ['', '/id', '/state', '/time_started', '/time_resolved', '/configuration', '/result/time_read', '/result/results/a'])
    t.ok(paths.includes(p), `flags ${p || 'the body'}`)
  t.equal(doc.time_started, null, 'unparseable date stored as null')
  t.equal((doc.time_resolved as Date).toISOString(), '2021-01-25T11:17:41.000Z', 'zoneless date read as UTC (and flagged)')
  t.equal(doc.result.time_read, null)
  t.equal(doc.state, 7, 'wrong types are kept as sent')
  t.equal(doc.configuration, null)
  t.same(doc.extra, { surprise: { 'x%2Ey': [1, 2] } })
  t.equal(doc.raw_body, body)
  t.equal(await stack.redis.get(stack.idemKey('s', ws, 's-broken')), `${data.sha256}|a`)
})

t.test('a replay of the same body stores one document', async (t) => {
  const ws = randomId('w')
  const data = sessionJob(ws, 's-replay', FIXTURES.sessionRdtoolkit)
  t.same((await run(data)).returnvalue, { outcome: 'stored' })
  t.same((await run({ ...data, received_at: new Date().toISOString() })).returnvalue, { outcome: 'replay' })
  t.equal(await sessions.countDocuments({ workspace_id: ws, session_id: 's-replay' }), 1)
  t.equal(await conflicts.countDocuments({ workspace_id: ws }), 0)
})

t.test('the same job running twice at once (a stalled re-run) stores one document', async (t) => {
  const ws = randomId('w')
  const data = sessionJob(ws, 's-twice', FIXTURES.sessionRdtoolkit)
  const outcomes = await Promise.all([processSession(fakeJob(data)), processSession(fakeJob(data))])
  t.same(outcomes.map((o) => (o as { outcome: string }).outcome).sort(), ['replay', 'stored'])
  t.equal(await sessions.countDocuments({ workspace_id: ws }), 1)
})

t.test('a different body for the same GUID is kept as a conflict', async (t) => {
  const ws = randomId('w')
  const first = sessionJob(ws, 's-conflict', FIXTURES.sessionRdtoolkit)
  await run(first)
  const otherBody = FIXTURES.sessionRdtoolkit.replace('"QUEUED"', '"COMPLETE"')
  const second = sessionJob(ws, 's-conflict', otherBody)
  t.same((await run(second)).returnvalue, { outcome: 'conflict' })
  t.same((await run(second)).returnvalue, { outcome: 'conflict' }, 'a replay of the conflicting body too')

  const stored = await sessions.find({ workspace_id: ws }).toArray()
  t.equal(stored.length, 1)
  t.equal(stored[0]?.raw_sha256, first.sha256, 'the original stays')
  const c = await conflicts.find({ workspace_id: ws }).toArray()
  t.equal(c.length, 1, 'one conflict record, however often it is replayed')
  t.match(c[0], { session_id: 's-conflict', token_id: 'tok1', sha256: second.sha256, original_sha256: first.sha256, raw_body: otherBody })
  t.ok(c[0]?.received_at instanceof Date)
  t.equal(await stack.redis.get(stack.idemKey('s', ws, 's-conflict')), `${first.sha256}|a`, 'the key names the stored body')
})

t.test('a conflict job stores the body and leaves the idempotency key alone', async (t) => {
  const ws = randomId('w')
  const first = sessionJob(ws, 's-cj', FIXTURES.sessionRdtoolkit)
  await run(first)
  const key = stack.idemKey('s', ws, 's-cj')
  await stack.redis.set(key, 'sentinel')
  const body = '{"state": "COMPLETE"}'
  const data = sessionJob(ws, 's-cj', body, 'conflict')
  await stack.add('sessions', data)
  const { state, job } = await stack.settled('sessions', jobIdFor(data))
  t.equal(state, 'completed')
  t.same(job.returnvalue, { outcome: 'conflict_stored' })
  await processSession(fakeJob(data)) // a re-run
  const c = await conflicts.find({ workspace_id: ws }).toArray()
  t.equal(c.length, 1)
  t.match(c[0], { sha256: sha256(body), raw_body: body, original_sha256: first.sha256 })
  t.equal(await stack.redis.get(key), 'sentinel')
})

t.test('hostile JSON is stored without crashing the worker', async (t) => {
  const ws = randomId('w')
  let deep = '"bottom"'
  for (let i = 0; i < 200; i++) deep = `{"d":${deep}}`
  const big = `[${Array.from({ length: 100_000 }, (_, i) => i).join(',')}]`
  const hostile =
    `{"$where":"sleep(1000)","a.b":{"c.d":1},"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"x":1}},` +
    `"nul\\u0000key":1,"_bsontype":"Code","pairs":[[1,2],[3,4]],"deep":${deep},"big":${big},"inf":1e999}`
  const body =
    `{"id":"s-hostile","state":"QUEUED","test_profile_id":"p","time_started":"2021-01-25T11:02:41.118+00:00",` +
    `"time_resolved":"2021-01-25T11:02:41.118+00:00","configuration":{"session_type":"ONE_PHASE","provision_mode":"TEST_PROFILE",` +
    `"provision_mode_data":"p","classifier_mode":"NONE","flags":${hostile}},` +
    `"result":{"results":${hostile},"results_classifier":${hostile},"images":{"$raw":"x"}},"metrics":${hostile},${hostile.slice(1, -1)}}`
  const data = sessionJob(ws, 's-hostile', body)
  const { state } = await run(data)
  t.equal(state, 'completed')
  const doc = await sessions.findOne({ workspace_id: ws, session_id: 's-hostile' })
  if (!doc) throw new Error('not stored')
  t.equal(doc.raw_body, body)
  for (const [where, v] of [
    ['flags', doc.configuration.flags],
    ['results', doc.result.results],
    ['metrics', doc.metrics],
    ['extra', doc.extra],
  ] as const) {
    t.equal(v['%24where'], 'sleep(1000)', `${where}: $where encoded`)
    t.same(v['a%2Eb'], { 'c%2Ed': 1 }, `${where}: dots encoded`)
    t.same(v['__proto__'], { polluted: 'yes' }, `${where}: __proto__ kept as data`)
    t.same(v.constructor, { prototype: { x: 1 } }, `${where}: constructor kept as data`)
    t.equal(v['nul%00key'], 1, `${where}: NUL encoded`)
    t.equal(v['%5Fbsontype'], 'Code', `${where}: _bsontype encoded`)
    t.same(v.pairs, ['[1,2]', '[3,4]'], `${where}: nested arrays as JSON text`)
    t.equal(v.big.length, 100_000, `${where}: big array kept`)
    t.equal(v.inf, 'Infinity', `${where}: infinity as a string`)
    let cur = v.deep
    let levels = 0
    while (typeof cur === 'object' && cur !== null) {
      cur = cur.d
      levels++
    }
    t.type(cur, 'string', `${where}: deep nesting cut to JSON text after ${levels} levels`)
  }
  t.same(doc.result.images, { '%24raw': 'x' })
  t.ok(Array.isArray(doc.storage_notes) && doc.storage_notes.length > 0, 'rewrites are noted')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution in the worker')
})

t.test('a body too large to store normalised is kept as a fallback document', async (t) => {
  const ws = randomId('w')
  // ~8 MB of text: the raw body plus its parsed copy would exceed the 15 MB document limit.
  const body = JSON.stringify({ state: 'QUEUED', blob: 'x'.repeat(8 * 1024 * 1024) })
  const data = sessionJob(ws, 's-huge', body)
  t.equal((await run(data)).state, 'completed')
  const doc = await sessions.findOne({ workspace_id: ws, session_id: 's-huge' })
  if (!doc) throw new Error('not stored')
  t.equal(doc.raw_body.length, body.length, 'raw body kept')
  t.equal(doc.raw_sha256, data.sha256)
  t.equal(doc.validation.ok, false)
  t.ok(
    (doc.validation.errors as { path: string }[]).some((e) => e.path === 'storage_fallback'),
    'storage_fallback issue',
  )
  t.equal(doc.state, undefined, 'no normalised fields')
  t.ok(
    stack.lines.some((l) => l.msg.includes('storing the fallback document')),
    'logged',
  )
  t.notOk(
    stack.lines.some((l) => JSON.stringify(l).includes('xxxxxxxx')),
    'the body never reaches the log',
  )
})

t.test('invalid payloads and non-JSON bodies fail permanently, without retries', async (t) => {
  const ws = randomId('w')
  const notJson = sessionJob(ws, 's-notjson', '{"state": ')
  const notObject = sessionJob(ws, 's-array', '[1, 2]')
  await stack.add('sessions', notJson)
  await stack.add('sessions', notObject)
  await stack.queues.sessions.add('session', { kind: 'session', workspace_id: 'bad:id' }, { ...defaultJobOptions, jobId: 's.bad-payload' })
  for (const id of [jobIdFor(notJson), jobIdFor(notObject), 's.bad-payload']) {
    const { state, job } = await stack.settled('sessions', id)
    t.equal(state, 'failed', `${id} failed`)
    t.equal(job.attemptsMade, 1, `${id} was not retried`)
    t.ok(
      stack.lines.some((l) => l.msg === 'job failed permanently' && l.jobId === id),
      `${id}: one structured log line`,
    )
  }
  t.ok((stack.app.stats().permanentFailures.sessions ?? 0) >= 3, 'counted')
  t.equal(await sessions.countDocuments({ workspace_id: ws }), 0)
})
