// Unit tests for the pure parts of the worker: the storage rule for client JSON, canonical JSON,
// content sniffing, timestamps and session validation. No services needed.
import t from 'tap'
import { canonicalJson, decodeKey, encodeKey, stringifyJson, toStorable } from '../shared/json-storage.ts'
import { parseTimestamp, validateSessionBody } from '../shared/session-schema.ts'
import { sniffType } from '../shared/sniff.ts'
import { logEntryId } from '../worker/processors/logs.ts'
import { buildSessionDocument } from '../worker/session-document.ts'
import { FIXTURES, sessionJob } from './helpers/worker-harness.ts'

t.test('encodeKey/decodeKey are a reversible pair for the refused characters only', async (t) => {
  const cases: [string, string][] = [
    ['plain', 'plain'],
    ['a.b', 'a%2Eb'],
    ['$where', '%24where'],
    ['a$b', 'a$b'],
    ['50%', '50%25'],
    ['%2E', '%252E'],
    ['a\u0000b', 'a%00b'],
    ['_bsontype', '%5Fbsontype'],
    ['_bsontypes', '_bsontypes'],
    ['$.%', '%24%2E%25'],
    ['__proto__', '__proto__'],
    ['', ''],
  ]
  for (const [raw, enc] of cases) {
    t.equal(encodeKey(raw), enc, `encode ${JSON.stringify(raw)}`)
    t.equal(decodeKey(enc), raw, `decode ${JSON.stringify(enc)}`)
  }
})

t.test('toStorable applies the storage rule', async (t) => {
  const input = JSON.parse(
    '{"a.b":1,"$where":"x","__proto__":{"polluted":true},"constructor":{"prototype":1},"n\\u0000ul":2,' +
      '"box":[[1,2],[3,[4]]],"list":[{"x":[5]}],"big":1e999,"ok":[1,"two",null,true,{"k":"v"}]}',
  )
  const notes: [string, string][] = []
  const out = toStorable(input, { onRewrite: (p, r) => notes.push([p, r]) }) as Record<string, unknown>
  t.equal(Object.getPrototypeOf(out), null, 'objects have no prototype')
  t.same(Object.keys(out), ['a%2Eb', '%24where', '__proto__', 'constructor', 'n%00ul', 'box', 'list', 'big', 'ok'])
  t.same(out['__proto__'], { polluted: true }, '__proto__ is an ordinary own property')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
  t.same(out.box, ['[1,2]', '[3,[4]]'], 'arrays inside arrays become JSON text')
  t.same(out.list, [{ x: [5] }], 'arrays of objects holding arrays are kept')
  t.equal(out.big, 'Infinity')
  t.same(out.ok, [1, 'two', null, true, { k: 'v' }])
  t.same(notes, [
    ['/box/0', 'nested_array_as_json'],
    ['/box/1', 'nested_array_as_json'],
    ['/big', 'non_finite_number_as_string'],
  ])
})

t.test('toStorable cuts nesting at maxDepth and keeps the rest as JSON text', async (t) => {
  let deep: unknown = 'leaf'
  for (let i = 0; i < 200; i++) deep = { a: deep }
  const out = toStorable(deep) as Record<string, unknown>
  let cur: unknown = out
  let depth = 0
  while (typeof cur === 'object' && cur !== null) {
    cur = (cur as Record<string, unknown>).a
    depth++
  }
  t.equal(depth, 32, '32 levels of objects are kept')
  t.type(cur, 'string')
  t.same(
    JSON.parse(cur as string),
    (() => {
      let d: unknown = 'leaf'
      for (let i = 0; i < 168; i++) d = { a: d }
      return d
    })(),
    'the cut-off part is its exact JSON',
  )
  t.equal(toStorable([[1]], { maxDepth: 0 }), '[[1]]')
})

t.test('stringifyJson survives nesting that overflows JSON.stringify', async (t) => {
  const text = '['.repeat(200_000) + ']'.repeat(200_000)
  const value = JSON.parse(text) as unknown
  t.throws(() => JSON.stringify(value), RangeError)
  t.equal(stringifyJson(value), text)
  const out = toStorable({ deep: value }) as { deep: unknown[] }
  t.equal(out.deep.length, 1)
  t.equal(out.deep[0], text.slice(1, -1), 'the inner array is kept as its JSON text')
})

t.test('stringifyJson matches JSON.stringify; canonicalJson sorts keys', async (t) => {
  const v = JSON.parse('{"b":[1,{"z":1,"a":"x\\"y"}],"a":null,"c":{"__proto__":1},"d":-0,"e":1.5e-7,"f":"\\u2028"}')
  t.equal(stringifyJson(v), JSON.stringify(v))
  t.equal(canonicalJson(v), '{"a":null,"b":[1,{"a":"x\\"y","z":1}],"c":{"__proto__":1},"d":0,"e":1.5e-7,"f":"\u2028"}')
  t.equal(canonicalJson(JSON.parse('{"y": 1,\n    "x": [2]}')), canonicalJson({ x: [2], y: 1 }), 'formatting does not matter')
})

