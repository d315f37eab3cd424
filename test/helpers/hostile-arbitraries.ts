// fast-check generators for the hostile-input properties: JSON text that a serialiser would
// never write (duplicate keys, `__proto__` as a real key, number literals beyond double range,
// escaped lone surrogates), bodies shaped like sessions and logs with wrong values in every
// field, header sets and URL paths.
import fc from 'fast-check'

/** An object as an ordered list of entries: keeps duplicates and `__proto__` as real keys. */
export class Obj {
  constructor(readonly entries: [string, J][]) {}
}
/** Literal JSON text (number literals like 1e999 that no JS value serialises to). */
export class Raw {
  constructor(readonly text: string) {}
}
export type J = null | boolean | number | string | J[] | Obj | Raw | { [k: string]: J }

/** Serialises with optional whitespace between tokens (the real client pretty-prints). */
export function toJson(v: J, indent = ''): string {
  const nl = indent ? '\n' : ''
  const walk = (x: J, pad: string): string => {
    if (x instanceof Raw) return x.text
    if (x instanceof Obj) {
      if (x.entries.length === 0) return '{}'
      const inner = pad + indent
      return `{${nl}${x.entries.map(([k, val]) => `${inner}${JSON.stringify(k)}:${indent ? ' ' : ''}${walk(val, inner)}`).join(`,${nl}`)}${nl}${pad}}`
    }
    if (Array.isArray(x)) {
      if (x.length === 0) return '[]'
      const inner = pad + indent
      return `[${nl}${x.map((e) => inner + walk(e, inner)).join(`,${nl}`)}${nl}${pad}]`
    }
    if (x !== null && typeof x === 'object') return walk(new Obj(Object.entries(x)), pad)
    return JSON.stringify(x) ?? 'null'
  }
  return walk(v, '')
}

export const hostileKey = fc.oneof(
  fc.constantFrom(
    '$where',
    '$gt',
    '$',
    'a.b',
    '.',
    '..',
    '__proto__',
    'constructor',
    'prototype',
    '_bsontype',
    '_id',
    '',
    '\u0000',
    'a\u0000b',
    '%',
    '%2E',
    '%24x',
    'toString',
    'hasOwnProperty',
    'valueOf',
    'entries',
    'id',
    'json',
    'state',
    'configuration',
    'result',
    'images',
    'flags',
    'metrics',
    'data',
    'time_started',
    '\ud800',
    'k'.repeat(300),
  ),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ maxLength: 8 }),
)

export const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom('\u0000', '\ud800', '\udfff', '\u2028', '"', '\\', '\u00ff', '\ufffd', '\ufeff', '<', '$', '.', 'a'),
    maxLength: 20,
  }),
  fc.constantFrom(
    '2021-01-25T11:02:41.118+00:00',
    '2021-01-25T11:02:41Z',
    '2021-02-31T00:00:00Z',
    '9999-12-31T23:59:59.999999999+23:59',
    '0000-01-01T00:00:00Z',
    '2021-01-25 11:02',
    'TRUE',
    'FALSE',
    'QUEUED',
    'mal_pf_pos',
    '<script>alert(1)</script>',
    '{"$where":"1"}',
    'rdt_' + 'A'.repeat(40),
  ),
)

const number = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 2 ** 53, -(2 ** 53), 1.7976931348623157e308, 5e-324),
  fc.constantFrom(
    new Raw('1e999'),
    new Raw('-1e999'),
    new Raw('1E400'),
    new Raw('123456789012345678901234567890'),
    new Raw('-0'),
    new Raw('0.0000000000000000000000000001'),
  ),
)

/** Any JSON value, with hostile keys and strings, bounded in size. */
export const jsonValue: fc.Arbitrary<J> = fc.letrec<{ v: J; arr: J[]; obj: Obj }>((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), number, hostileString, tie('arr'), tie('obj')),
  arr: fc.array(tie('v'), { maxLength: 6 }),
  obj: fc.array(fc.tuple(hostileKey, tie('v')), { maxLength: 6 }).map((e) => new Obj(e)),
})).v

/** Deep nesting of one shape: `[[[…]]]` or `{"a":{"a":…}}`. */
export const deepValue = fc
  .tuple(fc.integer({ min: 20, max: 400 }), fc.boolean())
  .map(([depth, arrays]) => new Raw(arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)))

const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined })
const timestampish = fc.oneof(hostileString, jsonValue)
const stringMap = fc.oneof(
  fc.array(fc.tuple(hostileKey, fc.oneof(hostileString, jsonValue)), { maxLength: 5 }).map((e) => new Obj(e)),
  jsonValue,
)

function withoutUndefined(o: Record<string, J | undefined>): Obj {
  return new Obj(Object.entries(o).filter((e): e is [string, J] => e[1] !== undefined))
}

/** A session body: the known fields present or not, each with a plausible or a hostile value. */
export const sessionLike: fc.Arbitrary<J> = fc
  .record({
    id: maybe(fc.oneof(hostileString, jsonValue)),
    state: maybe(fc.oneof(fc.constantFrom('BUILDING', 'RUNNING', 'COMPLETE', 'QUEUED'), jsonValue)),
    test_profile_id: maybe(fc.oneof(hostileString, jsonValue)),
    time_started: maybe(timestampish),
    time_resolved: maybe(timestampish),
    time_expired: maybe(timestampish),
    configuration: maybe(
      fc.oneof(
        fc
          .record({
            session_type: maybe(jsonValue),
            provision_mode: maybe(jsonValue),
            classifier_mode: maybe(jsonValue),
            flags: maybe(stringMap),
            extra: maybe(jsonValue),
          })
          .map(withoutUndefined),
        jsonValue,
      ),
    ),
    result: maybe(
      fc.oneof(
        fc
          .record({
            time_read: maybe(timestampish),
            images: maybe(stringMap),
            results: maybe(stringMap),
            results_classifier: maybe(stringMap),
          })
          .map(withoutUndefined),
        jsonValue,
      ),
    ),
    metrics: maybe(fc.oneof(fc.record({ data: maybe(stringMap) }).map(withoutUndefined), jsonValue)),
    unknown: maybe(fc.oneof(jsonValue, deepValue)),
  })
  .map(withoutUndefined)

