// How arbitrary client JSON is made safe to store in MongoDB and FerretDB.
//
// Devices send free-form JSON in several places (configuration.flags, result.images, results,
// results_classifier, metrics, unknown top-level fields, log entry `json`). Stored as-is, some of
// it is rejected by the database or the driver, and a job whose document is always rejected
// would retry for ever or poison every document batched with it. Everything client-shaped passes
// through `toStorable` before it is written; the exact request body is always kept as well, in
// `raw_body`, so nothing is ever lost and any record can be reprocessed.

export interface StorableOptions {
  /** Containers nested deeper than this (the value itself is level 0) become JSON text. Default 32. */
  maxDepth?: number
  /** Called for every rewrite that changes a value's type (rules 2-4; key encoding is not reported). */
  onRewrite?: (path: string, rule: StorageRewrite) => void
  /** JSON pointer of `value` inside the client document, used in onRewrite paths. */
  path?: string
}

export type StorageRewrite = 'nested_array_as_json' | 'too_deep_as_json' | 'non_finite_number_as_string'

export const DEFAULT_MAX_DEPTH = 32

const KEY_NEEDS_ENCODING = /[%.\u0000]|^\$|^_bsontype$/

/** Encodes one object key per the storage rule. Keys that need nothing are returned unchanged. */
export function encodeKey(key: string): string {
  if (!KEY_NEEDS_ENCODING.test(key)) return key
  let out = key
    .replace(/%/g, '%25')
    .replace(/\./g, '%2E')
    .replace(/\u0000/g, '%00')
  if (out.startsWith('$')) out = '%24' + out.slice(1)
  if (out === '_bsontype') out = '%5Fbsontype'
  return out
}

/** Reverses `encodeKey`. */
export function decodeKey(key: string): string {
  if (!key.includes('%')) return key
  return key.replace(/%(25|2E|24|00|5F)/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
}

/** Escapes a key for use in a JSON pointer (RFC 6901). */
function pointer(path: string, key: string | number): string {
  return `${path}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`
}

/**
 * ### Storage rule for client JSON (copy into README, "Client JSON in MongoDB")
 *
 * Free-form client JSON is stored as BSON with these rewrites, and only these:
 *
 * 1. **Object keys are percent-encoded** for the characters the servers refuse:
 *    `%` → `%25`, `.` → `%2E`, a *leading* `$` → `%24`, NUL → `%00`, and the key `_bsontype`
 *    (which the Node.js driver mistakes for a BSON type) → `%5Fbsontype`. Nothing else is
 *    encoded. Because `%` itself is always encoded, the rule is reversible: decode a stored key
 *    by replacing `%25`, `%2E`, `%24`, `%00`, `%5F` with `%`, `.`, `$`, NUL, `_` (`decodeKey`).
 *    Example: `{"a.b": 1, "$where": 2, "50%": 3}` is stored as
 *    `{"a%2Eb": 1, "%24where": 2, "50%25": 3}`.
 * 2. **An array directly inside an array is stored as its JSON text** (a string):
 *    `{"box": [[1,2],[3,4]]}` is stored as `{"box": ["[1,2]", "[3,4]"]}`. FerretDB refuses nested
 *    arrays; arrays of objects are kept as they are.
 * 3. **Anything nested deeper than 32 levels is stored as its JSON text** (a string), at the
 *    level where the limit is reached. MongoDB refuses documents nested deeper than 100 levels.
 * 4. **Numbers that are not finite** (only `1e999`-style literals produce them) are stored as
 *    the strings `"Infinity"` / `"-Infinity"`; FerretDB refuses them.
 * 5. Keys such as `__proto__` and `constructor` are stored like any other key; they are copied
 *    onto objects without a prototype, so they can never change an object's behaviour.
 *
 * A document in which rule 2, 3 or 4 changed a value's type carries
 * `storage_notes: [{path, rule}]` (at most 20 entries; `path` is a JSON pointer into the client's
 * JSON, `rule` one of `nested_array_as_json`, `too_deep_as_json`, `non_finite_number_as_string`).
 * Key encoding (rule 1) is not noted: it is reversible and recognisable by the `%`.
 *
 * If a document is still refused (for example it would exceed MongoDB's 16 MB limit), a
 * *fallback document* is stored instead: the ids, `received_at`, `raw_body` and
 * `validation.errors` containing an entry with path `storage_fallback`. The record is kept, but
 * its normalised fields are missing; reprocess it from `raw_body`.
 *
 * `toStorable` returns a copy of `value` (parsed client JSON) rewritten by this rule. It is pure
 * and bounded: recursion stops at `maxDepth`, so even a hostile, deeply nested body cannot
 * overflow the stack.
 */
export function toStorable(value: unknown, opts: StorableOptions = {}): unknown {
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH
  const onRewrite = opts.onRewrite
  const walk = (v: unknown, depth: number, path: string, insideArray: boolean): unknown => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v
    if (typeof v === 'number') {
      if (Number.isFinite(v)) return v
      onRewrite?.(path, 'non_finite_number_as_string')
      return String(v)
    }
    if (typeof v !== 'object') return null // undefined, functions, bigints: never produced by JSON.parse
    if (Array.isArray(v)) {
      if (insideArray) {
        onRewrite?.(path, 'nested_array_as_json')
        return stringifyJson(v)
      }
      if (depth >= maxDepth) {
        onRewrite?.(path, 'too_deep_as_json')
        return stringifyJson(v)
      }
      const out = new Array<unknown>(v.length)
      for (let i = 0; i < v.length; i++) out[i] = walk(v[i], depth + 1, onRewrite ? pointer(path, i) : '', true)
      return out
    }
    if (depth >= maxDepth) {
      onRewrite?.(path, 'too_deep_as_json')
      return stringifyJson(v)
    }
    // No prototype: a key named __proto__ becomes a plain own property, never a prototype change.
    const out = Object.create(null) as Record<string, unknown>
    const src = v as Record<string, unknown>
    for (const key of Object.keys(src)) {
      const enc = encodeKey(key)
      const child = walk(src[key], depth + 1, onRewrite ? pointer(path, key) : '', false)
      Object.defineProperty(out, enc, { value: child, enumerable: true, writable: true, configurable: true })
    }
    return out
  }
  return walk(value, 0, opts.path ?? '', false)
}