t.test('log entry ids depend on content and occurrence, not formatting', async (t) => {
  const a = logEntryId('w1', 's1', canonicalJson(JSON.parse('{"tag":"t","message":"m"}')), 0)
  const b = logEntryId('w1', 's1', canonicalJson(JSON.parse('{ "message": "m",\n "tag": "t" }')), 0)
  t.equal(a, b)
  t.not(a, logEntryId('w1', 's1', canonicalJson({ tag: 't', message: 'm' }), 1), 'a second identical entry gets its own id')
  t.not(a, logEntryId('w1', 's2', canonicalJson({ tag: 't', message: 'm' }), 0), 'sessions are separate')
  t.match(a, /^[0-9a-f]{64}$/)
})

t.test('sniffType recognises the allowlist and nothing else', async (t) => {
  const b = (...bytes: (number | string)[]) =>
    Buffer.concat(bytes.map((x) => (typeof x === 'string' ? Buffer.from(x, 'latin1') : Buffer.from([x]))))
  t.equal(sniffType(b(0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'JFIF')), 'image/jpeg')
  t.equal(sniffType(b(0x89, 'PNG\r\n', 0x1a, '\n', 0, 0, 0, 13)), 'image/png')
  t.equal(sniffType(b('GIF89a', 1, 0)), 'image/gif')
  t.equal(sniffType(b('RIFF', 0, 0, 0, 0, 'WEBPVP8 ')), 'image/webp')
  t.equal(sniffType(b(0, 0, 0, 0x18, 'ftypheic', 0, 0, 0, 0)), 'image/heic')
  t.equal(sniffType(b(0, 0, 0, 0x18, 'ftypmif1', 0, 0, 0, 0)), 'image/heif')
  t.equal(sniffType(b('%PDF-1.7\n')), 'application/pdf')
  for (const text of [
    '<!DOCTYPE html><html>',
    '<html><script>alert(1)</script>',
    '<svg xmlns="http://www.w3.org/2000/svg">',
    '<?xml version="1.0"?><svg>',
    '{"json": true}',
    '',
  ]) {
    t.equal(sniffType(Buffer.from(text)), 'application/octet-stream', `not an image: ${text.slice(0, 12) || 'empty'}`)
  }
  t.equal(sniffType(b(0, 0, 0, 0x18, 'ftypisom')), 'application/octet-stream', 'mp4 is not an image')
  t.equal(sniffType(b(0xff, 0xd8)), 'application/octet-stream', 'too short')
})

t.test('parseTimestamp', async (t) => {
  t.equal(parseTimestamp('2021-01-25T11:02:41.118+00:00').date?.toISOString(), '2021-01-25T11:02:41.118Z')
  t.equal(parseTimestamp('2020-10-16T16:25:34.467Z').date?.toISOString(), '2020-10-16T16:25:34.467Z')
  t.equal(parseTimestamp('2021-01-25T11:02:41+05:30').date?.toISOString(), '2021-01-25T05:32:41.000Z')
  const zoneless = parseTimestamp('2021-01-25T11:02:41')
  t.equal(zoneless.date?.toISOString(), '2021-01-25T11:02:41.000Z', 'no offset: read as UTC, not local time')
  t.match(zoneless.issue, /without a UTC offset/)
  for (const bad of ['2021-02-31T00:00:00Z', 'yesterday', '', 1611572561118, null, '2021-13-01T00:00:00Z']) {
    const r = parseTimestamp(bad)
    t.equal(r.date, null, `${String(bad)} is not a date`)
    t.ok(r.issue)
  }
})

t.test('session schema accepts both fixtures and explains a broken body', async (t) => {
  t.same(validateSessionBody(JSON.parse(FIXTURES.sessionRdtoolkit)), [])
  t.same(validateSessionBody(JSON.parse(FIXTURES.sessionSpecExample)), [])
  const issues = validateSessionBody({ state: 'DONE', time_started: 'soon', configuration: { flags: { A: true } } })
  t.match(issues, [
    { path: '', message: /required properties: test_profile_id, time_resolved/ },
    { path: '/state', message: /allowed values/ },
    { path: '/time_started', message: /date-time/ },
    { path: '/configuration', message: /session_type/ },
    { path: '/configuration/flags/A', message: /string/ },
  ])
})

t.test('buildSessionDocument normalises the real client body', async (t) => {
  const body = FIXTURES.sessionRdtoolkit
  const job = sessionJob('w1', '5f0c2a4e-8d1b-4c7e-9a3f-2b6d8e1f4a90', body)
  const doc = buildSessionDocument(job as never, JSON.parse(body), new Date('2021-01-25T12:00:00Z'))
  t.equal(doc.state, 'QUEUED')
  t.same(doc.time_started, new Date('2021-01-25T11:02:41.118Z'))
  t.same(doc.result.time_read, new Date('2021-01-25T11:18:02.563Z'))
  t.equal(doc.configuration.flags.FLAG_NO_EARLY_READS, 'TRUE')
  t.equal(doc.configuration.flavor_text, null)
  t.equal(doc.extra, null)
  t.same(doc.validation, { ok: true, errors: [] })
  t.equal(doc.raw_body, body)
})
