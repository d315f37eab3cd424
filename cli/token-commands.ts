// `token create|list|revoke|rotate`.
import { TokenAdminError } from '../tokens/errors.ts'
import { MAX_GRACE_MS } from '../tokens/rotation.ts'
import { createdTokenBlock, shortDate, tokenTable } from './format.ts'
import { option, print, unconfirmed, type CommandContext, type CommandHandlers } from './io.ts'

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

async function rotate(cx: CommandContext): Promise<number | void> {
  const raw = option(cx.cmd, 'grace')!
  const graceMs = parseGrace(raw)
  if (graceMs === null) throw new TokenAdminError('bad_expiry', `invalid --grace "${raw}": use 0 or 90s, 30m, 1h, 7d … (at most 90 days)`)
  const res = await cx.admin.rotateToken(cx.cmd.args.id!, graceMs, cx.actor)
  const { mirrored: _m, ...created } = res.created
  const json = { old_id: res.old_id, old_expires_at: res.old_expires_at, grace_ms: graceMs, old_mirrored: res.old_mirrored, new: created }
  const human =
    `Token ${res.old_id} rotated: ` +
    (graceMs === 0
      ? 'the old token stopped working now.\n\n'
      : `the old token works until ${res.old_expires_at.toISOString()}, then gets 403.\n\n`) +
    createdTokenBlock(res.created)
  print(cx, json, human)
  // With no grace the old token stops now: like a revocation, an unconfirmed push is a failure.
  // (Rotating again is refused, the old token being expired: `token revoke` pushes it.)
  if (graceMs === 0 && !res.old_mirrored) return unconfirmed(cx.io, `the end of ${res.old_id}`, `npm run cli -- token revoke ${res.old_id}`)
}

export const tokenCommands: CommandHandlers<'token create' | 'token list' | 'token revoke' | 'token rotate'> = {
  'token create': async (cx) => {
    const permissions = option(cx.cmd, 'permissions')
    const created = await cx.admin.createToken({
      workspace: option(cx.cmd, 'workspace')!,
      permissions: permissions === undefined ? undefined : permissions.split(','),
      label: option(cx.cmd, 'label'),
      expiresAt: option(cx.cmd, 'expires'),
      actor: cx.actor,
    })
    const { mirrored: _mirrored, ...out } = created
    print(cx, out, createdTokenBlock(created))
  },
  'token list': async (cx) => {
    const list = await cx.admin.listTokens({ workspace: option(cx.cmd, 'workspace') })
    print(cx, list, tokenTable(list))
  },
  'token revoke': async (cx) => {
    const res = await cx.admin.revokeToken(cx.cmd.args.id!, cx.actor)
    const human = res.already_revoked
      ? `Token ${res.id} was already revoked (at ${shortDate(res.revoked_at)}).\n`
      : `Token ${res.id} revoked.\n`
    print(cx, res, human)
    if (!res.mirrored) return unconfirmed(cx.io, `the revocation of ${res.id}`, `npm run cli -- token revoke ${res.id}`)
  },
  'token rotate': rotate,
}
