import { createHash } from 'node:crypto'
import { readFile, rm, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { repoRoot } from './paths.ts'

/**
 * The local stack's Redis users come from the same template compose.yaml uses
 * (deploy/redis/users.acl.in, rendered there by deploy/redis/start.sh), so the tests prove
 * exactly the rights production grants. This renders it the way start.sh does, with two local
 * differences:
 *
 * - The key prefix is a pattern, `{*}` by default: every test file (and fault scenario) runs
 *   under its own `{t…}` prefix on one Redis, so the patterns must accept any hash-tagged
 *   prefix. Within a prefix the rights are the template's own: e.g. the gateway can read but not
 *   write `<prefix>:tokens`, and cannot touch `<prefix>:admin:*` or a key without a prefix.
 * - One more user, `inspector`, with every right: tests and fault scenarios use it to set up
 *   and check state (TEST_INSPECTOR_REDIS_URL). No app process ever gets it.
 */
export const ACL_TEMPLATE = join(repoRoot, 'deploy', 'redis', 'users.acl.in')

export interface RedisPasswords {
  gateway: string
  worker: string
  admin: string
  inspector: string
}

export function renderAcl(template: string, prefixPattern: string, pw: RedisPasswords): string {
  // start.sh refuses glob characters in REDIS_PREFIX; here `*` is the point (see above), and
  // anything else that is special in an ACL line is still refused.
  if (!/^[A-Za-z0-9{}_*-]{1,64}$/.test(prefixPattern)) throw new Error(`bad Redis key prefix pattern "${prefixPattern}"`)
  const hash = (s: string) => createHash('sha256').update(s).digest('hex')
  const lines = template
    .split('\n')
    .filter((l) => !/^\s*(#|$)/.test(l))
    .map((l) =>
      l
        .replaceAll('{{PREFIX}}', prefixPattern)
        // `{*}` already matches every shard's prefix ({t1:2} too); a fixed prefix gets deploy/redis/start.sh's pattern.
        .replaceAll('{{SHARDS}}', prefixPattern.includes('*') ? prefixPattern : prefixPattern.replace(/}$/, ':*}'))
        .replaceAll('{{REDIS_GATEWAY_PASSWORD}}', hash(pw.gateway))
        .replaceAll('{{REDIS_WORKER_PASSWORD}}', hash(pw.worker))
        .replaceAll('{{REDIS_ADMIN_PASSWORD}}', hash(pw.admin)),
    )
  if (lines.some((l) => l.includes('{{'))) throw new Error(`${ACL_TEMPLATE} has a placeholder the local stack does not fill`)
  lines.push(`user inspector on #${hash(pw.inspector)} ~* &* +@all`)
  return `${lines.join('\n')}\n`
}

/** Writes `<dir>/redis-users.acl` (mode 0600; it holds only password hashes) and returns its path. */
export async function writeAclFile(dir: string, prefixPattern: string, pw: RedisPasswords): Promise<string> {
  const file = join(dir, 'redis-users.acl')
  const text = renderAcl(await readFile(ACL_TEMPLATE, 'utf8'), prefixPattern, pw)
  await rm(`${file}.tmp`, { force: true })
  await writeFile(`${file}.tmp`, text, { mode: 0o600 })
  await rename(`${file}.tmp`, file)
  return file
}
