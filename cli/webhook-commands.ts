// `webhook add|list|remove|test`: a workspace's outbound webhook endpoints (README "Forwarding").
import { addWebhook, listWebhooks, removeWebhook } from '../webhooks/endpoints.ts'
import { CliError } from './errors.ts'
import { shortDate, table } from './format.ts'
import { option, print, type CommandContext, type CommandHandlers } from './io.ts'

async function test(cx: CommandContext): Promise<number | void> {
  if (cx.redis?.status !== 'ready') throw new CliError('redis_unavailable', `Redis at ${cx.redisLabel} is unreachable`)
  const { testWebhook } = await import('../webhooks/test-delivery.ts')
  const res = await testWebhook({ db: cx.db, redis: cx.redis, prefix: cx.prefix, actor: cx.actor }, cx.cmd.args.id!)
  const human = res.delivered
    ? `Webhook ${res.id}: test delivered (answered ${res.status} in ${res.ms} ms; X-RDT-Delivery ${res.delivery_id}).\n`
    : `Webhook ${res.id}: test NOT delivered: ${res.reason}\n`
  print(cx, res, human)
  if (!res.delivered) return 1
}

export const webhookCommands: CommandHandlers<'webhook add' | 'webhook list' | 'webhook remove' | 'webhook test'> = {
  'webhook add': async (cx) => {
    const w = await addWebhook(cx.db, {
      workspace: option(cx.cmd, 'workspace')!,
      url: option(cx.cmd, 'url')!,
      secret: option(cx.cmd, 'secret')!,
      events: option(cx.cmd, 'events'),
      actor: cx.actor,
    })
    print(cx, w, `Webhook ${w.id} added to workspace "${w.workspace}": ${w.url} (${w.events.join(', ')}).\n`)
  },
  'webhook list': async (cx) => {
    const list = await listWebhooks(cx.db, { workspace: option(cx.cmd, 'workspace') })
    const human =
      list.length === 0
        ? 'No webhooks.\n'
        : table(
            ['ID', 'WORKSPACE', 'URL', 'EVENTS', 'CREATED', 'STATUS'],
            list.map((w) => [
              w.id,
              w.workspace ?? w.workspace_id,
              w.url,
              w.events.join(','),
              shortDate(w.created_at),
              w.disabled ? 'disabled' : 'active',
            ]),
          )
    print(cx, list, human)
  },
  'webhook remove': async (cx) => {
    const w = await removeWebhook(cx.db, cx.cmd.args.id!, cx.actor)
    print(cx, { ...w, removed: true }, `Webhook ${w.id} removed (${w.url}).\n`)
  },
  'webhook test': test,
}
