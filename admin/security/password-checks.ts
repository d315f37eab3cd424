// The log-in route's password checks: bounded in number (each scrypt check holds 128 MiB), and
// the same cost for an unknown account as for a real one.
import { randomBytes } from 'node:crypto'
import { AppError } from '../../shared/errors.ts'
import { hashPassword, verifyPassword, type PasswordHash } from '../../tokens/passwords.ts'

let dummy: Promise<PasswordHash> | undefined
/** Spends the same time as a real check, so an unknown email cannot be told apart by timing. */
export async function burnPasswordCheck(password: string, verify: typeof verifyPassword = verifyPassword): Promise<void> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'))
  await verify(password, await dummy)
}

/** The log-in route's password checks are all taken and the queue is full (answered 429). */
export class PasswordChecksBusy extends AppError {
  readonly code = 'password_checks_busy'
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
