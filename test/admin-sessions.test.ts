// Sessions, photos, reports and exports on documents shaped exactly as the worker writes them
// (worker/session-document.ts), against the real stack (FerretDB): every aggregation the panel
// runs is exercised here.
import t from 'tap'
import { Redis } from 'ioredis'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { buildDashboard } from '../admin/data/dashboard.ts'
import { CSV_COLUMNS, csvField } from '../admin/data/export.ts'
import { contentDisposition, openMedia } from '../admin/data/media.ts'
import { parse as parseDisposition } from 'content-disposition'
import type { Client as S3Client } from 'minio'
import type { Readable } from 'node:stream'
import { outcomeOf, validityOf } from '../admin/data/readings.ts'
import { listSessions, parseFilters } from '../admin/data/sessions.ts'
import { addAdmin, login, seedMedia, seedSession, sessionBody, startAdmin } from './helpers/admin-support.ts'
import { fakeJpeg } from '../testing/media.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const { app } = await startAdmin(config, { adminConfig: { missingMediaDelayMs: 30 * 60_000 } })
const redis = new Redis(config.redisUrl)
const s3 = createS3(config.s3)
await ensureBucket(s3, config.s3.bucket, config.s3.region)
t.teardown(async () => {
  await app.db.dropDatabase().catch(() => {})
  const ks = await redis.keys(`${config.redisPrefix}:*`)
  if (ks.length) await redis.del(...ks)
  redis.disconnect()
  await app.close()
})
await addAdmin(app, 'ops@example.org')
const b = await login(app, 'ops@example.org')
const ws = await app.tokenAdmin.createWorkspace('clinic-s', { actor: 'test' })
const other = await app.tokenAdmin.createWorkspace('clinic-other', { actor: 'test' })
const tok = await app.tokenAdmin.createToken({ workspace: ws.id, actor: 'test', label: 'phone 1' })
const W = ws.id
const base = `/workspaces/${W}`
const now = Date.now()
const ago = (min: number) => new Date(now - min * 60_000)

// s1: positive, agree, on time, both photos stored
await seedSession(app.db, {
  workspaceId: W,
  sessionId: 's1',
  tokenId: tok.id,
  receivedAt: ago(120),
  body: sessionBody({ images: { cropped: '/c.jpg', raw: '/r.jpg' } }),
})
// s2: negative, classifier disagrees, read too late, photo missing (received 2 h ago)
await seedSession(app.db, {
  workspaceId: W,
  sessionId: 's2',
  tokenId: tok.id,
  receivedAt: ago(125),
  body: sessionBody({
    results: { mal_pf: 'mal_pf_neg', mal_pv: 'mal_pv_neg' },
    classifier: { mal_pf: 'mal_pf_pos', mal_pv: 'mal_pv_neg' },
    timeRead: '2021-01-25T11:40:00.000+00:00',
    images: { cropped: '/c.jpg' },
  }),
})
// s3: flagged (bad state), hostile strings, keys needing encoding, too early, recent (photo not due yet)
await seedSession(app.db, {
  workspaceId: W,
  sessionId: 's3',
  tokenId: tok.id,
  receivedAt: ago(5),
  body: sessionBody({
    state: 'WEIRD',
    profile: '<script>alert(1)</script>',
    results: { 'a.b': 'positive' },
    classifier: {},
    timeRead: '2021-01-25T11:10:00.000+00:00',
    images: { cropped: '/c.jpg' },
  }),
})
// s4: another profile, no results at all, no images
await seedSession(app.db, {
  workspaceId: W,
  sessionId: 's4',
  tokenId: tok.id,
  receivedAt: ago(60 * 24 * 3),
  body: sessionBody({ profile: 'covid_ag', results: {}, classifier: {}, images: {} }),
})
// In another workspace, same session id: never visible here.
await seedSession(app.db, { workspaceId: other.id, sessionId: 's1', tokenId: 'tother', body: sessionBody({ profile: 'other_ws_profile' }) })

