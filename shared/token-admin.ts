// Token and workspace administration, shared by the CLI and (later) the admin web panel.
// MongoDB is the source of truth: every change is written there first, then mirrored to Redis
// and announced on the change channel (publishEntries / republishWorkspace) so that gateways
// drop their cached copies within a second. If the mirror write fails (Redis down), the change
// still stands: workers re-sync the whole mirror periodically (syncTokenMirror), so the failure
// is reported through `onMirrorError` instead of failing the admin action after the fact.
//
// This module does no console I/O and never returns a token hash; a token itself is returned
// exactly once, by createToken.
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Db } from 'mongodb'
import { collections, isDuplicateKey, type TokenDoc, type WorkspaceDoc } from './mongo.ts'
import {
  generateToken,
  hashToken,
  PERMISSIONS,
  publishEntries,
  republishWorkspace,
  toEntry,
  type Permission,
  type TokenEntry,
} from './token-registry.ts'

export type TokenAdminErrorCode =
  | 'unknown_workspace'
  | 'unknown_token'
  | 'duplicate_slug'
  | 'bad_slug'
  | 'bad_name'
  | 'bad_label'
  | 'bad_permission'
  | 'bad_expiry'
  | 'bad_token_id'
  | 'bad_actor'
  | 'bad_rate_limit'

/** A refused admin action. `message` is meant for the operator; `code` for programs (e.g. HTTP status mapping). */
export class TokenAdminError extends Error {
  override name = 'TokenAdminError'
  constructor(
    readonly code: TokenAdminErrorCode,
    message: string,
  ) {
    super(message)
  }
}

/** Lower-case, so a slug is safe in URLs and file names; the 63-char cap matches a DNS label. */
export const SLUG_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/
/** Generated ids. Workspace ids are object-key prefixes, so they must start with 'w' and stay in [0-9a-z]. */
export const WORKSPACE_ID_PATTERN = /^w[0-9a-f]{16}$/
export const TOKEN_ID_PATTERN = /^t[0-9a-f]{16}$/
const MAX_NAME = 200
const MAX_LABEL = 200

export const newWorkspaceId = (): string => 'w' + randomBytes(8).toString('hex')
export const newTokenId = (): string => 't' + randomBytes(8).toString('hex')

export interface TokenAdminDeps {
  db: Db
  /** null: no mirror writes at all (each one is reported through onMirrorError), e.g. for read-only use. */
  redis: Redis | null
  /** Redis key prefix (config.redisPrefix). */
  prefix: string
  /** Base URL printed in DSNs (config.publicUrl); a trailing slash is ignored. */
  publicUrl: string
  /** Called when MongoDB was updated but the Redis mirror was not; a worker's periodic sync will repair it. */
  onMirrorError?: (err: unknown, action: string) => void
  /** Clock, for tests. */
  now?: () => Date
  /** How long a change that takes access away retries its mirror push; default REVOCATION_PUSH_MS. */
  revocationPushMs?: number
}

/** Retry window of a mirror push that takes access away (revoke, deactivate): see pushToMirror. */
export const REVOCATION_PUSH_MS = 10_000
/** Retry window of any other mirror push: a delay there only makes a new token or setting wait for the sync. */
export const QUICK_PUSH_MS = 1_500

/**
 * Pushes a change to the gateways' mirror (write + announce, one script), retrying with a capped
 * backoff until `deadlineMs` has passed. A change that takes access away gets REVOCATION_PUSH_MS:
 * until it is pushed a gateway may still hold the old entry, so the caller must learn whether it
 * was confirmed. Unconfirmed, it is applied at the next worker sync (TOKEN_SYNC_INTERVAL_MS).
 */
export async function pushToMirror(
  redis: Redis | null,
  fn: (redis: Redis) => Promise<void>,
  deadlineMs: number,
): Promise<{ ok: true } | { ok: false; error: unknown }> {
  const deadline = Date.now() + deadlineMs
  let error: unknown = new Error('no Redis connection')
  for (let attempt = 0; redis; attempt++) {
    try {
      await fn(redis)
      return { ok: true }
    } catch (err) {
      error = err
    }
    const delay = Math.min(100 * 2 ** attempt, 1000)
    // 'end': the client gave up reconnecting, so nothing would answer a retry.
    if (redis.status === 'end' || Date.now() + delay > deadline) break
    await new Promise((resolve) => setTimeout(resolve, delay))
  }
  return { ok: false, error }
}

export interface WorkspaceInfo {
  id: string
  slug: string
  name: string
  active: boolean
  created_at: Date
  updated_at: Date
  /** Per-token requests per minute for this workspace; null = the gateway default (RATE_LIMIT_PER_MINUTE), 0 = no limit. */
  rate_limit_per_minute: number | null
}

