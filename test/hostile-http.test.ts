// Explicit hostile HTTP: lengths that lie, chunked and compressed bodies, odd Content-Types and
// Content-Dispositions, disguised files, ids at the limit, malformed URLs; each sent over real
// HTTP (raw sockets where Node's own client would refuse to send it) to a real gateway with a real
// worker behind it. Every case checks the status AND what is stored; the last test checks that
// nothing crashed, stuck or touched another workspace. Hostile bodies: hostile-bodies.test.ts.
import t from 'tap'
import { gzipSync } from 'node:zlib'
import { openMedia } from '../admin/data/media.ts'
import { jobIds, objectKeys } from '../shared/keys.ts'
import { fakeJpeg, readObject } from '../testing/media.ts'
import { buildRawRequest, chunked, FIXTURES, parseResponses, randomId, rawSend, send, sha256, leftoverSpools } from './helpers/hostile.ts'
import { waitFor } from '../testing/wait.ts'
import { startHostileCases } from './helpers/hostile-cases.ts'

const {
  stack,
  ws,
  token,
  maxJson: MAX_JSON,
  maxMedia: MAX_MEDIA,
  k,
  p,
  storedSession,
  storedBatch,
  storedMedia,
  nothingFor,
  checkAfterEveryCase,
} = await startHostileCases(t)

t.test('Content-Length that does not match the body (raw sockets)', async (t) => {
  // Shorter: the body is what Content-Length says; the rest is read as a next request and refused.
  const id = randomId('clshort-')
  const first = '{"state":"QUEUED"}'
  const head = `PUT ${p(id).session} HTTP/1.1\r\nHost: x\r\nContent-Length: ${first.length}\r\n\r\n`
  // The trailing bytes are parsed as a pipelined request at once; Node refuses them with 400 and
  // closes the socket, possibly before the first answer is written. Either way the first body is
  // the declared bytes, and the device's retry gets 201 (or 409 once the first was stored).
  const res = await rawSend(stack.port, Buffer.from(head + first + 'GARBAGE THAT IS NOT A REQUEST\r\n\r\n'), { timeoutMs: 5000 })
  const answers = parseResponses(res.raw).map((r) => r.status)
  t.ok(answers.length > 0 && answers.every((s) => s === 201 || s === 400), `answers: ${answers.join(', ')}`)
  t.ok([201, 409].includes((await send(stack.port, { path: p(id).session, body: first })).status ?? 0), 'a retry is accepted')
  t.equal((await storedSession(id)).raw_sha256, sha256(first), 'the stored body is the declared bytes')

  const mid = randomId('clshortm-')
  const photo = fakeJpeg(40_000)
  const mres = await rawSend(
    stack.port,
    Buffer.concat([
      Buffer.from(`PUT ${p(mid).media('raw')} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 30000\r\n\r\n`),
      photo,
    ]),
    { timeoutMs: 5000 },
  )
  const mAnswers = parseResponses(mres.raw).map((r) => r.status)
  t.ok(
    mAnswers.every((s) => s === 201 || s === 400),
    `media answers: ${mAnswers.join(', ') || 'none'}`,
  )
  // A poll: the gateway announces nothing when the dead request's claim is released.
  const mRetry = await waitFor(async () => {
    const r = await send(stack.port, {
      path: p(mid).media('raw'),
      headers: [['Content-Type', 'image/jpeg']],
      body: photo.subarray(0, 30_000),
    })
    return r.status === 503 ? null : r
  })
  t.ok(mRetry.status === 201 || mRetry.status === 409, `media retry: ${mRetry.status}`)
  const m = await storedMedia(mid, 'raw')
  t.equal(m.size, 30_000)
  t.equal(m.sha256, sha256(photo.subarray(0, 30_000)))

  // Longer: the body ends early (the client half-closes or goes away): nothing is stored, and the
  // device's retry with the full body is accepted, not refused as a duplicate.
  for (const endpoint of ['session', 'logs', 'media'] as const) {
    for (const how of ['half-close', 'vanish'] as const) {
      const sid = randomId(`cllong-${endpoint}-`)
      const path = endpoint === 'session' ? p(sid).session : endpoint === 'logs' ? p(sid).logs : p(sid).media('raw')
      const body = endpoint === 'media' ? fakeJpeg(50_000) : Buffer.from(FIXTURES.sessionRdtoolkit)
      const data = buildRawRequest({ path, headers: [['Content-Length', String(body.length + 1000)]], noContentLength: true, body })
      const r = await rawSend(stack.port, data, { endAfterWrite: how === 'half-close', timeoutMs: how === 'vanish' ? 500 : 5000 })
      t.ok(r.status === null || (r.status >= 400 && r.status < 500), `${endpoint}, ${how}: ${r.status ?? 'no answer'}`)
      const retry = await waitFor(
        async () => {
          const again = await send(stack.port, { path, body })
          // 503 only while the dead request's claim is still being cleaned up; a poll, as nothing
          // announces the release.
          return again.status === 503 ? null : again
        },
        { timeoutMs: 20_000, what: 'the retry to be answered' },
      )
      t.equal(retry.status, 201, `${endpoint}, ${how}: the retry is accepted`)
      const stored =
        endpoint === 'session' ? await storedSession(sid) : endpoint === 'logs' ? await storedBatch(sid) : await storedMedia(sid, 'raw')
      t.equal(stored.raw_sha256 ?? stored.sha256, sha256(body), 'and what is stored is the full body')
    }
  }
  const health = await send(stack.port, { method: 'GET', path: '/healthz' })
  t.equal(health.status, 200)
})