const jpeg = fakeJpeg(3000)
await seedMedia(app.db, s3, config.s3.bucket, {
  workspaceId: W,
  sessionId: 's1',
  mediaId: 'cropped',
  tokenId: tok.id,
  bytes: jpeg,
  filename: '20210125_111802_cropped.jpg',
  receivedAt: ago(119),
})
await seedMedia(app.db, s3, config.s3.bucket, {
  workspaceId: W,
  sessionId: 's1',
  mediaId: 'raw',
  tokenId: tok.id,
  bytes: Buffer.from('<html><script>alert(1)</script></html>'),
  filename: 'evil"name\r\n.html',
  sniffed: 'application/octet-stream',
  receivedAt: ago(119),
  // Stored before uploads stayed where they were written: still served.
  layout: 'final',
})
await app.db.collection('test_session_logs').insertMany([
  {
    workspace_id: W,
    session_id: 's1',
    token_id: tok.id,
    timestamp: new Date('2021-01-25T11:02:41.563Z'),
    tag: 'user_action',
    message: 'Skipped <b>instructions</b>',
    json: null,
    media_key: null,
    received_at: ago(119),
    batch_sha256: 'a'.repeat(64),
    batch_index: 0,
  },
  {
    workspace_id: W,
    session_id: 's1',
    token_id: tok.id,
    timestamp: new Date('2021-01-25T11:17:44.120Z'),
    tag: 'capture',
    message: 'Image captured',
    json: { 'exposure%2Eiso': 200 },
    media_key: 'cropped',
    received_at: ago(119),
    batch_sha256: 'a'.repeat(64),
    batch_index: 1,
  },
])
await app.db
  .collection('test_session_log_batches')
  .insertOne({ workspace_id: W, session_id: 's1', token_id: tok.id, sha256: 'a'.repeat(64), received_at: ago(119) })
await app.db.collection('test_session_conflicts').insertOne({
  workspace_id: W,
  session_id: 's1',
  token_id: tok.id,
  sha256: 'b'.repeat(64),
  raw_body: sessionBody({ results: { mal_pf: 'mal_pf_neg', mal_pv: 'mal_pv_neg' } }),
  received_at: ago(100),
  original_sha256: 'c'.repeat(64),
})

