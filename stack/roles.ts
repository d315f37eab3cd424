// Per-role credentials of the local stack: which Redis user and which object-storage key each
// process gets. `.stack/env` holds every role's secrets (it is the developer's and the tests'
// file, mode 0600); a process is given only its own role's, as REDIS_URL / S3_ACCESS_KEY /
// S3_SECRET_KEY, by roleEnv(). The variable names are compose.yaml's (.env.example), so the two
// setups read alike.
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** The processes that get credentials. The CLI uses the admin panel's Redis user and S3 key (it deletes like the panel). */
export type Role = 'gateway' | 'worker' | 'admin' | 'cli'

const ROLE_VAR = /^(REDIS_(GATEWAY|WORKER|ADMIN)_PASSWORD|S3_(GATEWAY|WORKER|ADMIN)_(ACCESS|SECRET)_KEY|TEST_INSPECTOR_[A-Z0-9_]+)$/

/**
 * The environment for one process of `role`: `env` without any role's secrets or the inspector's,
 * plus REDIS_URL (with the role's user and password) and S3_ACCESS_KEY / S3_SECRET_KEY for that
 * role. When `env` holds no role secrets (the services were named from outside), it is passed on
 * unchanged: those are then the operator's credentials.
 */
export function roleEnv(env: Record<string, string | undefined>, role: Role): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !ROLE_VAR.test(k)) out[k] = v
  const who = role === 'cli' ? 'admin' : role
  const upper = who.toUpperCase()
  const password = env[`REDIS_${upper}_PASSWORD`]
  if (password && env.REDIS_URL) out.REDIS_URL = withUser(env.REDIS_URL, who, password)
  const key = env[`S3_${upper}_ACCESS_KEY`]
  const secret = env[`S3_${upper}_SECRET_KEY`]
  // Each process gets only what its config asks for (README "Configuration"): the gateway never
  // talks to MongoDB. The CLI touches object storage only to delete (`session delete`,
  // `workspace purge`), with the admin panel's key.
  const split = Object.keys(env).some((k) => ROLE_VAR.test(k))
  if (!split) return out
  if (role === 'gateway') delete out.MONGODB_URL
  if (key && secret) {
    out.S3_ACCESS_KEY = key
    out.S3_SECRET_KEY = secret
  }
  return out
}

/**
 * TEST ONLY: the environment with the stack's root credentials (Redis user `inspector`, the S3
 * root key), for tests and fault scenarios that seed or check state directly. Fails when the
 * stack wrote none, so that a test never silently falls back to an app role.
 */
export function inspectorEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out = roleEnv(env, 'admin')
  const { TEST_INSPECTOR_REDIS_URL: url, TEST_INSPECTOR_S3_ACCESS_KEY: key, TEST_INSPECTOR_S3_SECRET_KEY: secret } = env
  if (!url || !key || !secret) {
    // Services named from outside, with no roles at all: their credentials are all there is.
    if (!Object.keys(env).some((k) => ROLE_VAR.test(k))) return out
    throw new Error('TEST_INSPECTOR_* are missing from the environment (start the local stack, or set them)')
  }
  return { ...out, REDIS_URL: url, S3_ACCESS_KEY: key, S3_SECRET_KEY: secret }
}

function withUser(url: string, user: string, password: string): string {
  const u = new URL(url)
  u.username = user
  u.password = password
  return u.toString().replace(/\/$/, '')
}

export interface RoleSecrets {
  redis: { gateway: string; worker: string; admin: string; inspector: string }
  s3: Record<'gateway' | 'worker' | 'admin', { accessKey: string; secretKey: string }>
}

/** Random per stack dir, generated once (like the S3 root pair), so restarts keep old env files working. */
export async function loadOrCreateRoleSecrets(dir: string): Promise<RoleSecrets> {
  const file = join(dir, 'role-credentials.json')
  try {
    const c = JSON.parse(await readFile(file, 'utf8')) as RoleSecrets
    // Older files could hold a secret starting with "-", which mc reads as an option.
    if (c.redis?.inspector && Object.values(c.s3 ?? {}).length === 3 && Object.values(c.s3).every((p) => /^[A-Za-z0-9]/.test(p.secretKey)))
      return c
  } catch {
    // missing or corrupt: make new ones (Redis reads its ACL file and MinIO's users are set on every start)
  }
  // Hex: it goes into REDIS_URL unencoded (deploy/redis/start.sh's rule), and MinIO's secrets
  // are 8-40 characters of [A-Za-z0-9._~-] not starting with "-" (deploy/minio/init.sh's rule;
  // base64url made one start with "-" and mc took it for an option).
  const pw = () => randomBytes(24).toString('hex')
  const s3 = (name: string) => ({ accessKey: `rdt-${name}`, secretKey: randomBytes(20).toString('hex') })
  const secrets: RoleSecrets = {
    redis: { gateway: pw(), worker: pw(), admin: pw(), inspector: pw() },
    s3: { gateway: s3('gateway'), worker: s3('worker'), admin: s3('admin') },
  }
  await writeFile(file, JSON.stringify(secrets), { mode: 0o600 })
  return secrets
}

/** The role and inspector variables the launcher writes to `.stack/env`. */
export function roleVars(
  redisUrl: string,
  secrets: RoleSecrets,
  s3Root: { accessKey: string; secretKey: string },
  s3HasUsers: boolean,
): Record<string, string> {
  const out: Record<string, string> = {}
  for (const r of ['gateway', 'worker', 'admin'] as const) {
    out[`REDIS_${r.toUpperCase()}_PASSWORD`] = secrets.redis[r]
    // The Versity gateway cannot express the split (README "Least privilege"): root for all there.
    const pair = s3HasUsers ? secrets.s3[r] : s3Root
    out[`S3_${r.toUpperCase()}_ACCESS_KEY`] = pair.accessKey
    out[`S3_${r.toUpperCase()}_SECRET_KEY`] = pair.secretKey
  }
  out.TEST_INSPECTOR_REDIS_URL = withUser(redisUrl, 'inspector', secrets.redis.inspector)
  out.TEST_INSPECTOR_S3_ACCESS_KEY = s3Root.accessKey
  out.TEST_INSPECTOR_S3_SECRET_KEY = s3Root.secretKey
  return out
}