export interface WorkspaceListItem extends WorkspaceInfo {
  /** Tokens neither revoked nor expired. */
  active_tokens: number
  tokens: number
}

export interface WorkspaceActivation extends WorkspaceInfo {
  /** False when the workspace already had the requested state (the mirror is re-published anyway). */
  changed: boolean
  /** How many token entries were re-mirrored; null when the mirror write failed. */
  tokens_republished: number | null
}

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

export type TokenStatus = 'active' | 'revoked' | 'expired'

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

export interface WorkspaceRateLimit extends WorkspaceInfo {
  /** The setting before this call. */
  previous_rate_limit_per_minute: number | null
  /** How many token entries were re-mirrored; null when the mirror write failed. */
  tokens_republished: number | null
}

/** Upper bound for a per-workspace limit: far above any real clinic, low enough to stay a number operators meant. */
export const MAX_RATE_LIMIT_PER_MINUTE = 1_000_000

export interface RenameInput {
  name?: string
  slug?: string
}

export function validateSlug(slug: unknown): string {
  if (typeof slug !== 'string' || !SLUG_PATTERN.test(slug)) {
    throw new TokenAdminError(
      'bad_slug',
      `invalid slug ${JSON.stringify(slug)}: use 1-63 of a-z, 0-9 and '-', starting with a letter or digit`,
    )
  }
  // A slug shaped like a workspace id would make "slug or id" lookups ambiguous.
  if (WORKSPACE_ID_PATTERN.test(slug)) {
    throw new TokenAdminError('bad_slug', `invalid slug "${slug}": it looks like a workspace id`)
  }
  return slug
}

/** Validates and normalises a permission list: known names only, no duplicates, canonical order. */
export function parsePermissions(input: readonly string[] | string | undefined): Permission[] {
  if (input === undefined) return [...PERMISSIONS]
  const list = (typeof input === 'string' ? input.split(',') : [...input]).map((p) => String(p).trim()).filter((p) => p !== '')
  if (list.length === 0) throw new TokenAdminError('bad_permission', `no permission given; choose from ${PERMISSIONS.join(', ')}`)
  for (const p of list) {
    if (!(PERMISSIONS as readonly string[]).includes(p)) {
      throw new TokenAdminError('bad_permission', `unknown permission "${p}"; choose from ${PERMISSIONS.join(', ')}`)
    }
  }
  return PERMISSIONS.filter((p) => list.includes(p))
}

const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i

/**
 * Parses an expiry. Accepts ISO 8601 calendar dates and date-times (`2030-01-31`,
 * `2030-01-31T12:00Z`, `2030-01-31T12:00:00.000+02:00`). Without an offset the time is UTC,
 * so the result does not depend on the machine's time zone. The instant must be in the future.
 */
export function parseExpiry(input: Date | string, now: Date = new Date()): Date {
  let date: Date
  if (input instanceof Date) {
    date = input
  } else {
    const s = String(input).trim()
    const m = ISO_8601.exec(s)
    if (!m) throw new TokenAdminError('bad_expiry', `invalid expiry "${s}": use ISO 8601, e.g. 2030-01-31 or 2030-01-31T12:00:00Z`)
    const [, y, mo, d, h = '00', mi = '00', sec = '00', frac = '', off = 'Z'] = m
    const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec)] as const
    const utc = new Date(Date.UTC(...fields))
    utc.setUTCFullYear(fields[0]) // Date.UTC maps years 0-99 to 1900-1999
    // Reject dates that Date would silently roll over (2030-02-30 -> March 2).
    const ok =
      utc.getUTCFullYear() === fields[0] &&
      utc.getUTCMonth() === fields[1] &&
      utc.getUTCDate() === fields[2] &&
      utc.getUTCHours() === fields[3] &&
      utc.getUTCMinutes() === fields[4] &&
      utc.getUTCSeconds() === fields[5]
    if (!ok) throw new TokenAdminError('bad_expiry', `invalid expiry "${s}": no such date or time`)
    let offsetMin = 0
    if (off.toUpperCase() !== 'Z') {
      const om = /^([+-])(\d{2}):?(\d{2})?$/.exec(off)!
      const hours = Number(om[2])
      const mins = Number(om[3] ?? '0')
      if (hours > 23 || mins > 59) throw new TokenAdminError('bad_expiry', `invalid expiry "${s}": bad UTC offset`)
      offsetMin = (om[1] === '-' ? -1 : 1) * (hours * 60 + mins)
    }
    date = new Date(utc.getTime() + Number(frac.padEnd(3, '0').slice(0, 3)) - offsetMin * 60_000)
  }
  if (Number.isNaN(date.getTime())) throw new TokenAdminError('bad_expiry', 'invalid expiry: not a date')
  if (date.getTime() <= now.getTime()) {
    throw new TokenAdminError('bad_expiry', `invalid expiry ${date.toISOString()}: it must be in the future`)
  }
  return date
}