const idsIn = (html: string) => [...html.matchAll(/sessions\/(s\d)">/g)].map((m) => m[1])

t.test('reading rules', async (t) => {
  t.equal(outcomeOf('mal_pf_pos'), 'positive')
  t.equal(outcomeOf('Positive'), 'positive')
  t.equal(outcomeOf('mal_pf_neg'), 'negative')
  t.equal(outcomeOf('universal_control_failure'), 'other')
  const r = new Date('2021-01-01T10:00:00Z')
  const e = new Date('2021-01-01T10:15:00Z')
  const at = (iso: string) => validityOf({ time_resolved: r, time_expired: e, result: { time_read: new Date(iso) } })
  t.equal(at('2021-01-01T09:59:59Z'), 'too_early')
  t.equal(at('2021-01-01T10:00:00Z'), 'on_time')
  t.equal(at('2021-01-01T10:15:00Z'), 'on_time')
  t.equal(at('2021-01-01T10:15:01Z'), 'too_late')
  t.equal(validityOf({ time_resolved: r, result: {} }), 'unknown')
})

t.test('the list: workspace-scoped, newest first, with filters', async (t) => {
  const all = await b.get(`${base}/sessions`)
  t.equal(all.statusCode, 200)
  t.same(idsIn(all.body), ['s3', 's1', 's2', 's4'])
  t.notMatch(all.body, 'other_ws_profile')
  t.notMatch(all.body, '<script>alert(1)</script>', 'escaped')
  t.match(all.body, '&lt;script&gt;alert(1)&lt;/script&gt;')
  const q = async (qs: string) => idsIn((await b.get(`${base}/sessions?${qs}`)).body)
  t.same(await q('state=WEIRD'), ['s3'])
  t.same(await q('profile=covid_ag'), ['s4'])
  t.same(await q('result=positive'), ['s3', 's1'])
  t.same(await q('result=negative'), ['s2'])
  t.same(await q('result=none'), ['s4'])
  t.same(await q('result=disagree'), ['s2'])
  t.same(await q('flagged=1'), ['s3'])
  t.same(await q('missing=1'), ['s3', 's2'])
  const today = new Date(now).toISOString().slice(0, 10)
  const threeDaysAgo = new Date(now - 3 * 86400_000).toISOString().slice(0, 10)
  t.same(await q(`from=${threeDaysAgo}&to=${threeDaysAgo}`), ['s4'])
  t.same((await q(`from=${today}&to=${today}`)).includes('s4'), false)
})

t.test('paging is range-based and complete', async (t) => {
  const seen: string[] = []
  let after: string | null = null
  for (let i = 0; i < 10; i++) {
    const p = await listSessions(app.db, W, parseFilters({}), after, 1)
    seen.push(...p.rows.map((r) => String(r.session_id)))
    after = p.next
    if (!after) break
  }
  t.same(seen, ['s3', 's1', 's2', 's4'])
  const pos: string[] = []
  after = null
  for (let i = 0; i < 10; i++) {
    const p = await listSessions(app.db, W, parseFilters({ result: 'positive' }), after, 1)
    pos.push(...p.rows.map((r) => String(r.session_id)))
    after = p.next
    if (!after) break
  }
  t.same(pos, ['s3', 's1'], 'in-process filters page too')
  const page2 = await b.get(`${base}/sessions?after=${encodeURIComponent('garbage')}`)
  t.equal(page2.statusCode, 200, 'a bad cursor is ignored')
})

t.test('detail page: fields, validation, images, timeline, raw body', async (t) => {
  const res = await b.get(`${base}/sessions/s1`)
  t.equal(res.statusCode, 200)
  t.match(res.body, 'sd_bioline_mal_pf_pv')
  t.match(res.body, `<img src="${base}/sessions/s1/media/cropped"`)
  t.match(res.body, 'Skipped &lt;b&gt;instructions&lt;/b&gt;')
  t.match(res.body, '&quot;exposure.iso&quot;: 200', 'stored keys are decoded for display')
  t.match(res.body, /<pre id="raw-body">\{\n {2}&quot;state&quot;: &quot;QUEUED&quot;/, 'raw body pretty-printed and escaped')
  t.match(res.body, '1 conflicting resubmission')
  t.match(res.body, '<span class="badge good">agree</span>')
  const s3page = await b.get(`${base}/sessions/s3`)
  t.match(s3page.body, 'flagged')
  t.match(s3page.body, '/state')
  t.match(s3page.body, '<td>a.b</td>', 'decoded result key')
  t.match(s3page.body, 'not uploaded yet')
  t.notMatch(s3page.body, '<script>alert(1)</script>')
  t.equal((await b.get(`/workspaces/${other.id}/sessions/s2`)).statusCode, 404, 'not in that workspace')
  t.equal((await b.get(`${base}/sessions/bad.id`)).statusCode, 404)
})

t.test('photos: sniffed type, nosniff, safe Content-Disposition; anything else is a download', async (t) => {
  const img = await b.get(`${base}/sessions/s1/media/cropped`)
  t.equal(img.statusCode, 200)
  t.equal(img.headers['content-type'], 'image/jpeg')
  t.equal(img.headers['x-content-type-options'], 'nosniff')
  t.equal(img.headers['content-disposition'], `inline; filename=20210125_111802_cropped.jpg`, 'a plain ASCII name needs no filename*')
  t.equal(img.headers['content-length'], '3000')
  t.ok(img.rawPayload.equals(jpeg), 'byte for byte')
  t.match(img.headers['content-security-policy'], "default-src 'self'")
  const evil = await b.get(`${base}/sessions/s1/media/raw`)
  t.equal(evil.headers['content-type'], 'application/octet-stream')
  t.match(evil.headers['content-disposition'], /^attachment; filename=evil_name__\.html; filename\*=UTF-8''evil%22name__\.html$/)
  t.equal((await b.get(`${base}/sessions/s2/media/cropped`)).statusCode, 404)
  t.equal((await b.get(`/workspaces/${other.id}/sessions/s1/media/cropped`)).statusCode, 404, 'another workspace cannot reach it')
  // A document whose key names another photo's object (edited by hand, or corrupted) is never followed.
  const stray = await app.db.collection('test_session_media').findOne({ workspace_id: W, session_id: 's1', media_id: 'cropped' })
  await seedMedia(app.db, s3, config.s3.bucket, {
    workspaceId: W,
    sessionId: 'sptr',
    mediaId: 'pointer',
    tokenId: tok.id,
    bytes: fakeJpeg(10),
    documentKey: String(stray?.key),
  })
  t.equal((await b.get(`${base}/sessions/sptr/media/pointer`)).statusCode, 404, "a key outside the photo's own ids is not opened")
  await app.db.collection('test_session_media').deleteOne({ workspace_id: W, session_id: 'sptr' }) // the dashboard counts photos
  t.equal(
    contentDisposition('inline', 'ünïcode "x".jpg'),
    `inline; filename="_n_code _x_.jpg"; filename*=UTF-8''%C3%BCn%C3%AFcode%20%22x%22.jpg`,
  )
})

t.test('a file name with an emoji at the 200-character cut: the photo page answers 200 and the S3 stream is closed', async (t) => {
  const name = 'a'.repeat(199) + '\u{1F600}\u{1F600}.jpg' // the cut at 200 UTF-16 units would split the first emoji
  const bytes = fakeJpeg(5000)
  await seedMedia(app.db, s3, config.s3.bucket, {
    workspaceId: other.id,
    sessionId: 's1',
    mediaId: 'emoji',
    tokenId: 'tother',
    bytes,
    filename: name,
  })
  const res = await b.get(`/workspaces/${other.id}/sessions/s1/media/emoji`)
  t.equal(res.statusCode, 200)
  t.ok(res.rawPayload.equals(bytes), 'the whole photo')
  const parsed = parseDisposition(res.headers['content-disposition'] as string)
  t.equal(parsed.type, 'inline')
  t.equal(parsed.parameters.filename, 'a'.repeat(199) + '\u{1F600}', 'cut at 200 code points, the emoji kept whole')

  // The same through openMedia with an S3 client that hands out an observable stream.
  const streams: Readable[] = []
  const spy = new Proxy(s3, {
    get(target, prop, recv) {
      if (prop === 'getObject')
        return async (...a: Parameters<S3Client['getObject']>) => {
          const st = (await target.getObject(...a)) as Readable
          streams.push(st)
          return st
        }
      const v = Reflect.get(target, prop, recv)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  const doc = await app.db.collection('test_session_media').findOne({ workspace_id: other.id, session_id: 's1', media_id: 'emoji' })
  const key = String(doc?.key)
  for (const filename of [name, '\ud83d' + 'x'.repeat(300), 'x\udc00y', '']) {
    const m = await openMedia(spy, config.s3.bucket, key, filename)
    t.doesNotThrow(() => parseDisposition(m.disposition), `a valid header for ${JSON.stringify(filename.slice(0, 5))}…`)
    const chunks: Buffer[] = []
    for await (const c of m.body) chunks.push(c as Buffer)
    t.ok(Buffer.concat(chunks).equals(bytes))
    t.ok(streams.at(-1)!.destroyed, 'the S3 stream is closed once the body is sent')
  }
  // A consumer that stops early (a browser that goes away) closes it too.
  const early = await openMedia(spy, config.s3.bucket, key, name)
  early.body.destroy()
  await new Promise((r) => early.body.once('close', r))
  const deadline = Date.now() + 5000
  while (!streams.at(-1)!.destroyed && Date.now() < deadline) await new Promise((r) => setImmediate(r))
  t.ok(streams.at(-1)!.destroyed, 'closed when the response is abandoned')
  t.equal(contentDisposition('attachment', '\udfff'), `attachment; filename=_; filename*=UTF-8''%EF%BF%BD`, 'a lone surrogate never throws')
})

t.test('missing-media report (after the configured delay) and conflicts', async (t) => {
  const res = await b.get(`${base}/missing-media`)
  t.equal(res.statusCode, 200)
  t.same(idsIn(res.body), ['s2'], 's3 is too recent (30 min delay), s1 is complete')
  t.match(res.body, 'phone 1')
  const c = await b.get(`${base}/conflicts`)
  t.match(c.body, 'Resubmission')
  t.match(c.body, /<span class="diff">.*mal_pf_neg/)
  t.match((await b.get(`${base}/conflicts?session=s1`)).body, 'Original')
})

t.test('exports: CSV and NDJSON, streamed, for a date range', async (t) => {
  const today = new Date(now).toISOString().slice(0, 10)
  const from = new Date(now - 7 * 86400_000).toISOString().slice(0, 10)
  const csv = await b.get(`${base}/export?format=csv&from=${from}&to=${today}`)
  t.equal(csv.statusCode, 200)
  t.equal(csv.headers['content-type'], 'text/csv; charset=utf-8')
  t.match(csv.headers['content-disposition'], /^attachment; filename=clinic-s-sessions-/)
  t.equal(csv.headers['transfer-encoding'], 'chunked', 'streamed')
  const lines = csv.body
    .replace(/^\ufeff/, '')
    .trim()
    .split('\r\n')
  t.equal(lines[0], CSV_COLUMNS.join(','))
  t.equal(lines.length, 5)
  t.match(lines[1], /^s4,/, 'oldest first')
  const s2 = lines.find((l) => l.startsWith('s2,'))!
  t.match(s2, ',too_late,negative,')
  t.match(s2, '"{""mal_pf"":""mal_pf_neg"",""mal_pv"":""mal_pv_neg""}"')
  t.match(
    lines.find((l) => l.startsWith('s3,'))!,
    '"{""a.b"":""positive""}"',
    'decoded keys',
  )
  const nd = await b.get(`${base}/export?format=ndjson&from=${from}&to=${today}`)
  const docs = nd.body
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.equal(docs.length, 4)
  t.match(
    docs.find((d) => d.session_id === 's1'),
    { workspace_id: W, state: 'QUEUED', derived: { validity: 'on_time', overall_result: 'positive' } },
  )
  t.type(docs[0].raw_body, 'string')
  t.equal((await b.get(`${base}/export?format=csv&from=2021-02-01&to=2021-01-01`)).statusCode, 400)
  t.equal(csvField('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`, 'no formula injection')
  // The OWASP list, the full-width forms, and leading white space before any of them.
  for (const v of [
    '=1+1',
    '+1',
    '-1',
    '@SUM(A1)',
    '\tx',
    '\rx',
    '\uff1d1+1',
    '\uff0b1',
    '\uff0d1',
    '\uff20SUM(A1)',
    ' =1',
    '  \t+1',
    '\u3000=1',
    '\u00a0@x',
    ' \uff1d1',
    '\n-1',
  ]) {
    t.ok(csvField(v).replace(/^"/, '').startsWith("'"), `guarded: ${JSON.stringify(v)}`)
  }
  for (const v of ['abc', '1', ' a=1', 'x@example.org', '{"a":1}', ''])
    t.notOk(csvField(v).replace(/^"/, '').startsWith("'"), `left alone: ${JSON.stringify(v)}`)
  t.ok(await app.db.collection('audit_log').findOne({ action: 'sessions.export', 'target.format': 'ndjson' }), 'exports are audited')
})

t.test('dashboard figures (aggregations on the real stack)', async (t) => {
  const to = new Date(Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate()) + 86400_000)
  const from = new Date(to.getTime() - 30 * 86400_000)
  const d = await buildDashboard(app.db, W, { from, to, now: new Date(now) })
  t.equal(d.sessions, 4)
  t.equal(d.flagged, 1)
  t.equal(
    d.perDay.total.reduce((a, x) => a + x, 0),
    4,
  )
  t.equal(d.days.length, 30)
  t.same(d.validity, { too_early: 1, on_time: 2, too_late: 1, unknown: 0 })
  const pf = d.diagnoses.find((x) => x.key === 'mal_pf')!
  t.match(pf, { positive: 1, negative: 1, compared: 2, agreed: 1 })
  t.match(
    d.diagnoses.find((x) => x.key === 'a.b'),
    { positive: 1 },
  )
  t.same(
    d.byState.find((s) => s.state === 'WEIRD'),
    { state: 'WEIRD', n: 1 },
  )
  t.equal(
    d.perHour.sessions.reduce((a, x) => a + x, 0),
    3,
    'three sessions in the last 48 h',
  )
  t.equal(
    d.perHour.media.reduce((a, x) => a + x, 0),
    2,
  )
  t.equal(
    d.perHour.logs.reduce((a, x) => a + x, 0),
    1,
  )
  const page = await b.get(`${base}/dashboard`)
  t.equal(page.statusCode, 200)
  for (const id of ['fig-readings', 'fig-positivity', 'fig-agreement', 'fig-validity', 'fig-uploads']) t.match(page.body, `id="${id}"`)
  t.match(page.body, '<svg class="chart"')
  t.notMatch(page.body, /style=/, 'no inline style (CSP)')
  t.notMatch(page.body, /<script>/, 'no inline script (CSP)')
})