t.test('Transfer-Encoding: chunked over the limit is 413, leaves nothing behind, and the gateway stays healthy', async (t) => {
  const id = randomId('chunk-')
  const bigJson = Buffer.concat([Buffer.from('{"state":"QUEUED","pad":"'), Buffer.alloc(MAX_JSON, 0x61), Buffer.from('"}')])
  const r1 = await rawSend(
    stack.port,
    buildRawRequest({ path: p(id).session, headers: [['Transfer-Encoding', 'chunked']], rawBody: chunked(bigJson) }),
    { timeoutMs: 20_000 },
  )
  t.equal(r1.status, 413, 'session')
  const r2 = await rawSend(
    stack.port,
    buildRawRequest({ path: p(id).logs, headers: [['Transfer-Encoding', 'chunked']], rawBody: chunked(bigJson) }),
    { timeoutMs: 20_000 },
  )
  t.equal(r2.status, 413, 'logs')
  const bigPhoto = fakeJpeg(MAX_MEDIA + 100_000)
  const r3 = await rawSend(
    stack.port,
    buildRawRequest({
      path: p(id).media('raw'),
      headers: [
        ['Transfer-Encoding', 'chunked'],
        ['Content-Type', 'image/jpeg'],
      ],
      rawBody: chunked(bigPhoto),
    }),
    {
      timeoutMs: 20_000,
    },
  )
  t.equal(r3.status, 413, 'media')
  t.same(await nothingFor(id), [], 'no job, no upload, no marker')
  t.same(await leftoverSpools(stack), [], 'the spool file is removed')

  // Over a keep-alive connection: the same socket, then /healthz on it if it stayed open.
  const keep = await rawSend(
    stack.port,
    Buffer.concat([
      buildRawRequest({ path: p(id).session, headers: [['Transfer-Encoding', 'chunked']], rawBody: chunked(bigJson), keepAlive: true }),
      buildRawRequest({ method: 'GET', path: '/healthz' }),
    ]),
    { timeoutMs: 20_000 },
  )
  const statuses = parseResponses(keep.raw).map((r) => r.status)
  t.equal(statuses[0], 413)
  t.ok(statuses.length === 1 || statuses[1] === 200, `a second request on the connection got ${statuses[1] ?? 'a closed connection'}`)
  t.equal((await send(stack.port, { method: 'GET', path: '/healthz' })).status, 200, 'a new connection is served')

  // Within the limit, chunked photos are spooled to disk and the spool is removed after.
  const ok = fakeJpeg(300_000)
  const r4 = await rawSend(
    stack.port,
    buildRawRequest({
      path: p(id).media('cropped'),
      headers: [
        ['Transfer-Encoding', 'chunked'],
        ['Content-Type', 'image/jpeg'],
      ],
      rawBody: chunked(ok, 7777),
    }),
  )
  t.equal(r4.status, 201)
  t.equal((await storedMedia(id, 'cropped')).sha256, sha256(ok))
  t.same(await leftoverSpools(stack), [])
})

