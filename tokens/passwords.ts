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
