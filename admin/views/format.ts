// Display helpers. Dates are shown in UTC (the server's and the analysts' reference), ISO-like.
import { decodeKey } from '../../shared/json-storage.ts'

export function fmtDate(d: unknown): string {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) return '—'
  return d
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z')
}

export function fmtAgo(d: unknown, now = new Date()): string {
  if (!(d instanceof Date)) return 'never'
  const s = Math.round((now.getTime() - d.getTime()) / 1000)
  if (s < 0) return 'in the future'
  if (s < 90) return `${s} s ago`
  if (s < 5400) return `${Math.round(s / 60)} min ago`
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`
  return `${Math.round(s / 86400)} days ago`
}

export function fmtBytes(n: unknown): string {
  if (typeof n !== 'number') return '—'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

/** Reverses the storage rule's key encoding (shared/json-storage.ts) throughout a stored value, for display and export. */
export function decodeKeys(value: unknown, depth = 0): unknown {
  if (depth > 64 || value === null || typeof value !== 'object') return value
  if (value instanceof Date) return value
  if (Array.isArray(value)) return value.map((v) => decodeKeys(v, depth + 1))
  const out = Object.create(null) as Record<string, unknown>
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    Object.defineProperty(out, decodeKey(k), { value: decodeKeys(v, depth + 1), enumerable: true, writable: true, configurable: true })
  }
  return out
}

/** Pretty JSON of a stored value with its keys decoded. */
export function prettyJson(value: unknown): string {
  return JSON.stringify(decodeKeys(value), null, 2) ?? 'null'
}

/** The exact body, pretty-printed when it parses as JSON, else as received. */
export function prettyBody(body: unknown): string {
  if (typeof body !== 'string') return ''
  try {
    return JSON.stringify(JSON.parse(body), null, 2)
  } catch {
    return body
  }
}

export const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)

/** A string-valued map from a stored document (result.results, images, flags), keys decoded. */
export function stringMap(v: unknown): Map<string, string> {
  const out = new Map<string, string>()
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return out
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val === 'string') out.set(decodeKey(k), val)
    else if (val !== null && val !== undefined) out.set(decodeKey(k), JSON.stringify(val))
  }
  return out
}
