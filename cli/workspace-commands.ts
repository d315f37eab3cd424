// `workspace create|list|activate|deactivate|rename|set-rate-limit`.
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

export const workspaceCommands: CommandHandlers<
  'workspace create' | 'workspace list' | 'workspace activate' | 'workspace deactivate' | 'workspace rename' | 'workspace set-rate-limit'
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
}