const logEntry: fc.Arbitrary<J> = fc.oneof(
  fc
    .record({
      timestamp: maybe(timestampish),
      tag: maybe(jsonValue),
      message: maybe(jsonValue),
      json: maybe(fc.oneof(jsonValue, deepValue)),
      media_key: maybe(jsonValue),
    })
    .map(withoutUndefined),
  jsonValue,
)

/** A logs body: `{"entries": [...]}`, a bare array, or something else entirely. */
export const logsLike: fc.Arbitrary<J> = fc.oneof(
  fc.array(logEntry, { maxLength: 8 }).map((entries) => new Obj([['entries', entries]])),
  fc.array(logEntry, { maxLength: 8 }),
  fc
    .tuple(fc.array(logEntry, { maxLength: 4 }), fc.array(fc.tuple(hostileKey, jsonValue), { maxLength: 3 }))
    .map(([entries, rest]) => new Obj([['entries', entries], ...rest])),
)

/** Whether the value is what an endpoint needs: a session must be an object; logs an object or array. */
export function kindOf(v: J): 'object' | 'array' | 'other' {
  if (v instanceof Obj) return 'object'
  if (v instanceof Raw) return v.text.startsWith('{') ? 'object' : v.text.startsWith('[') ? 'array' : 'other'
  if (Array.isArray(v)) return 'array'
  return v !== null && typeof v === 'object' ? 'object' : 'other'
}

export const contentType = fc.option(
  fc.constantFrom(
    'application/json; charset=utf-8',
    'application/json',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'image/jpeg',
    'application/octet-stream',
    '*/*',
    'application/json; charset=utf-16',
    ';;;',
    'garbage',
  ),
  { nil: undefined },
)

/** Valid ids (1-128 of [0-9A-Za-z_-]), favouring the edges. */
export const validId = fc.oneof(
  fc.stringMatching(/^[0-9A-Za-z_-]{1,16}$/),
  fc.stringMatching(/^[0-9A-Za-z_-]{120,128}$/),
  fc.constantFrom('-', '_', '0', '--', 'a'.repeat(128)),
)

// ---------------------------------------------------------------------------------------------
// Headers and paths, as latin1 text for the raw client.

const latin1 = (min: number, max: number) => fc.integer({ min, max }).map((c) => String.fromCharCode(c))

/** Header values: mostly legal (tab, visible ASCII, obs-text), sometimes a control character. */
export const headerValue = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.oneof(latin1(0x20, 0x7e), latin1(0x80, 0xff), fc.constant('\t')), maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ unit: latin1(0x00, 0xff).filter((c) => c !== '\r' && c !== '\n'), maxLength: 40 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'gzip',
      'deflate',
      'br',
      'identity',
      'gzip, gzip',
      'x-gzip',
      'compress',
      'attachment; filename=../../etc/passwd',
      "attachment; filename*=UTF-8''%2e%2e%2f%2e%2e%2fx.jpg",
      "attachment; filename*=UTF-8''%E0%A4%A",
      "attachment; filename*=bogus''x",
      'attachment; filename="a\\"b.jpg"; filename*=',
      'inline; filename=',
      'multipart/form-data; boundary=----x',
      'application/json; charset=utf-16',
      'image/svg+xml',
      'text/html',
      '100-continue',
      'bytes=0-10',
      'close',
      '',
      ' ',
      'A'.repeat(5000),
    ),
  },
)

/** Header names: the interesting ones, and random tokens; framing headers are left to the explicit cases. */
export const headerName = fc.oneof(
  fc.constantFrom(
    'Content-Type',
    'Content-Encoding',
    'Content-Disposition',
    'Accept',
    'Accept-Encoding',
    'User-Agent',
    'X-Forwarded-For',
    'Authorization',
    'Cookie',
    'Range',
    'Content-Range',
    'Content-MD5',
    'Expect',
    'TE',
    'Trailer',
    'Upgrade',
    'If-Match',
    'Origin',
    'X-Request-Id',
    'Content-Language',
  ),
  fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,30}$/).filter((n) => !/^(content-length|transfer-encoding|connection|host)$/i.test(n)),
)

export const headers = fc.array(fc.tuple(headerName, headerValue), { maxLength: 8 })

/** A path segment: valid, or anything a URL can carry (percent-escapes, raw bytes, dots, very long). */
export const segment = (valid: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).map((s) => encodeURIComponent(s)) },
    { weight: 1, arbitrary: fc.string({ unit: latin1(0x21, 0xff).filter((c) => !'/?#'.includes(c)), minLength: 1, maxLength: 30 }) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '',
        '.',
        '..',
        '%',
        '%zz',
        '%00',
        '%2F',
        '%2e%2e',
        '%C0%AF',
        '%ff',
        'a%00b',
        '~',
        '*',
        'a;b',
        'A'.repeat(128),
        'A'.repeat(129),
        'A'.repeat(1025),
        'A'.repeat(3000),
        'rdt_..',
        '\\',
      ),
    },
  )