t.test('a wrong, missing or malformed Content-Type is accepted and stored as declared', async (t) => {
  for (const [i, ct] of [
    undefined,
    'text/plain',
    'image/jpeg',
    'application/x-www-form-urlencoded',
    'garbage',
    ';;;',
    'application/json; charset=latin1',
  ].entries()) {
    const id = randomId(`ct${i}-`)
    const headers: [string, string][] = ct === undefined ? [] : [['Content-Type', ct]]
    t.equal(
      (await send(stack.port, { path: p(id).session, headers, body: FIXTURES.sessionRdtoolkit })).status,
      201,
      `session, ${ct ?? 'none'}`,
    )
    t.equal((await send(stack.port, { path: p(id).logs, headers, body: FIXTURES.logsRdtoolkit })).status, 201, `logs, ${ct ?? 'none'}`)
    const photo = fakeJpeg(5000)
    t.equal((await send(stack.port, { path: p(id).media('raw'), headers, body: photo })).status, 201, `media, ${ct ?? 'none'}`)
    t.equal((await storedSession(id)).raw_sha256, sha256(FIXTURES.sessionRdtoolkit))
    await storedBatch(id)
    const m = await storedMedia(id, 'raw')
    t.equal(m.content_type, ct ?? null, 'the declared type is kept as metadata')
    t.equal(m.sniffed_type, 'image/jpeg', 'the stored type comes from the bytes')
  }
})

t.test('Content-Encoding: gzip is inflated with a cap (a bomb is 413); other codings are 415', async (t) => {
  const id = randomId('gz-')
  const gz = gzipSync(FIXTURES.sessionRdtoolkit)
  t.equal((await send(stack.port, { path: p(id).session, headers: [['Content-Encoding', 'gzip']], body: gz })).status, 201)
  const doc = await storedSession(id)
  t.equal(doc.raw_body, FIXTURES.sessionRdtoolkit, 'stored inflated')
  t.equal(
    doc.raw_sha256,
    sha256(FIXTURES.sessionRdtoolkit),
    'the hash is of the inflated body, so a replay without gzip is the same record',
  )
  t.equal((await send(stack.port, { path: p(id).session, body: FIXTURES.sessionRdtoolkit })).status, 409)
  t.equal(
    (await send(stack.port, { path: p(id).logs, headers: [['Content-Encoding', 'x-gzip']], body: gzipSync(FIXTURES.logsRdtoolkit) }))
      .status,
    201,
  )
  t.equal((await storedBatch(id)).sha256, sha256(FIXTURES.logsRdtoolkit))

  // 64 MiB of JSON whitespace in 64 KiB of gzip: refused at the cap, not inflated.
  const bomb = gzipSync(Buffer.concat([Buffer.from('{"a":'), Buffer.alloc(64 * 1024 * 1024, 0x20), Buffer.from('1}')]), { level: 9 })
  t.ok(bomb.length < 200_000, `bomb is ${bomb.length} bytes`)
  const bombId = randomId('bomb-')
  const rss = process.memoryUsage().rss
  t.equal((await send(stack.port, { path: p(bombId).session, headers: [['Content-Encoding', 'gzip']], body: bomb })).status, 413)
  t.ok(process.memoryUsage().rss - rss < 48 * 1024 * 1024, 'the bomb was not inflated in full')
  t.equal(
    (await send(stack.port, { path: p(bombId).session, headers: [['Content-Encoding', 'gzip']], body: Buffer.from('not gzip at all') }))
      .status,
    400,
    'corrupt gzip',
  )
  for (const coding of ['deflate', 'br', 'compress', 'zstd', 'gzip, gzip', 'identity, gzip']) {
    t.equal(
      (await send(stack.port, { path: p(bombId).session, headers: [['Content-Encoding', coding]], body: gz })).status,
      415,
      `session, ${coding}`,
    )
  }
  t.equal(
    (await send(stack.port, { path: p(bombId).media('raw'), headers: [['Content-Encoding', 'gzip']], body: gzipSync(fakeJpeg(1000)) }))
      .status,
    415,
    'media, gzip',
  )
  t.equal(
    (await send(stack.port, { path: p(bombId).session, headers: [['Content-Encoding', 'identity']], body: FIXTURES.sessionRdtoolkit }))
      .status,
    201,
    'identity is fine',
  )
  await storedSession(bombId)
  t.same(
    (await nothingFor(bombId)).filter((x) => !x.startsWith('sessions job')),
    [],
    'nothing else was queued or staged',
  )
})

