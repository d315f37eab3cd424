// Token actions: create (the token itself is returned exactly once; only its hash is stored),
// list (never with the hash) and revoke. Each change is pushed to the gateways' mirror.
import { isDuplicateKey, type TokenDoc, type WorkspaceDoc } from '../shared/mongo.ts'
import type { Permission } from '../shared/permissions.ts'
import { generateToken, hashToken, publishEntries, toEntry } from '../shared/token-registry.ts'
import { findWorkspace, type TokenAdminContext } from './context.ts'
import { TokenAdminError } from './errors.ts'
import {
  checkActor,
  checkTokenId,
  cleanText,
  MAX_LABEL,
  newTokenId,
  parseExpiry,
  parsePermissions,
  tokenStatus,
  type TokenStatus,
} from './rules.ts'

export interface CreateTokenInput {
  /** Workspace slug or id. */
  workspace: string
  /** Default: every permission. */
  permissions?: readonly string[]
  label?: string | null
  /** A Date, or an ISO 8601 string (a date-time without an offset is read as UTC). Must be in the future. */
  expiresAt?: Date | string | null
  actor: string
}

export interface CreatedToken {
  id: string
  /** The secret. Shown once: only its hash is stored. */
  token: string
  /** `${publicUrl}/ingest/${token}`: what a device is configured with. */
  dsn: string
  /** Workspace slug. */
  workspace: string
  workspace_id: string
  permissions: Permission[]
  label: string | null
  expires_at: string | null
  created_at: string
  /** False when the Redis mirror could not be written; gateways learn of the token at the next worker sync. */
  mirrored: boolean
}

export interface TokenInfo {
  id: string
  workspace_id: string
  /** Workspace slug; null if the workspace document is missing. */
  workspace: string | null
  workspace_active: boolean
  label: string | null
  permissions: Permission[]
  created_at: Date
  expires_at: Date | null
  revoked_at: Date | null
  status: TokenStatus
}

export interface RevokedToken {
  id: string
  workspace_id: string
  revoked_at: Date
  /** True when the token was already revoked before this call (the mirror is re-published anyway). */
  already_revoked: boolean
  mirrored: boolean
}

/** Pushes one token's entry to the mirror; whether the push was confirmed. */
export function mirrorToken(
  ctx: TokenAdminContext,
  action: string,
  doc: TokenDoc,
  ws: Pick<WorkspaceDoc, 'active' | 'updated_at' | 'rate_limit_per_minute'> | null,
  deadlineMs?: number,
): Promise<boolean> {
  return ctx.mirror(action, (r) => publishEntries(r, ctx.prefix, new Map([[doc.token_hash, toEntry(doc, ws)]])), deadlineMs)
}

export async function createToken(ctx: TokenAdminContext, input: CreateTokenInput): Promise<CreatedToken> {
  const actor = checkActor(input.actor)
  const permissions = parsePermissions(input.permissions)
  const label = cleanText(input.label, MAX_LABEL, 'bad_label', 'label')
  const created = ctx.now()
  const expires = input.expiresAt == null ? null : parseExpiry(input.expiresAt, created)
  const ws = await findWorkspace(ctx, input.workspace)
  const { doc, token } = await insertToken(ctx, { workspace_id: ws._id, label, permissions, created_at: created, expires_at: expires })
  const mirrored = await mirrorToken(ctx, 'token.create', doc, ws)
  await ctx.audit(actor, 'token.create', {
    token_id: doc._id,
    workspace_id: ws._id,
    slug: ws.slug,
    permissions,
    label,
    expires_at: expires,
  })
  return {
    id: doc._id,
    token,
    dsn: `${ctx.publicUrl}/ingest/${token}`,
    workspace: ws.slug,
    workspace_id: ws._id,
    permissions,
    label,
    expires_at: expires ? expires.toISOString() : null,
    created_at: created.toISOString(),
    mirrored,
  }
}

/** Stores a new token (its hash only) under fresh random id and secret. */
async function insertToken(
  ctx: TokenAdminContext,
  fields: Pick<TokenDoc, 'workspace_id' | 'label' | 'permissions' | 'created_at' | 'expires_at'>,
): Promise<{ doc: TokenDoc; token: string }> {
  for (let attempt = 0; ; attempt++) {
    const token = generateToken()
    // The field order is the one stored documents have always had.
    const doc: TokenDoc = {
      _id: newTokenId(),
      workspace_id: fields.workspace_id,
      token_hash: hashToken(token),
      label: fields.label,
      permissions: fields.permissions,
      created_at: fields.created_at,
      updated_at: fields.created_at,
      expires_at: fields.expires_at,
      revoked_at: null,
    }
    try {
      await ctx.c.tokens.insertOne(doc)
      return { doc, token }
    } catch (err) {
      // Only a random-id collision can land here; fresh randomness fixes it.
      if (!isDuplicateKey(err) || attempt >= 3) throw err
    }
  }
}

export async function listTokens(ctx: TokenAdminContext, opts: { workspace?: string } = {}): Promise<TokenInfo[]> {
  const filter: { workspace_id?: string } = {}
  const workspaces = new Map<string, WorkspaceDoc>()
  if (opts.workspace !== undefined) {
    const ws = await findWorkspace(ctx, opts.workspace)
    filter.workspace_id = ws._id
    workspaces.set(ws._id, ws)
  } else {
    for await (const w of ctx.c.workspaces.find({})) workspaces.set(w._id, w)
  }
  const t = ctx.now()
  const out: TokenInfo[] = []
  // The projection keeps the hash out of this process entirely, not just out of the result.
  for await (const tok of ctx.c.tokens.find(filter, { projection: { token_hash: 0 } }).sort({ created_at: 1, _id: 1 })) {
    const ws = workspaces.get(tok.workspace_id)
    out.push({
      id: tok._id,
      workspace_id: tok.workspace_id,
      workspace: ws?.slug ?? null,
      workspace_active: ws?.active === true,
      label: tok.label ?? null,
      permissions: tok.permissions,
      created_at: tok.created_at,
      expires_at: tok.expires_at ?? null,
      revoked_at: tok.revoked_at ?? null,
      status: tokenStatus(tok, t),
    })
  }
  return out
}

/** Revokes a token. Idempotent: a second call keeps the first revoked_at and re-publishes the entry. */
export async function revokeToken(ctx: TokenAdminContext, id: string, actor: string): Promise<RevokedToken> {
  checkActor(actor)
  checkTokenId(id, ': token ids look like t0123456789abcdef')
  const at = ctx.now()
  // The filter makes concurrent revocations agree on the first timestamp.
  const res = await ctx.c.tokens.updateOne({ _id: id, revoked_at: null }, { $set: { revoked_at: at, updated_at: at } })
  const doc = await ctx.c.tokens.findOne({ _id: id })
  if (!doc) throw new TokenAdminError('unknown_token', `unknown token "${id}"`)
  const already = res.modifiedCount === 0
  const ws = await ctx.c.workspaces.findOne({ _id: doc.workspace_id })
  const mirrored = await mirrorToken(ctx, 'token.revoke', doc, ws, ctx.revocationPushMs)
  await ctx.audit(actor, 'token.revoke', { token_id: id, workspace_id: doc.workspace_id, already_revoked: already })
  return { id, workspace_id: doc.workspace_id, revoked_at: doc.revoked_at ?? at, already_revoked: already, mirrored }
}