export function tokenStatus(t: Pick<TokenDoc, 'revoked_at' | 'expires_at'>, now: Date = new Date()): TokenStatus {
  if (t.revoked_at) return 'revoked'
  if (t.expires_at && t.expires_at.getTime() <= now.getTime()) return 'expired'
  return 'active'
}

function checkActor(actor: unknown): string {
  if (typeof actor !== 'string' || actor.trim() === '') throw new TokenAdminError('bad_actor', 'an actor is required for the audit log')
  return actor
}

function cleanText(value: string | null | undefined, max: number, code: 'bad_name' | 'bad_label', what: string): string | null {
  if (value == null) return null
  if (typeof value !== 'string') throw new TokenAdminError(code, `${what} must be text`)
  const v = value.trim()
  if (v.length > max) throw new TokenAdminError(code, `${what} is too long (at most ${max} characters)`)
  if (/[\u0000-\u001f\u007f]/.test(v)) throw new TokenAdminError(code, `${what} must not contain control characters`)
  return v === '' ? null : v
}

const wsInfo = (w: WorkspaceDoc): WorkspaceInfo => ({
  id: w._id,
  slug: w.slug,
  name: w.name,
  active: w.active,
  created_at: w.created_at,
  updated_at: w.updated_at,
  rate_limit_per_minute: w.rate_limit_per_minute ?? null,
})

export type TokenAdmin = ReturnType<typeof createTokenAdmin>