t.test('Content-Disposition: path tricks, filename*, very long names, control characters', async (t) => {
  const id = randomId('cd-')
  const cases: [string, string | null][] = [
    ['attachment; filename=../../etc/passwd', 'passwd'],
    ['attachment; filename="..\\\\..\\\\windows\\\\win.ini"', 'win.ini'],
    ["attachment; filename*=UTF-8''%2e%2e%2f%2e%2e%2fevil.jpg", 'evil.jpg'],
    ["attachment; filename=plain.jpg; filename*=UTF-8''%E2%9C%93%20ok.jpg", '✓ ok.jpg'],
    ["attachment; filename*=UTF-8''%01%1b%5B31mred%7F%C2%85.jpg", '[31mred.jpg'],
    ["attachment; filename*=UTF-8''..", null],
    ['attachment; filename="."', null],
    [`attachment; filename=${'n'.repeat(300)}.jpg`, 'n'.repeat(255)],
    [`attachment; filename=${'x'.repeat(5000)}`, null],
    ["attachment; filename*=bogus''x.jpg", null],
    ['attachment; filename="/"', null],
    ['attachment', null],
    ['', null],
  ]
  for (const [i, [cd, want]] of cases.entries()) {
    const media = `m${i}`
    const res = await send(stack.port, {
      path: p(id).media(media),
      headers: [
        ['Content-Type', 'image/jpeg'],
        ['Content-Disposition', cd],
      ],
      body: fakeJpeg(2000),
    })
    t.equal(res.status, 201, cd.slice(0, 80))
    const doc = await storedMedia(id, media)
    t.equal(doc.filename, want, `${cd.slice(0, 60)} -> ${String(want).slice(0, 40)}`)
    t.ok(
      doc.key.startsWith('media/') && objectKeys.isPhotoOf(doc.key, ws, id, media),
      'the object key is built from the ids (and an upload id) only',
    )
  }
  // A raw control character in a header is refused by the HTTP parser itself: nothing claimed.
  const ctl = await send(stack.port, {
    path: p(id).media('ctl'),
    headers: [['Content-Disposition', 'attachment; filename=a\u0001b.jpg']],
    body: fakeJpeg(1000),
  })
  t.equal(ctl.status, 400)
  t.equal(await stack.redis.exists(k.idempotency('m', ws, id, 'ctl')), 0, 'no idempotency key was claimed')

  // The longest filename and Content-Type, both non-ASCII: the staged object's metadata must still
  // fit S3's 2 KB (this was a 500: MetadataTooLarge), and still decode for the sweeper.
  const longName = 'é'.repeat(300) + '.jpg'
  const longType = 'image/' + '\u00e9'.repeat(250)
  const res = await send(stack.port, {
    path: p(id).media('long'),
    headers: [
      ['Content-Type', Buffer.from(longType, 'latin1').toString('latin1')],
      ['Content-Disposition', `attachment; filename*=UTF-8''${encodeURIComponent(longName)}`],
    ],
    body: fakeJpeg(3000),
  })
  t.equal(res.status, 201, res.body)
  const doc = await storedMedia(id, 'long')
  t.equal(doc.filename, [...longName].slice(0, 255).join(''), 'the full (255-character) name is in the document')
  t.equal(doc.content_type, longType)
})

