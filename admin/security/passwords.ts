// Admin passwords: scrypt (memory-hard, built into Node), parameters stored with each hash so
// they can be raised later without invalidating existing hashes.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'

export interface PasswordHash {
  alg: 'scrypt'
  N: number
  r: number
  p: number
  /** base64 */
  salt: string
  /** base64, KEY_LEN bytes */
  hash: string
}

/**
 * N=2^17, r=8: 128 * N * r = 128 MiB of memory per hash, about 0.5 s on one core here (OWASP's
 * minimum for scrypt). A stored hash with weaker parameters is upgraded at the next successful
 * log-in (needsRehash).
 */
export const SCRYPT_PARAMS = { N: 2 ** 17, r: 8, p: 1 } as const
export type ScryptParams = { N: number; r: number; p: number }
const KEY_LEN = 32
export const MIN_PASSWORD_LENGTH = 12
export const MAX_PASSWORD_LENGTH = 1024

function scrypt(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  // maxmem must exceed 128*N*r, or Node refuses; twice that leaves room for the rest.
  const opts: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 2 * 128 * params.N * params.r + 1024 * 1024 }
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize('NFKC'), salt, KEY_LEN, opts, (err, key) => (err ? reject(err) : resolve(key))),
  )
}

export function checkPasswordPolicy(password: string): string | null {
  if (password.length < MIN_PASSWORD_LENGTH) return `the password must have at least ${MIN_PASSWORD_LENGTH} characters`
  if (password.length > MAX_PASSWORD_LENGTH) return `the password must have at most ${MAX_PASSWORD_LENGTH} characters`
  return null
}

export async function hashPassword(password: string, params: ScryptParams = SCRYPT_PARAMS): Promise<PasswordHash> {
  const salt = randomBytes(16)
  const key = await scrypt(password, salt, params)
  return { alg: 'scrypt', N: params.N, r: params.r, p: params.p, salt: salt.toString('base64'), hash: key.toString('base64') }
}

/** True when a stored hash was made with weaker parameters than today's (it is rehashed at log-in). */
export function needsRehash(stored: PasswordHash): boolean {
  return stored?.alg !== 'scrypt' || stored.N < SCRYPT_PARAMS.N || stored.r < SCRYPT_PARAMS.r || stored.p < SCRYPT_PARAMS.p
}

/** Constant-time comparison; a malformed stored hash simply fails. */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  if (stored?.alg !== 'scrypt' || password.length > MAX_PASSWORD_LENGTH) return false
  const expected = Buffer.from(stored.hash, 'base64')
  if (expected.length !== KEY_LEN) return false
  // Parameters come from the database: refuse absurd ones rather than allocate gigabytes.
  if (
    !Number.isInteger(stored.N) ||
    stored.N < 2 ||
    stored.N > 2 ** 20 ||
    (stored.N & (stored.N - 1)) !== 0 ||
    !(stored.r >= 1 && stored.r <= 32) ||
    !(stored.p >= 1 && stored.p <= 16)
  )
    return false
  const key = await scrypt(password, Buffer.from(stored.salt, 'base64'), stored)
  return timingSafeEqual(key, expected)
}

let dummy: Promise<PasswordHash> | undefined
/** Spends the same time as a real check, so an unknown email cannot be told apart by timing. */
export async function burnPasswordCheck(password: string, verify: typeof verifyPassword = verifyPassword): Promise<void> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'))
  await verify(password, await dummy)
}

export class PasswordChecksBusy extends Error {
  override name = 'PasswordChecksBusy'
}

/**
 * Every scrypt check of the log-in route goes through here: at most `maxInFlight` run at once
 * (each holds 128 MiB), up to `maxWaiting` more wait their turn, and past that the attempt is
 * refused (PasswordChecksBusy, answered 429) instead of queueing without bound. `verified`
 * counts the checks actually run, real or burnt.
 */
export function createPasswordChecks(opts: { maxInFlight: number; maxWaiting?: number; verify?: typeof verifyPassword }) {
  const verify = opts.verify ?? verifyPassword
  const maxWaiting = opts.maxWaiting ?? 64
  let running = 0
  const waiting: (() => void)[] = []
  const stats = { verified: 0, refused: 0 }
  async function slot<T>(fn: () => Promise<T>): Promise<T> {
    if (running >= opts.maxInFlight) {
      if (waiting.length >= maxWaiting) {
        stats.refused++
        throw new PasswordChecksBusy('too many log-ins being checked')
      }
      await new Promise<void>((resolve) => waiting.push(resolve))
    } else running++
    try {
      return await fn()
    } finally {
      const next = waiting.shift()
      if (next)
        next() // the slot passes straight to the next in line
      else running--
    }
  }
  return {
    stats,
    verify: (password: string, stored: PasswordHash) => slot(() => (stats.verified++, verify(password, stored))),
    /** Same cost as a real check, for an unknown or disabled account. */
    burn: (password: string) => slot(async () => (stats.verified++, await burnPasswordCheck(password, verify), false)),
    /** A new hash (the rehash at log-in), in the same slots. */
    hash: (password: string) => slot(() => hashPassword(password)),
  }
}

export type PasswordChecks = ReturnType<typeof createPasswordChecks>
