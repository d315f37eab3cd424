// The logs queue end to end against the real stack.
import t from 'tap'
import { FIXTURES, fakeJob, jobIdFor, logsJob, randomId, startTestWorker } from './helpers/worker-harness.ts'

// A small entry cap, so that truncation is cheap to test; every other body here is far below it.
const MAX_ENTRIES = 50
const stack = await startTestWorker(t, { LOGS_MAX_ENTRIES: String(MAX_ENTRIES) })
const logs = stack.db.collection('test_session_logs')
const batches = stack.db.collection('test_session_log_batches')
const processLogs = stack.app.processors.get('logs')!

async function run(data: ReturnType<typeof logsJob>) {
  const id = jobIdFor(data)
  await (await stack.queues.logs.getJob(id))?.remove()
  await stack.add('logs', data)
  const { state, job } = await stack.settled('logs', id)
  return { state, returnvalue: job.returnvalue as { entries: number; inserted: number } | undefined }
}

t.test('the real client batch: one document per entry, and the batch itself', async (t) => {
  const ws = randomId('w')
  const data = logsJob(ws, 's1', FIXTURES.logsRdtoolkit)
  const { state, returnvalue } = await run(data)
  t.equal(state, 'completed')
  t.same(returnvalue, { entries: 3, inserted: 3 })

  const docs = await logs.find({ workspace_id: ws, session_id: 's1' }).sort({ batch_index: 1 }).toArray()
  t.equal(docs.length, 3)
  t.match(docs[0], {
    tag: 'user_action',
    message: 'Skipped instructions',
    json: null,
    media_key: null,
    token_id: 'tok1',
    batch_sha256: data.sha256,
  })
  t.ok(docs.every((d) => d.timestamp instanceof Date && d.received_at instanceof Date))
  t.equal((docs[1]?.timestamp as Date).toISOString(), '2021-01-25T11:17:44.120Z')
  t.same(docs[1]?.json, { attempt: 1, exposure: { iso: 200, shutter_ms: 16 } }, 'object json kept as an object')
  t.equal(docs[1]?.media_key, 'attempt_1_cropped')
  t.ok(docs.every((d) => d.validation.ok === true && /^[0-9a-f]{64}$/.test(d._id as unknown as string)))

  const batch = await batches.findOne({ workspace_id: ws, session_id: 's1' })
  t.match(batch, {
    sha256: data.sha256,
    raw_body: FIXTURES.logsRdtoolkit,
    entry_count: 3,
    token_id: 'tok1',
    validation: { ok: true, errors: [] },
  })
  t.ok(batch?.received_at instanceof Date)
  t.equal(await stack.redis.get(stack.idemKey('l', ws, 's1', data.sha256)), `${data.sha256}|a`, 'idempotency key accepted')
})

t.test('a replay is stored once, even reformatted, even running twice at once', async (t) => {
  const ws = randomId('w')
  const data = logsJob(ws, 's1', FIXTURES.logsRdtoolkit)
  await run(data)
  t.same((await run(data)).returnvalue, { entries: 3, inserted: 0 }, 'byte-identical replay')
  const compact = logsJob(ws, 's1', JSON.stringify(JSON.parse(FIXTURES.logsRdtoolkit)))
  t.same((await run(compact)).returnvalue, { entries: 3, inserted: 0 }, 'same entries, other formatting')
  const twice = logsJob(ws, 's2', FIXTURES.logsRdtoolkit)
  await Promise.all([processLogs(fakeJob(twice)), processLogs(fakeJob(twice))])
  t.equal(await logs.countDocuments({ workspace_id: ws, session_id: 's1' }), 3)
  t.equal(await logs.countDocuments({ workspace_id: ws, session_id: 's2' }), 3)
  t.equal(await batches.countDocuments({ workspace_id: ws, session_id: 's1' }), 2, 'one batch record per distinct body')
  t.equal(await batches.countDocuments({ workspace_id: ws, session_id: 's2' }), 1)
})

t.test('identical entries in one batch are all kept; a bare array is accepted', async (t) => {
  const ws = randomId('w')
  const entry = { timestamp: '2021-01-25T11:02:41.563+00:00', tag: 'tick', message: 'same' }
  const data = logsJob(ws, 's1', JSON.stringify([entry, entry, entry]))
  t.same((await run(data)).returnvalue, { entries: 3, inserted: 3 })
  t.same((await run(data)).returnvalue, { entries: 3, inserted: 0 })
  t.equal(await logs.countDocuments({ workspace_id: ws }), 3)
  const batch = await batches.findOne({ workspace_id: ws })
  t.equal(batch?.validation.ok, false, 'a bare array is noted as not the spec shape')
})