export function createTokenAdmin(deps: TokenAdminDeps) {
  const { db, redis, prefix } = deps
  const c = collections(db)
  const publicUrl = deps.publicUrl.replace(/\/+$/, '')
  const now = deps.now ?? (() => new Date())
  const revocationPushMs = deps.revocationPushMs ?? REVOCATION_PUSH_MS

  async function audit(actor: string, action: string, target: Record<string, unknown>): Promise<void> {
    await c.audit.insertOne({ at: now(), actor, action, target })
  }

  async function mirror(action: string, fn: (redis: Redis) => Promise<void>, deadlineMs = QUICK_PUSH_MS): Promise<boolean> {
    const res = await pushToMirror(redis, fn, deadlineMs)
    if (!res.ok) deps.onMirrorError?.(res.error, action)
    return res.ok
  }

  async function findWorkspace(slugOrId: string): Promise<WorkspaceDoc> {
    if (typeof slugOrId !== 'string' || slugOrId === '') throw new TokenAdminError('unknown_workspace', 'no workspace given')
    // Slugs can never look like ids (validateSlug), so the shape says which field to query.
    const ws = WORKSPACE_ID_PATTERN.test(slugOrId)
      ? await c.workspaces.findOne({ _id: slugOrId })
      : SLUG_PATTERN.test(slugOrId)
        ? await c.workspaces.findOne({ slug: slugOrId })
        : null
    if (!ws) throw new TokenAdminError('unknown_workspace', `unknown workspace "${slugOrId}"`)
    return ws
  }

  async function slugTaken(slug: string): Promise<boolean> {
    return (await c.workspaces.countDocuments({ slug }, { limit: 1 })) > 0
  }

  async function createWorkspace(slug: string, opts: { name?: string | null; actor: string }): Promise<WorkspaceInfo> {
    const actor = checkActor(opts.actor)
    validateSlug(slug)
    const name = cleanText(opts.name, MAX_NAME, 'bad_name', 'name') ?? slug
    if (await slugTaken(slug)) throw new TokenAdminError('duplicate_slug', `workspace "${slug}" already exists`)
    // The unique index on slug is the real guard (a concurrent create); the loop only covers an id collision.
    for (let attempt = 0; ; attempt++) {
      const at = now()
      const doc: WorkspaceDoc = { _id: newWorkspaceId(), slug, name, active: true, created_at: at, updated_at: at }
      try {
        await c.workspaces.insertOne(doc)
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
        if (attempt >= 3 || (await slugTaken(slug))) throw new TokenAdminError('duplicate_slug', `workspace "${slug}" already exists`)
        continue
      }
      await audit(actor, 'workspace.create', { workspace_id: doc._id, slug, name })
      return wsInfo(doc)
    }
  }

  async function listWorkspaces(): Promise<WorkspaceListItem[]> {
    const t = now()
    const counts = new Map<string, { tokens: number; active: number }>()
    for await (const tok of c.tokens.find({}, { projection: { workspace_id: 1, revoked_at: 1, expires_at: 1 } })) {
      const n = counts.get(tok.workspace_id) ?? { tokens: 0, active: 0 }
      n.tokens++
      if (tokenStatus(tok, t) === 'active') n.active++
      counts.set(tok.workspace_id, n)
    }
    const out: WorkspaceListItem[] = []
    for await (const w of c.workspaces.find({}).sort({ slug: 1 })) {
      const n = counts.get(w._id)
      out.push({ ...wsInfo(w), tokens: n?.tokens ?? 0, active_tokens: n?.active ?? 0 })
    }
    return out
  }

  async function getWorkspace(slugOrId: string): Promise<WorkspaceInfo> {
    return wsInfo(await findWorkspace(slugOrId))
  }

  async function setWorkspaceActive(slugOrId: string, active: boolean, actor: string): Promise<WorkspaceActivation> {
    checkActor(actor)
    const ws = await findWorkspace(slugOrId)
    const changed = ws.active !== active
    const at = now()
    if (changed) await c.workspaces.updateOne({ _id: ws._id }, { $set: { active, updated_at: at } })
    // Re-published even when nothing changed: it is cheap and repairs a mirror that missed the last change.
    let republished: number | null = null
    const ok = await mirror(
      active ? 'workspace.activate' : 'workspace.deactivate',
      (r) => republishWorkspace(db, r, prefix, ws._id),
      active ? QUICK_PUSH_MS : revocationPushMs,
    )
    if (ok) republished = await c.tokens.countDocuments({ workspace_id: ws._id })
    await audit(actor, active ? 'workspace.activate' : 'workspace.deactivate', { workspace_id: ws._id, slug: ws.slug, changed })
    return { ...wsInfo({ ...ws, active, updated_at: changed ? at : ws.updated_at }), changed, tokens_republished: republished }
  }

  /**
   * Sets the per-token rate limit of a workspace's tokens (requests per minute; 0 = no limit;
   * null = back to the gateway default). It travels in every token's mirror entry, so the
   * workspace's updated_at moves (the entries' version) and its tokens are re-published: every
   * gateway applies it within a second.
   */
  async function setWorkspaceRateLimit(slugOrId: string, perMinute: number | null, actor: string): Promise<WorkspaceRateLimit> {
    checkActor(actor)
    if (perMinute !== null && (!Number.isSafeInteger(perMinute) || perMinute < 0 || perMinute > MAX_RATE_LIMIT_PER_MINUTE)) {
      throw new TokenAdminError(
        'bad_rate_limit',
        `invalid rate limit ${JSON.stringify(perMinute)}: use a whole number of requests per minute from 0 (no limit) to ${MAX_RATE_LIMIT_PER_MINUTE}, or "default"`,
      )
    }
    const ws = await findWorkspace(slugOrId)
    const previous = ws.rate_limit_per_minute ?? null
    const at = now()
    const changed = previous !== perMinute
    if (changed) await c.workspaces.updateOne({ _id: ws._id }, { $set: { rate_limit_per_minute: perMinute, updated_at: at } })
    const updated: WorkspaceDoc = { ...ws, rate_limit_per_minute: perMinute, updated_at: changed ? at : ws.updated_at }
    let republished: number | null = null
    if (await mirror('workspace.set_rate_limit', (r) => republishWorkspace(db, r, prefix, ws._id))) {
      republished = await c.tokens.countDocuments({ workspace_id: ws._id })
    }
    await audit(actor, 'workspace.set_rate_limit', {
      workspace_id: ws._id,
      slug: ws.slug,
      rate_limit_per_minute: perMinute,
      previous,
      changed,
    })
    return { ...wsInfo(updated), previous_rate_limit_per_minute: previous, tokens_republished: republished }
  }

  /** Changes a workspace's display name and/or slug. Neither is in the token mirror, so nothing is re-published. */
  async function renameWorkspace(slugOrId: string, changes: RenameInput, actor: string): Promise<WorkspaceInfo> {
    checkActor(actor)
    const ws = await findWorkspace(slugOrId)
    const $set: Partial<WorkspaceDoc> = {}
    if (changes.slug !== undefined && changes.slug !== ws.slug) {
      validateSlug(changes.slug)
      if (await slugTaken(changes.slug)) throw new TokenAdminError('duplicate_slug', `workspace "${changes.slug}" already exists`)
      $set.slug = changes.slug
    }
    if (changes.name !== undefined) {
      const name = cleanText(changes.name, MAX_NAME, 'bad_name', 'name')
      if (name === null) throw new TokenAdminError('bad_name', 'name must not be empty')
      if (name !== ws.name) $set.name = name
    }
    if (Object.keys($set).length === 0) return wsInfo(ws)
    $set.updated_at = now()
    try {
      await c.workspaces.updateOne({ _id: ws._id }, { $set })
    } catch (err) {
      if (isDuplicateKey(err)) throw new TokenAdminError('duplicate_slug', `workspace "${changes.slug}" already exists`)
      throw err
    }
    await audit(actor, 'workspace.rename', {
      workspace_id: ws._id,
      slug: $set.slug ?? ws.slug,
      ...($set.slug ? { old_slug: ws.slug } : {}),
      ...($set.name ? { name: $set.name, old_name: ws.name } : {}),
    })
    return wsInfo({ ...ws, ...$set })
  }

  async function createToken(input: CreateTokenInput): Promise<CreatedToken> {
    const actor = checkActor(input.actor)
    const permissions = parsePermissions(input.permissions)
    const label = cleanText(input.label, MAX_LABEL, 'bad_label', 'label')
    const created = now()
    const expires = input.expiresAt == null ? null : parseExpiry(input.expiresAt, created)
    const ws = await findWorkspace(input.workspace)

    let doc: TokenDoc
    let token: string
    for (let attempt = 0; ; attempt++) {
      token = generateToken()
      doc = {
        _id: newTokenId(),
        workspace_id: ws._id,
        token_hash: hashToken(token),
        label,
        permissions,
        created_at: created,
        updated_at: created,
        expires_at: expires,
        revoked_at: null,
      }
      try {
        await c.tokens.insertOne(doc)
        break
      } catch (err) {
        // Only a random-id collision can land here; fresh randomness fixes it.
        if (!isDuplicateKey(err) || attempt >= 3) throw err
      }
    }
    const mirrored = await mirror('token.create', (r) => publishEntries(r, prefix, new Map([[doc.token_hash, toEntry(doc, ws)]])))
    await audit(actor, 'token.create', {
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
      dsn: `${publicUrl}/ingest/${token}`,
      workspace: ws.slug,
      workspace_id: ws._id,
      permissions,
      label,
      expires_at: expires ? expires.toISOString() : null,
      created_at: created.toISOString(),
      mirrored,
    }
  }

  async function listTokens(opts: { workspace?: string } = {}): Promise<TokenInfo[]> {
    const filter: { workspace_id?: string } = {}
    const workspaces = new Map<string, WorkspaceDoc>()
    if (opts.workspace !== undefined) {
      const ws = await findWorkspace(opts.workspace)
      filter.workspace_id = ws._id
      workspaces.set(ws._id, ws)
    } else {
      for await (const w of c.workspaces.find({})) workspaces.set(w._id, w)
    }
    const t = now()
    const out: TokenInfo[] = []
    // The projection keeps the hash out of this process entirely, not just out of the result.
    for await (const tok of c.tokens.find(filter, { projection: { token_hash: 0 } }).sort({ created_at: 1, _id: 1 })) {
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
  async function revokeToken(id: string, actor: string): Promise<RevokedToken> {
    checkActor(actor)
    if (typeof id !== 'string' || !TOKEN_ID_PATTERN.test(id)) {
      throw new TokenAdminError('bad_token_id', `invalid token id ${JSON.stringify(id)}: token ids look like t0123456789abcdef`)
    }
    const at = now()
    // The filter makes concurrent revocations agree on the first timestamp.
    const res = await c.tokens.updateOne({ _id: id, revoked_at: null }, { $set: { revoked_at: at, updated_at: at } })
    const doc = await c.tokens.findOne({ _id: id })
    if (!doc) throw new TokenAdminError('unknown_token', `unknown token "${id}"`)
    const already = res.modifiedCount === 0
    const ws = await c.workspaces.findOne({ _id: doc.workspace_id })
    const entry: TokenEntry = toEntry(doc, ws)
    const mirrored = await mirror('token.revoke', (r) => publishEntries(r, prefix, new Map([[doc.token_hash, entry]])), revocationPushMs)
    await audit(actor, 'token.revoke', { token_id: id, workspace_id: doc.workspace_id, already_revoked: already })
    return { id, workspace_id: doc.workspace_id, revoked_at: doc.revoked_at ?? at, already_revoked: already, mirrored }
  }

  return {
    createWorkspace,
    listWorkspaces,
    getWorkspace,
    setWorkspaceActive,
    setWorkspaceRateLimit,
    renameWorkspace,
    createToken,
    listTokens,
    revokeToken,
  }
}