type Frame = { arr: unknown[]; i: number } | { obj: Record<string, unknown>; keys: string[]; i: number; n: number }

/**
 * JSON.stringify without recursion (JSON.stringify overflows the stack at ~10k levels, which a
 * 5 MB body can exceed). With `sortKeys` the output is canonical: object keys in code-unit
 * order, no whitespace. Input is parsed JSON; other values are written as JSON.stringify would.
 */
export function stringifyJson(root: unknown, sortKeys = false): string {
  const out: string[] = []
  const stack: Frame[] = []
  const emit = (v: unknown) => {
    if (v !== null && typeof v === 'object') {
      if (Array.isArray(v)) {
        out.push('[')
        stack.push({ arr: v, i: 0 })
      } else {
        const obj = v as Record<string, unknown>
        const keys = Object.keys(obj).filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function')
        if (sortKeys) keys.sort()
        out.push('{')
        stack.push({ obj, keys, i: 0, n: 0 })
      }
      return
    }
    out.push(
      v === undefined || typeof v === 'function' || typeof v === 'symbol'
        ? 'null'
        : typeof v === 'bigint'
          ? v.toString()
          : JSON.stringify(v),
    )
  }
  emit(root)
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!
    if ('arr' in f) {
      if (f.i >= f.arr.length) {
        out.push(']')
        stack.pop()
        continue
      }
      if (f.i > 0) out.push(',')
      emit(f.arr[f.i++])
    } else {
      if (f.i >= f.keys.length) {
        out.push('}')
        stack.pop()
        continue
      }
      const key = f.keys[f.i++]!
      if (f.n++ > 0) out.push(',')
      out.push(JSON.stringify(key), ':')
      emit(f.obj[key])
    }
  }
  return out.join('')
}

/** Canonical JSON (sorted keys, no whitespace): equal values give equal text, whatever the formatting. */
export function canonicalJson(value: unknown): string {
  return stringifyJson(value, true)
}
