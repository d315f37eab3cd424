// What every workspace and token action needs: the collections, the clock, the audit log, the
// mirror push and the workspace lookup. Built once from TokenAdminDeps (tokens/admin.ts).
//
// MongoDB is the source of truth: every change is written there first, then mirrored to Redis
// and announced on the change channel so that gateways drop their cached copies within a second.
// If the mirror write fails (Redis down), the change still stands: workers re-sync the whole
// mirror periodically (syncTokenMirror), so the failure is reported through `onMirrorError`
// instead of failing the action after the fact.
import type { RedisClient } from '../shared/redis.ts'
import type { Db } from 'mongodb'
import { collections, type WorkspaceDoc } from '../shared/mongo.ts'
import { TokenAdminError } from './errors.ts'
import { pushToMirror, QUICK_PUSH_MS, REVOCATION_PUSH_MS } from './mirror.ts'
import { SLUG_PATTERN, WORKSPACE_ID_PATTERN } from './rules.ts'

export interface TokenAdminDeps {
  db: Db
  /** null: no mirror writes at all (each one is reported through onMirrorError), e.g. for read-only use. */
  redis: RedisClient | null
  /** Redis key prefix (config.redisPrefix). */
  prefix: string
  /** REDIS_SHARDS: new workspaces are spread over this many shards; default 1. */
  shards?: number
  /** Base URL printed in DSNs (config.publicUrl); a trailing slash is ignored. */
  publicUrl: string
  /** Called when MongoDB was updated but the Redis mirror was not; a worker's periodic sync will repair it. */
  onMirrorError?: (err: unknown, action: string) => void
  /** Clock, for tests. */
  now?: () => Date
  /** How long a change that takes access away retries its mirror push; default REVOCATION_PUSH_MS. */
  revocationPushMs?: number
}

export interface TokenAdminContext {
  db: Db
  c: ReturnType<typeof collections>
  prefix: string
  shards: number
  /** Without a trailing slash. */
  publicUrl: string
  now: () => Date
  revocationPushMs: number
  audit(actor: string, action: string, target: Record<string, unknown>): Promise<void>
  /** Pushes to the mirror (pushToMirror); false, after reporting it, when the push was not confirmed. */
  mirror(action: string, fn: (redis: RedisClient) => Promise<void>, deadlineMs?: number): Promise<boolean>
}

export function tokenAdminContext(deps: TokenAdminDeps): TokenAdminContext {
  const c = collections(deps.db)
  const now = deps.now ?? (() => new Date())
  return {
    db: deps.db,
    c,
    prefix: deps.prefix,
    shards: deps.shards ?? 1,
    publicUrl: deps.publicUrl.replace(/\/+$/, ''),
    now,
    revocationPushMs: deps.revocationPushMs ?? REVOCATION_PUSH_MS,
    async audit(actor, action, target) {
      await c.audit.insertOne({ at: now(), actor, action, target })
    },
    async mirror(action, fn, deadlineMs = QUICK_PUSH_MS) {
      const res = await pushToMirror(deps.redis, fn, deadlineMs)
      if (!res.ok) deps.onMirrorError?.(res.error, action)
      return res.ok
    },
  }
}

/** A workspace by slug or id. */
export async function findWorkspace(ctx: TokenAdminContext, slugOrId: string): Promise<WorkspaceDoc> {
  if (typeof slugOrId !== 'string' || slugOrId === '') throw new TokenAdminError('unknown_workspace', 'no workspace given')
  // Slugs can never look like ids (validateSlug), so the shape says which field to query.
  const ws = WORKSPACE_ID_PATTERN.test(slugOrId)
    ? await ctx.c.workspaces.findOne({ _id: slugOrId })
    : SLUG_PATTERN.test(slugOrId)
      ? await ctx.c.workspaces.findOne({ slug: slugOrId })
      : null
  if (!ws) throw new TokenAdminError('unknown_workspace', `unknown workspace "${slugOrId}"`)
  return ws
}
