// Workspace actions: create, list, look up, (de)activate, set the rate limit, rename. Each one
// that changes what a gateway must know re-publishes the workspace's token entries.
import { isDuplicateKey, type WorkspaceDoc } from '../shared/mongo.ts'
import { retentionOf, type RetentionSettings } from '../shared/retention.ts'
import { republishWorkspace } from '../shared/token-registry.ts'
import { findWorkspace, type TokenAdminContext } from './context.ts'
import { TokenAdminError } from './errors.ts'
import { QUICK_PUSH_MS } from './mirror.ts'
import { leastUsedShard } from './shards.ts'
import { checkActor, checkRateLimit, cleanText, MAX_NAME, newWorkspaceId, tokenStatus, validateSlug } from './rules.ts'

export interface WorkspaceInfo {
  id: string
  slug: string
  name: string
  active: boolean
  created_at: Date
  updated_at: Date
  /** Per-token requests per minute for this workspace; null = the gateway default (RATE_LIMIT_PER_MINUTE), 0 = no limit. */
  rate_limit_per_minute: number | null
  /** The Redis shard its uploads go through (README, "Redis Cluster and shards"). */
  redis_shard: number
  /** While a `workspace move-shard` has not finished: the shard being left; otherwise null. */
  redis_shard_moving_from: number | null
  /** Days photos, logs and sessions are kept after they were received; null = kept for ever. */
  retention: RetentionSettings
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

export interface WorkspaceRateLimit extends WorkspaceInfo {
  /** The setting before this call. */
  previous_rate_limit_per_minute: number | null
  /** How many token entries were re-mirrored; null when the mirror write failed. */
  tokens_republished: number | null
}

export interface RenameInput {
  name?: string
  slug?: string
}

export const wsInfo = (w: WorkspaceDoc): WorkspaceInfo => ({
  id: w._id,
  slug: w.slug,
  name: w.name,
  active: w.active,
  created_at: w.created_at,
  updated_at: w.updated_at,
  rate_limit_per_minute: w.rate_limit_per_minute ?? null,
  redis_shard: w.redis_shard ?? 0,
  redis_shard_moving_from: w.redis_shard_moving_from ?? null,
  retention: retentionOf(w),
})

const duplicateSlug = (slug: string | undefined) => new TokenAdminError('duplicate_slug', `workspace "${slug}" already exists`)

async function slugTaken(ctx: TokenAdminContext, slug: string): Promise<boolean> {
  return (await ctx.c.workspaces.countDocuments({ slug }, { limit: 1 })) > 0
}

/** Re-publishes a workspace's token entries; how many there are, or null when the push was not confirmed. */
export async function republish(
  ctx: TokenAdminContext,
  ws: WorkspaceDoc,
  action: string,
  deadlineMs = QUICK_PUSH_MS,
): Promise<number | null> {
  const ok = await ctx.mirror(action, (r) => republishWorkspace(ctx.db, r, ctx.prefix, ws._id), deadlineMs)
  return ok ? await ctx.c.tokens.countDocuments({ workspace_id: ws._id }) : null
}

export async function createWorkspace(
  ctx: TokenAdminContext,
  slug: string,
  opts: { name?: string | null; actor: string },
): Promise<WorkspaceInfo> {
  const actor = checkActor(opts.actor)
  validateSlug(slug)
  const name = cleanText(opts.name, MAX_NAME, 'bad_name', 'name') ?? slug
  if (await slugTaken(ctx, slug)) throw duplicateSlug(slug)
  // The unique index on slug is the real guard (a concurrent create); the loop only covers an id collision.
  for (let attempt = 0; ; attempt++) {
    const at = ctx.now()
    const doc: WorkspaceDoc = {
      _id: newWorkspaceId(),
      slug,
      name,
      active: true,
      created_at: at,
      updated_at: at,
      redis_shard: await leastUsedShard(ctx),
    }
    try {
      await ctx.c.workspaces.insertOne(doc)
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      if (attempt >= 3 || (await slugTaken(ctx, slug))) throw duplicateSlug(slug)
      continue
    }
    await ctx.audit(actor, 'workspace.create', { workspace_id: doc._id, slug, name, redis_shard: doc.redis_shard })
    return wsInfo(doc)
  }
}

export async function listWorkspaces(ctx: TokenAdminContext): Promise<WorkspaceListItem[]> {
  const t = ctx.now()
  const counts = new Map<string, { tokens: number; active: number }>()
  for await (const tok of ctx.c.tokens.find({}, { projection: { workspace_id: 1, revoked_at: 1, expires_at: 1 } })) {
    const n = counts.get(tok.workspace_id) ?? { tokens: 0, active: 0 }
    n.tokens++
    if (tokenStatus(tok, t) === 'active') n.active++
    counts.set(tok.workspace_id, n)
  }
  const out: WorkspaceListItem[] = []
  for await (const w of ctx.c.workspaces.find({}).sort({ slug: 1 })) {
    const n = counts.get(w._id)
    out.push({ ...wsInfo(w), tokens: n?.tokens ?? 0, active_tokens: n?.active ?? 0 })
  }
  return out
}

export async function getWorkspace(ctx: TokenAdminContext, slugOrId: string): Promise<WorkspaceInfo> {
  return wsInfo(await findWorkspace(ctx, slugOrId))
}

export async function setWorkspaceActive(
  ctx: TokenAdminContext,
  slugOrId: string,
  active: boolean,
  actor: string,
): Promise<WorkspaceActivation> {
  checkActor(actor)
  const ws = await findWorkspace(ctx, slugOrId)
  const changed = ws.active !== active
  const at = ctx.now()
  if (changed) await ctx.c.workspaces.updateOne({ _id: ws._id }, { $set: { active, updated_at: at } })
  const action = active ? 'workspace.activate' : 'workspace.deactivate'
  // Re-published even when nothing changed: it is cheap and repairs a mirror that missed the last change.
  const republished = await republish(ctx, ws, action, active ? QUICK_PUSH_MS : ctx.revocationPushMs)
  await ctx.audit(actor, action, { workspace_id: ws._id, slug: ws.slug, changed })
  return { ...wsInfo({ ...ws, active, updated_at: changed ? at : ws.updated_at }), changed, tokens_republished: republished }
}

/**
 * Sets the per-token rate limit of a workspace's tokens (requests per minute; 0 = no limit;
 * null = back to the gateway default). It travels in every token's mirror entry, so the
 * workspace's updated_at moves (the entries' version) and its tokens are re-published: every
 * gateway applies it within a second.
 */
export async function setWorkspaceRateLimit(
  ctx: TokenAdminContext,
  slugOrId: string,
  perMinute: number | null,
  actor: string,
): Promise<WorkspaceRateLimit> {
  checkActor(actor)
  checkRateLimit(perMinute)
  const ws = await findWorkspace(ctx, slugOrId)
  const previous = ws.rate_limit_per_minute ?? null
  const at = ctx.now()
  const changed = previous !== perMinute
  if (changed) await ctx.c.workspaces.updateOne({ _id: ws._id }, { $set: { rate_limit_per_minute: perMinute, updated_at: at } })
  const updated: WorkspaceDoc = { ...ws, rate_limit_per_minute: perMinute, updated_at: changed ? at : ws.updated_at }
  const republished = await republish(ctx, ws, 'workspace.set_rate_limit')
  await ctx.audit(actor, 'workspace.set_rate_limit', {
    workspace_id: ws._id,
    slug: ws.slug,
    rate_limit_per_minute: perMinute,
    previous,
    changed,
  })
  return { ...wsInfo(updated), previous_rate_limit_per_minute: previous, tokens_republished: republished }
}

/** Changes a workspace's display name and/or slug. Neither is in the token mirror, so nothing is re-published. */
export async function renameWorkspace(
  ctx: TokenAdminContext,
  slugOrId: string,
  changes: RenameInput,
  actor: string,
): Promise<WorkspaceInfo> {
  checkActor(actor)
  const ws = await findWorkspace(ctx, slugOrId)
  const $set = await renameChanges(ctx, ws, changes)
  if (Object.keys($set).length === 0) return wsInfo(ws)
  $set.updated_at = ctx.now()
  try {
    await ctx.c.workspaces.updateOne({ _id: ws._id }, { $set })
  } catch (err) {
    if (isDuplicateKey(err)) throw duplicateSlug(changes.slug)
    throw err
  }
  await ctx.audit(actor, 'workspace.rename', {
    workspace_id: ws._id,
    slug: $set.slug ?? ws.slug,
    ...($set.slug ? { old_slug: ws.slug } : {}),
    ...($set.name ? { name: $set.name, old_name: ws.name } : {}),
  })
  return wsInfo({ ...ws, ...$set })
}

/** The fields a rename changes, checked; empty when nothing changes. */
async function renameChanges(ctx: TokenAdminContext, ws: WorkspaceDoc, changes: RenameInput): Promise<Partial<WorkspaceDoc>> {
  const $set: Partial<WorkspaceDoc> = {}
  if (changes.slug !== undefined && changes.slug !== ws.slug) {
    validateSlug(changes.slug)
    if (await slugTaken(ctx, changes.slug)) throw duplicateSlug(changes.slug)
    $set.slug = changes.slug
  }
  if (changes.name !== undefined) {
    const name = cleanText(changes.name, MAX_NAME, 'bad_name', 'name')
    if (name === null) throw new TokenAdminError('bad_name', 'name must not be empty')
    if (name !== ws.name) $set.name = name
  }
  return $set
}
