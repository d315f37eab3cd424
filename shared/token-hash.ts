// The token hash, on its own so that the gateway can hash DSN tokens without importing
// token-registry.ts, whose MongoDB helpers load the driver (and bson's 17 MB serialisation
// buffer) into a process that never talks to MongoDB: measured, ~20 MB of idle RSS (bench T4).
import { createHash } from 'node:crypto'

/** Tokens are 256 random bits, so a plain SHA-256 is a safe, fast hash (no KDF needed). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}
