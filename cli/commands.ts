// Every command's handler, by name. `jobs` (BullMQ) and `sessions revalidate` (TypeBox) load
// their modules only when they run: those take seconds to load on a busy machine.
import type { QueueName } from '../shared/queue-settings.ts'
import { adminCommands } from './admin-commands.ts'
import { deleteCommands } from './delete-commands.ts'
import type { CommandName } from './args.ts'
import { CliError } from './errors.ts'
import { failedJobsTable, retryBlock, revalidateBlock, revalidateProgress } from './format.ts'
import { option, print, type CommandContext, type CommandHandlers } from './io.ts'
import { tokenCommands } from './token-commands.ts'
import { webhookCommands } from './webhook-commands.ts'
import { workspaceCommands } from './workspace-commands.ts'

async function jobsCommand(cx: CommandContext): Promise<void> {
  // The jobs live only in Redis: without it there is nothing to show, so say so plainly.
  if (cx.redis?.status !== 'ready') throw new CliError('redis_unavailable', `Redis at ${cx.redisLabel} is unreachable`)
  const { createJobsAdmin } = await import('./jobs.ts')
  const jobs = createJobsAdmin({ redis: cx.redis, prefixes: cx.shardPrefixes, db: cx.db })
  const queue = option(cx.cmd, 'queue') as QueueName | undefined // checked against QUEUE_NAMES by the parser
  try {
    if (cx.cmd.name === 'jobs failed') {
      const res = await jobs.listFailed({ queue, limit: Number(cx.cmd.values.limit ?? 100) })
      print(cx, res, failedJobsTable(res))
    } else if (cx.cmd.args.id !== undefined) {
      const job = await jobs.retry(cx.cmd.args.id, { queue, actor: cx.actor })
      print(cx, { retried: [job], skipped: [] }, retryBlock({ retried: [job], skipped: [] }))
    } else {
      const res = await jobs.retryAll({ queue, actor: cx.actor })
      print(cx, res, retryBlock(res))
    }
  } finally {
    await jobs.close()
  }
}

async function revalidate(cx: CommandContext): Promise<void> {
  const slug = option(cx.cmd, 'workspace')
  const ws = slug === undefined ? null : await cx.admin.getWorkspace(slug)
  // Progress goes to stderr, at most every 5 s, so that --json output stays one document.
  let lastProgress = Date.now()
  const { revalidateSessions } = await import('./sessions-revalidate.ts')
  const res = await revalidateSessions({
    db: cx.db,
    actor: cx.actor,
    workspace: ws && { id: ws.id, slug: ws.slug },
    onProgress: (counts) => {
      if (Date.now() - lastProgress < 5000) return
      lastProgress = Date.now()
      cx.io.err(revalidateProgress(counts))
    },
  })
  print(cx, res, revalidateBlock(res))
}

export const COMMAND_HANDLERS: CommandHandlers<CommandName> = {
  ...workspaceCommands,
  ...tokenCommands,
  ...webhookCommands,
  ...adminCommands,
  ...deleteCommands,
  'sessions revalidate': revalidate,
  'jobs failed': jobsCommand,
  'jobs retry': jobsCommand,
}
