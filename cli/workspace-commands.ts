// `workspace create|list|activate|deactivate|rename|set-rate-limit|move-shard|retention`.
import { describeDays, RETENTION_KINDS, type RetentionSettings } from '../shared/retention.ts'
import { TokenAdminError } from '../tokens/errors.ts'
import { workspaceTable } from './format.ts'
import { option, print, unconfirmed, type CommandContext, type CommandHandlers } from './io.ts'

async function setActive(cx: CommandContext, active: boolean): Promise<number | void> {
  const res = await cx.admin.setWorkspaceActive(cx.cmd.args.slug!, active, cx.actor)
  const state = active ? 'active' : 'inactive'
  const human = res.changed
    ? `Workspace "${res.slug}" is now ${state}` + republished(res.tokens_republished)
    : `Workspace "${res.slug}" was already ${state}.\n`
  print(cx, res, human)
  if (!active && res.tokens_republished === null)
    return unconfirmed(cx.io, `the deactivation of "${res.slug}"`, `npm run cli -- workspace deactivate ${res.slug}`)
}

/** The end of a sentence about a change that re-published the workspace's tokens. */
const republished = (n: number | null): string => (n === null ? '.\n' : `; ${n} token(s) updated in the gateway mirror.\n`)

const showLimit = (n: number | null): string =>
  n === null ? 'the gateway default (RATE_LIMIT_PER_MINUTE)' : n === 0 ? 'no limit' : `${n} requests per minute per token`

async function setRateLimit(cx: CommandContext): Promise<void> {
  const raw = cx.cmd.args.limit!
  // Parsed here, not in tokens/: "default" and the digits-only rule are CLI spelling.
  if (raw !== 'default' && !/^\d{1,9}$/.test(raw))
    throw new TokenAdminError(
      'bad_rate_limit',
      `invalid rate limit "${raw}": use a whole number of requests per minute (0 = no limit) or "default"`,
    )
  const res = await cx.admin.setWorkspaceRateLimit(cx.cmd.args.slug!, raw === 'default' ? null : Number(raw), cx.actor)
  const human =
    `Workspace "${res.slug}": ${showLimit(res.rate_limit_per_minute)}` +
    (res.previous_rate_limit_per_minute === res.rate_limit_per_minute
      ? ' (unchanged)'
      : ` (was ${showLimit(res.previous_rate_limit_per_minute)})`) +
    republished(res.tokens_republished)
  print(cx, res, human)
}

/**
 * `workspace move-shard <slug> <shard>` (tokens/shards.ts has the procedure). Run again for a
 * workspace already on that shard whose move has not finished, it only waits and finishes.
 */
async function moveShard(cx: CommandContext): Promise<number | void> {
  const raw = cx.cmd.args.shard!
  if (!/^\d{1,2}$/.test(raw)) throw new TokenAdminError('bad_shard', `invalid shard "${raw}": use a shard number (0 to REDIS_SHARDS - 1)`)
  const to = Number(raw)
  const before = await cx.admin.getWorkspace(cx.cmd.args.slug!)
  const resuming = before.redis_shard === to && before.redis_shard_moving_from !== null
  const move = resuming
    ? { ...before, from: before.redis_shard_moving_from!, to, tokens_republished: null }
    : await cx.admin.moveWorkspaceShard(cx.cmd.args.slug!, to, cx.actor)
  if (!resuming && move.tokens_republished === null)
    cx.io.err('warning: the gateways were not told; they switch at the next mirror sync by a worker (about every 30 s).\n')
  if (cx.cmd.values['no-wait'] || !cx.redis) {
    print(
      cx,
      { ...move, pending_jobs: null },
      `Workspace "${move.slug}": new uploads go to shard ${to}; run this again to wait for shard ${move.from}.\n`,
    )
    return
  }
  const { pendingWorkspaceJobs } = await import('./shard-drain.ts')
  const oldPrefix = cx.shardPrefixes[move.from]!
  let lastProgress = 0
  for (;;) {
    const pending = await pendingWorkspaceJobs(cx.redis, oldPrefix, move.id)
    if (pending === 0) break
    if (Date.now() - lastProgress > 5000) {
      lastProgress = Date.now()
      cx.io.err(`${pending} job(s) of "${move.slug}" still to run in shard ${move.from}…\n`)
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  const done = await cx.admin.finishShardMove(move.id)
  print(
    cx,
    { ...move, ...done, pending_jobs: 0 },
    `Workspace "${move.slug}" moved from shard ${move.from} to shard ${to}; nothing left in shard ${move.from}.\n`,
  )
}

const showRetention = (r: RetentionSettings): string => RETENTION_KINDS.map((k) => `${k} ${describeDays(r[k])}`).join(', ')

async function setRetention(cx: CommandContext): Promise<void> {
  const changes: Partial<RetentionSettings> = {}
  for (const kind of RETENTION_KINDS) {
    const raw = option(cx.cmd, kind)
    // The spelling ("keep", digits) was checked by the parser (cli/args.ts); the range by tokens/.
    if (raw !== undefined) changes[kind] = raw === 'keep' ? null : Number(raw)
  }
  const res = await cx.admin.setWorkspaceRetention(cx.cmd.args.slug!, changes, cx.actor)
  const human =
    `Workspace "${res.slug}" retention: ${showRetention(res.retention)}` +
    (res.changed ? ` (was ${showRetention(res.previous_retention)}).\n` : Object.keys(changes).length ? ' (unchanged).\n' : '.\n')
  print(cx, res, human)
}

export const workspaceCommands: CommandHandlers<
  | 'workspace create'
  | 'workspace list'
  | 'workspace activate'
  | 'workspace deactivate'
  | 'workspace rename'
  | 'workspace set-rate-limit'
  | 'workspace move-shard'
  | 'workspace retention'
> = {
  'workspace create': async (cx) => {
    const ws = await cx.admin.createWorkspace(cx.cmd.args.slug!, { name: option(cx.cmd, 'name'), actor: cx.actor })
    print(cx, ws, `Workspace "${ws.slug}" created (id ${ws.id}).\n`)
  },
  'workspace list': async (cx) => {
    const list = await cx.admin.listWorkspaces()
    print(cx, list, workspaceTable(list))
  },
  'workspace activate': (cx) => setActive(cx, true),
  'workspace deactivate': (cx) => setActive(cx, false),
  'workspace rename': async (cx) => {
    const changes = { name: option(cx.cmd, 'name'), slug: option(cx.cmd, 'slug') }
    const ws = await cx.admin.renameWorkspace(cx.cmd.args.slug!, changes, cx.actor)
    print(cx, ws, `Workspace ${ws.id}: slug "${ws.slug}", name "${ws.name}".\n`)
  },
  'workspace set-rate-limit': setRateLimit,
  'workspace move-shard': moveShard,
  'workspace retention': setRetention,
}