t.test('HTML and SVG sent as image/jpeg are stored as application/octet-stream and served only as attachments', async (t) => {
  const id = randomId('html-')
  const bodies = {
    html: Buffer.from('<!doctype html><html><script>alert(document.cookie)</script></html>'),
    svg: Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'),
    bomhtml: Buffer.from('\ufeff<html><body onload=alert(1)>', 'utf8'),
  }
  for (const [media, bytes] of Object.entries(bodies)) {
    const res = await send(stack.port, {
      path: p(id).media(media),
      headers: [
        ['Content-Type', 'image/jpeg'],
        ['Content-Disposition', `attachment; filename=${media}.jpg`],
      ],
      body: bytes,
    })
    t.equal(res.status, 201)
    const doc = await storedMedia(id, media)
    t.match(doc, { content_type: 'image/jpeg', sniffed_type: 'application/octet-stream', sha256: sha256(bytes) })
    const stat = await stack.s3.statObject(stack.config.s3.bucket, doc.key)
    t.equal(stat.metaData['content-type'], 'application/octet-stream', 'the object is labelled octet-stream, not image/jpeg or text/html')
    t.ok((await readObject(stack.s3, stack.config.s3.bucket, doc.key)).equals(bytes), 'bytes kept exactly')
    // The admin panel's photo handler (admin/routes/sessions.ts -> openMedia) re-sniffs the object.
    const served = await openMedia(stack.s3, stack.config.s3.bucket, doc.key, String(doc.filename))
    served.body.destroy()
    t.equal(served.type, 'application/octet-stream')
    t.match(served.disposition, /^attachment; /, 'served as a download, never inline')
  }
})

t.test('ids at 128 characters are accepted, at 129 refused (and a 129-character DSN is 403)', async (t) => {
  const id128 = 'S'.repeat(120) + randomId().slice(0, 8)
  t.equal(id128.length, 128)
  const m128 = 'M'.repeat(128)
  t.equal((await send(stack.port, { path: p(id128).session, body: FIXTURES.sessionRdtoolkit })).status, 201)
  t.equal((await send(stack.port, { path: p(id128).logs, body: FIXTURES.logsRdtoolkit })).status, 201)
  t.equal(
    (await send(stack.port, { path: p(id128).media(m128), headers: [['Content-Type', 'image/jpeg']], body: fakeJpeg(1000) })).status,
    201,
  )
  t.equal((await storedSession(id128)).session_id, id128)
  await storedBatch(id128)
  t.ok(objectKeys.isPhotoOf((await storedMedia(id128, m128)).key, ws, id128, m128), 'stored under a key built from the 128-character ids')
  t.ok(await stack.queues.sessions.getJob(jobIds.session(ws, id128)), 'the job id holds a 128-character id')

  const id129 = id128 + 'x'
  for (const path of [p(id129).session, p(id129).logs, p(id128).media(m128 + 'x'), p(id129).media('raw')]) {
    const res = await send(stack.port, { path, body: FIXTURES.sessionRdtoolkit })
    t.equal(res.status, 400, path.slice(-40))
    t.match(JSON.parse(res.body), { error: 'invalid_id' })
  }
  t.same(await nothingFor(id129), [])
  const dsn129 = `/ingest/${'r'.repeat(129)}/test_session/abc/`
  t.equal((await send(stack.port, { path: dsn129, body: '{}' })).status, 403)
})

t.test('malformed URLs are refused without echoing the DSN', async (t) => {
  for (const path of [
    `/ingest/${token}/test_session/%zz/`,
    `/ingest/${token}/test_session/${'A'.repeat(2000)}/`,
    `/ingest/${token}/test_session/%E0%A4%A/logs`,
  ]) {
    const res = await send(stack.port, { path, body: '{}' })
    t.ok(res.status === 400 || res.status === 414, `${res.status}`)
    t.notOk(res.body.includes(token), 'the token is not in the answer')
  }
})

checkAfterEveryCase()
