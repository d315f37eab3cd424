// Which Redis shard a workspace's work goes through (shared/redis-shards.ts), and moving it.
//
// A new workspace gets the shard with the fewest workspaces. Workspaces differ in volume, so an
// operator evens out real load with `workspace move-shard`:
// 1. MongoDB first: redis_shard becomes the target and redis_shard_moving_from the old shard.
// 2. The workspace's token entries are re-published with the new shard, and the change is
//    announced: every gateway drops its cached entry, and sends the next request to the new shard.
// 3. Jobs already queued in the old shard stay there; workers consume every shard (unless
//    WORKER_SHARDS says otherwise), so they drain as before. The CLI waits for them, then clears
//    redis_shard_moving_from.
// Nothing is lost: no job moves. Nothing is stored twice: the idempotency keys stay in the old
// shard (copying them needs SCAN, which no role may run), so a device replaying an upload accepted
// before the move gets 201 instead of 409 once, and the worker finds the record already stored
// (MongoDB's unique indexes, and the same deterministic object keys) and keeps one copy. A replay
// with different bytes is kept as a conflict, as always.
import type { WorkspaceDoc } from '../shared/mongo.ts'
import { findWorkspace, type TokenAdminContext } from './context.ts'
import { TokenAdminError } from './errors.ts'
import { REVOCATION_PUSH_MS } from './mirror.ts'
import { checkActor } from './rules.ts'
import { republish, wsInfo, type WorkspaceInfo } from './workspaces.ts'

/** Workspaces without the field predate shards and are on shard 0. */
const onShard = (shard: number) =>
  shard === 0 ? { $or: [{ redis_shard: 0 }, { redis_shard: { $exists: false } }] } : { redis_shard: shard }

/** The shard with the fewest workspaces (the lowest number on a tie). */
export async function leastUsedShard(ctx: TokenAdminContext): Promise<number> {
  let best = 0
  let bestCount = Infinity
  for (let shard = 0; shard < ctx.shards; shard++) {
    const n = await ctx.c.workspaces.countDocuments(onShard(shard))
    if (n < bestCount) [best, bestCount] = [shard, n]
  }
  return best
}

export interface ShardMove extends WorkspaceInfo {
  from: number
  to: number
  /** How many token entries were re-mirrored; null when the mirror write was not confirmed (the worker's sync repairs it). */
  tokens_republished: number | null
}

/** Steps 1 and 2 above: the workspace's new work goes to `to` from now on. */
export async function moveWorkspaceShard(ctx: TokenAdminContext, slugOrId: string, to: number, actor: string): Promise<ShardMove> {
  checkActor(actor)
  if (!Number.isInteger(to) || to < 0 || to >= ctx.shards)
    throw new TokenAdminError('bad_shard', `shard must be a whole number from 0 to ${ctx.shards - 1} (REDIS_SHARDS is ${ctx.shards})`)
  const ws = await findWorkspace(ctx, slugOrId)
  const from = ws.redis_shard ?? 0
  if (from === to) throw new TokenAdminError('same_shard', `workspace "${ws.slug}" is already on shard ${to}`)
  const updated_at = ctx.now()
  // Conditional on the shard read above, so two concurrent moves cannot both think they moved it.
  const res = await ctx.c.workspaces.findOneAndUpdate(
    { _id: ws._id, ...onShard(from) },
    { $set: { redis_shard: to, redis_shard_moving_from: from, updated_at } },
    { returnDocument: 'after' },
  )
  if (!res) throw new TokenAdminError('concurrent_change', `workspace "${ws.slug}" changed shard meanwhile; look again`)
  await ctx.audit(actor, 'workspace.move-shard', { workspace_id: ws._id, slug: ws.slug, from, to })
  // As long a push as a revocation's: a gateway that missed it would keep using the old shard,
  // which is safe (its workers still run) but keeps the move from finishing.
  const tokens = await republish(ctx, res, 'workspace.move-shard', REVOCATION_PUSH_MS)
  return { ...wsInfo(res), from, to, tokens_republished: tokens }
}

/** Step 3's end: the old shard holds no job of this workspace any more. */
export async function finishShardMove(ctx: TokenAdminContext, slugOrId: string): Promise<WorkspaceInfo> {
  const ws = await findWorkspace(ctx, slugOrId)
  const res = await ctx.c.workspaces.findOneAndUpdate(
    { _id: ws._id },
    { $set: { redis_shard_moving_from: null } },
    { returnDocument: 'after' },
  )
  return wsInfo(res ?? (ws as WorkspaceDoc))
}
