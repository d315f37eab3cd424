// What a workspace slug, a permission list, an expiry, a name or a label may be, and the shape of
// generated ids. Pure functions: every refusal is a TokenAdminError with its code.
import { randomBytes } from 'node:crypto'
import type { TokenDoc } from '../shared/mongo.ts'
import { PERMISSIONS, type Permission } from '../shared/permissions.ts'
import { TokenAdminError } from './errors.ts'

/** Lower-case, so a slug is safe in URLs and file names; the 63-char cap matches a DNS label. */
export const SLUG_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/
/** Generated ids. Workspace ids are object-key prefixes, so they must start with 'w' and stay in [0-9a-z]. */
export const WORKSPACE_ID_PATTERN = /^w[0-9a-f]{16}$/
export const TOKEN_ID_PATTERN = /^t[0-9a-f]{16}$/
export const MAX_NAME = 200
export const MAX_LABEL = 200
/** Upper bound for a per-workspace limit: far above any real clinic, low enough to stay a number operators meant. */
export const MAX_RATE_LIMIT_PER_MINUTE = 1_000_000

export const newWorkspaceId = (): string => 'w' + randomBytes(8).toString('hex')
export const newTokenId = (): string => 't' + randomBytes(8).toString('hex')

export type TokenStatus = 'active' | 'revoked' | 'expired'

export function validateSlug(slug: unknown): string {
  if (typeof slug !== 'string' || !SLUG_PATTERN.test(slug)) {
    throw new TokenAdminError(
      'bad_slug',
      `invalid slug ${JSON.stringify(slug)}: use 1-63 of a-z, 0-9 and '-', starting with a letter or digit`,
    )
  }
  // A slug shaped like a workspace id would make "slug or id" lookups ambiguous.
  if (WORKSPACE_ID_PATTERN.test(slug)) {
    throw new TokenAdminError('bad_slug', `invalid slug "${slug}": it looks like a workspace id`)
  }
  return slug
}

/** Validates and normalises a permission list: known names only, no duplicates, canonical order. */
export function parsePermissions(input: readonly string[] | string | undefined): Permission[] {
  if (input === undefined) return [...PERMISSIONS]
  const list = (typeof input === 'string' ? input.split(',') : [...input]).map((p) => String(p).trim()).filter((p) => p !== '')
  if (list.length === 0) throw new TokenAdminError('bad_permission', `no permission given; choose from ${PERMISSIONS.join(', ')}`)
  for (const p of list) {
    if (!(PERMISSIONS as readonly string[]).includes(p)) {
      throw new TokenAdminError('bad_permission', `unknown permission "${p}"; choose from ${PERMISSIONS.join(', ')}`)
    }
  }
  return PERMISSIONS.filter((p) => list.includes(p))
}

/** A per-token rate limit: requests per minute, 0 = no limit, null = the gateway default. */
export function checkRateLimit(perMinute: number | null): number | null {
  if (perMinute !== null && (!Number.isSafeInteger(perMinute) || perMinute < 0 || perMinute > MAX_RATE_LIMIT_PER_MINUTE)) {
    throw new TokenAdminError(
      'bad_rate_limit',
      `invalid rate limit ${JSON.stringify(perMinute)}: use a whole number of requests per minute from 0 (no limit) to ${MAX_RATE_LIMIT_PER_MINUTE}, or "default"`,
    )
  }
  return perMinute
}

const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i

/**
 * Parses an expiry. Accepts ISO 8601 calendar dates and date-times (`2030-01-31`,
 * `2030-01-31T12:00Z`, `2030-01-31T12:00:00.000+02:00`). Without an offset the time is UTC,
 * so the result does not depend on the machine's time zone. The instant must be in the future.
 */
export function parseExpiry(input: Date | string, now: Date = new Date()): Date {
  const date = input instanceof Date ? input : parseIsoInstant(String(input).trim())
  if (Number.isNaN(date.getTime())) throw new TokenAdminError('bad_expiry', 'invalid expiry: not a date')
  if (date.getTime() <= now.getTime()) {
    throw new TokenAdminError('bad_expiry', `invalid expiry ${date.toISOString()}: it must be in the future`)
  }
  return date
}

function parseIsoInstant(s: string): Date {
  const m = ISO_8601.exec(s)
  if (!m) throw new TokenAdminError('bad_expiry', `invalid expiry "${s}": use ISO 8601, e.g. 2030-01-31 or 2030-01-31T12:00:00Z`)
  const [, y, mo, d, h = '00', mi = '00', sec = '00', frac = '', off = 'Z'] = m
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec)] as const
  const utc = new Date(Date.UTC(...fields))
  utc.setUTCFullYear(fields[0]) // Date.UTC maps years 0-99 to 1900-1999
  // Reject dates that Date would silently roll over (2030-02-30 -> March 2).
  const ok =
    utc.getUTCFullYear() === fields[0] &&
    utc.getUTCMonth() === fields[1] &&
    utc.getUTCDate() === fields[2] &&
    utc.getUTCHours() === fields[3] &&
    utc.getUTCMinutes() === fields[4] &&
    utc.getUTCSeconds() === fields[5]
  if (!ok) throw new TokenAdminError('bad_expiry', `invalid expiry "${s}": no such date or time`)
  return new Date(utc.getTime() + Number(frac.padEnd(3, '0').slice(0, 3)) - offsetMinutes(s, off) * 60_000)
}

/** Minutes east of UTC of an ISO 8601 offset (`Z`, `+02`, `-05:30`, `+0530`). */
function offsetMinutes(s: string, off: string): number {
  if (off.toUpperCase() === 'Z') return 0
  const om = /^([+-])(\d{2}):?(\d{2})?$/.exec(off)!
  const hours = Number(om[2])
  const mins = Number(om[3] ?? '0')
  if (hours > 23 || mins > 59) throw new TokenAdminError('bad_expiry', `invalid expiry "${s}": bad UTC offset`)
  return (om[1] === '-' ? -1 : 1) * (hours * 60 + mins)
}

export function tokenStatus(t: Pick<TokenDoc, 'revoked_at' | 'expires_at'>, now: Date = new Date()): TokenStatus {
  if (t.revoked_at) return 'revoked'
  if (t.expires_at && t.expires_at.getTime() <= now.getTime()) return 'expired'
  return 'active'
}

export function checkActor(actor: unknown): string {
  if (typeof actor !== 'string' || actor.trim() === '') throw new TokenAdminError('bad_actor', 'an actor is required for the audit log')
  return actor
}

/** `hint` follows the refusal's message (e.g. what a token id looks like). */
export function checkTokenId(id: unknown, hint = ''): string {
  if (typeof id !== 'string' || !TOKEN_ID_PATTERN.test(id))
    throw new TokenAdminError('bad_token_id', `invalid token id ${JSON.stringify(id)}${hint}`)
  return id
}

export function cleanText(value: string | null | undefined, max: number, code: 'bad_name' | 'bad_label', what: string): string | null {
  if (value == null) return null
  if (typeof value !== 'string') throw new TokenAdminError(code, `${what} must be text`)
  const v = value.trim()
  if (v.length > max) throw new TokenAdminError(code, `${what} is too long (at most ${max} characters)`)
  if (/[\u0000-\u001f\u007f]/.test(v)) throw new TokenAdminError(code, `${what} must not contain control characters`)
  return v === '' ? null : v
}
