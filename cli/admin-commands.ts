// `admin disable`, `admin reset-password` and `token rotate`: loaded by cli/run.ts only when one
// of them runs.
import type { Redis } from 'ioredis'
import type { Db } from 'mongodb'
import { disableAdminUser, resetAdminPassword } from '../admin/users.ts'
import { MAX_GRACE_MS, rotateToken, type RotatedToken } from '../admin/token-rotation.ts'
import type { TokenAdmin } from '../shared/token-admin.ts'
import { createdTokenBlock } from './format.ts'

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * A grace period: `0`, or a whole number with a unit (`90s`, `30m`, `1h`, `7d`), at most 90 days
 * like the panel's choices. Returns ms, or null when it is not one.
 */
export function parseGrace(raw: string): number | null {
  if (raw === '0') return 0
  const m = /^([1-9][0-9]{0,6})(s|m|h|d)$/.exec(raw)
  if (!m) return null
  const ms = Number(m[1]) * UNITS[m[2]!]!
  return ms <= MAX_GRACE_MS ? ms : null
}

export async function adminDisable(db: Db, email: string, actor: string) {
  const res = await disableAdminUser(db, email, actor)
  const human = `Admin "${res.email}" ${res.already_disabled ? 'was already disabled' : 'disabled'}; ${res.sessions_ended} session(s) ended.\n`
  return { res, human }
}

export async function adminResetPassword(db: Db, email: string, password: string, actor: string) {
  const res = await resetAdminPassword(db, email, password, actor)
  const human =
    `Password of "${res.email}" reset; ${res.sessions_ended} session(s) ended.\n` +
    (res.disabled ? 'The account is disabled: it cannot log in until it is enabled again.\n' : '')
  return { res, human }
}

export async function tokenRotate(
  deps: { db: Db; redis: Redis | null; prefix: string; admin: TokenAdmin },
  id: string,
  graceMs: number,
  actor: string,
): Promise<{ res: RotatedToken; json: Record<string, unknown>; human: string }> {
  const res = await rotateToken(deps, id, graceMs, actor)
  const { mirrored: _m, ...created } = res.created
  const json = { old_id: res.old_id, old_expires_at: res.old_expires_at, grace_ms: graceMs, old_mirrored: res.old_mirrored, new: created }
  const human =
    `Token ${res.old_id} rotated: ` +
    (graceMs === 0
      ? 'the old token stopped working now.\n\n'
      : `the old token works until ${res.old_expires_at.toISOString()}, then gets 403.\n\n`) +
    createdTokenBlock(res.created)
  return { res, json, human }
}
