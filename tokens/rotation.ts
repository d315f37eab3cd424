// Token rotation: issue a new token with the old one's workspace, permissions and label, and
// let the old one keep working for a grace period by moving its expiry to now + grace (never
// later than an expiry it already had). The old token's mirror entry is re-published, so every
// gateway applies the new expiry at once.
import type { TokenAdminContext } from './context.ts'
import { TokenAdminError } from './errors.ts'
import { QUICK_PUSH_MS, REVOCATION_PUSH_MS } from './mirror.ts'
import { checkTokenId, tokenStatus } from './rules.ts'
import { createToken, mirrorToken, type CreatedToken } from './tokens.ts'

export const MAX_GRACE_MS = 90 * 86400_000

export interface RotatedToken {
  created: CreatedToken
  old_id: string
  old_expires_at: Date
  old_mirrored: boolean
}

export async function rotateToken(ctx: TokenAdminContext, id: string, graceMs: number, actor: string): Promise<RotatedToken> {
  checkTokenId(id)
  if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_GRACE_MS)
    throw new TokenAdminError('bad_expiry', 'the grace period must be between 0 and 90 days')
  const now = ctx.now()
  const old = await ctx.c.tokens.findOne({ _id: id })
  if (!old) throw new TokenAdminError('unknown_token', `unknown token "${id}"`)
  if (tokenStatus(old, now) !== 'active')
    throw new TokenAdminError('unknown_token', `token ${id} is ${tokenStatus(old, now)}; only an active token can be rotated`)

  // The new token first: if anything below fails, the old one still works and nothing is lost.
  const created = await createToken(ctx, { workspace: old.workspace_id, permissions: old.permissions, label: old.label, actor })
  let expires = new Date(now.getTime() + graceMs)
  if (old.expires_at && old.expires_at < expires) expires = old.expires_at
  await ctx.c.tokens.updateOne({ _id: id, revoked_at: null }, { $set: { expires_at: expires, updated_at: now } })
  const doc = (await ctx.c.tokens.findOne({ _id: id }))!
  const ws = await ctx.c.workspaces.findOne({ _id: doc.workspace_id })
  // With no grace period the old token stops now, which takes access away like a revocation.
  const mirrored = await mirrorToken(ctx, 'token.rotate', doc, ws, graceMs === 0 ? REVOCATION_PUSH_MS : QUICK_PUSH_MS)
  await ctx.c.audit.insertOne({
    at: now,
    actor,
    action: 'token.rotate',
    target: { token_id: id, new_token_id: created.id, workspace_id: doc.workspace_id, grace_ms: graceMs, old_expires_at: expires },
  })
  return { created, old_id: id, old_expires_at: expires, old_mirrored: mirrored }
}