t.test('odd and hostile entries are kept with flags', async (t) => {
  const ws = randomId('w')
  let deep = '1'
  for (let i = 0; i < 200; i++) deep = `[${deep}]`
  const body = `{"entries": [
    "just a string",
    42,
    {"timestamp": "whenever", "tag": 5, "message": {"m": 1}, "json": "a string, as the spec says"},
    {"timestamp": "2021-01-25T11:02:41Z", "tag": "t", "message": "m", "json": {"$set": {"a.b": [[1]]}, "__proto__": {"x": 1}, "deep": ${deep}}, "extra_field": true}
  ]}`
  const data = logsJob(ws, 's1', body)
  t.same((await run(data)).returnvalue, { entries: 4, inserted: 4 })
  const docs = await logs.find({ workspace_id: ws }).sort({ batch_index: 1 }).toArray()
  t.match(docs[0], { value: 'just a string', validation: { ok: false } })
  t.match(docs[1], { value: 42, validation: { ok: false } })
  t.match(docs[2], { timestamp: null, tag: 5, message: { m: 1 }, json: 'a string, as the spec says', validation: { ok: false } })
  t.same((docs[2]?.validation.errors as { path: string }[]).map((e) => e.path).sort(), ['/message', '/tag', '/timestamp'])
  t.same(docs[3]?.json['%24set'], { 'a%2Eb': ['[1]'] })
  t.same(docs[3]?.json['__proto__'], { x: 1 })
  t.type(docs[3]?.json.deep, 'object')
  t.same(docs[3]?.extra, { extra_field: true })
  t.equal(docs[3]?.validation.ok, true)
})

t.test('a body that is not the expected shape is kept as a batch with no entries', async (t) => {
  const ws = randomId('w')
  const data = logsJob(ws, 's1', '{"logs": []}')
  t.same((await run(data)).returnvalue, { entries: 0, inserted: 0 })
  const batch = await batches.findOne({ workspace_id: ws })
  t.match(batch, { entry_count: 0, raw_body: '{"logs": []}', validation: { ok: false } })
})

t.test(
  'a body with more than LOGS_MAX_ENTRIES entries: the first ones are stored, the batch keeps the whole body and says it was truncated',
  async (t) => {
    const ws = randomId('w')
    // The amplification case, scaled down: `[0,0,0,…]` (a bare array of non-objects).
    const zeros =
      '[' +
      Array(MAX_ENTRIES * 40)
        .fill('0')
        .join(',') +
      ']'
    const data = logsJob(ws, 's1', zeros)
    const { state, returnvalue } = await run(data)
    t.equal(state, 'completed')
    t.same(returnvalue, { entries: MAX_ENTRIES * 40, inserted: MAX_ENTRIES }, 'only the first LOGS_MAX_ENTRIES become documents')
    t.equal(await logs.countDocuments({ workspace_id: ws, session_id: 's1' }), MAX_ENTRIES)
    const last = await logs.find({ workspace_id: ws }).sort({ batch_index: -1 }).limit(1).next()
    t.equal(last?.batch_index, MAX_ENTRIES - 1, 'the first entries, in order')
    const batch = await batches.findOne({ workspace_id: ws, session_id: 's1' })
    t.match(
      batch,
      { raw_body: zeros, entry_count: MAX_ENTRIES * 40, stored_entry_count: MAX_ENTRIES, truncated: true },
      'the whole body, flagged',
    )
    t.ok(
      stack.lines.some((l) => l.msg === 'log batch truncated to LOGS_MAX_ENTRIES' && l.entries === MAX_ENTRIES * 40),
      'logged',
    )

    // At the cap exactly: nothing is cut.
    const ws2 = randomId('w')
    const exact = JSON.stringify({
      entries: Array.from({ length: MAX_ENTRIES }, (_, i) => ({ timestamp: '2021-01-25T11:02:41Z', tag: 't', message: String(i) })),
    })
    t.same((await run(logsJob(ws2, 's1', exact))).returnvalue, { entries: MAX_ENTRIES, inserted: MAX_ENTRIES })
    t.match(await batches.findOne({ workspace_id: ws2 }), { entry_count: MAX_ENTRIES, stored_entry_count: MAX_ENTRIES, truncated: false })
  },
)
