// Reading environment variables into typed settings. Every reader names the variable in its
// error, so an operator never chases a vague crash later; each process's loader (gateway/config.ts,
// worker/config.ts, admin/config.ts, cli/config.ts) runs once, at start.
import { AppError } from './errors.ts'

export type Env = Record<string, string | undefined>

export class ConfigError extends AppError {
  readonly code = 'invalid_config'

  constructor(
    /** The environment variable at fault. */
    readonly variable: string,
    why: string,
  ) {
    super(`invalid configuration: ${variable} ${why}`)
  }
}

export function fail(name: string, why: string): never {
  throw new ConfigError(name, why)
}

/** A whole-number variable with bounds. */
export function int(env: Env, name: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return def
  if (!/^\d+$/.test(raw)) fail(name, `must be a whole number, got "${raw}"`)
  const n = Number(raw)
  if (n < min || n > max) fail(name, `must be between ${min} and ${max}, got ${n}`)
  return n
}

/** A fraction in [0, 1], e.g. 0.9. */
export function fraction(env: Env, name: string, def: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return def
  if (!/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(raw)) fail(name, `must be a number from 0 to 1 (e.g. 0.9), got "${raw}"`)
  return Number(raw)
}

/** A required URL (unless it has a default) with one of the given protocols. */
export function url(env: Env, name: string, protocols: string[], def?: string): string {
  const raw = env[name] || def
  if (!raw) fail(name, 'is required (run `npm run stack`, or set it)')
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    fail(name, 'is not a valid URL')
  }
  if (!protocols.includes(u.protocol)) fail(name, `must use ${protocols.join(' or ')}`)
  return raw
}

/** A required non-empty string. */
export function required(env: Env, name: string): string {
  return env[name] || fail(name, 'is required')
}
