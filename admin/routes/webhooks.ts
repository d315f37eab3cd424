// Outbound webhooks of a workspace: its endpoints (add, remove, send a test) and its dead
// letters (deliveries that failed for good) with a retry button. Endpoint changes go through
// webhooks/endpoints.ts, which writes the audit log.
import { Queue } from 'bullmq'
import { shardPrefixes } from '../../shared/redis-shards.ts'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { listDeadLetters, retryDeadLetter } from '../../webhooks/dead-letters.ts'
import { addWebhook, getWebhook, listWebhooks, removeWebhook } from '../../webhooks/endpoints.ts'
import { WebhookError } from '../../webhooks/errors.ts'
import { testWebhook } from '../../webhooks/test-delivery.ts'
import { seg, type SafeHtml } from '../views/html.ts'
import { page } from '../views/layout.ts'
import { testResultBox, webhooksBody, type WebhookForm } from '../views/webhooks.ts'
import { actorOf, loadWorkspace, NotFound, sendHtml, who, type Query } from './common.ts'

type Params = { ws: string; hid: string; jid: string }
type HookRequest = FastifyRequest<{ Params: Params; Querystring: Query; Body: WebhookForm }>

const NOTICES: Record<string, string> = {
  added: 'Endpoint added: records stored from now on are sent to it.',
  removed: 'Endpoint removed.',
  retried: 'Delivery queued again.',
}

export default async function webhookRoutes(app: FastifyInstance) {
  // Dead letters live in each shard's deliveries queue, read on the panel's Redis connection.
  const queues = shardPrefixes(app.config.redisPrefix, app.config.redisShards).map(
    (prefix) => new Queue('deliveries', { connection: app.redis, prefix }),
  )
  for (const q of queues) q.on('error', (err) => app.log.warn({ err: err.message }, 'deliveries queue error'))
  app.addHook('onClose', async () => {
    await Promise.all(queues.map((q) => q.close()))
  })
  const owner = { config: { access: 'owner' as const } } // endpoints carry a workspace's data elsewhere: an owner's decision

  app.get('/workspaces/:ws/webhooks', owner, async (request: HookRequest, reply) =>
    sendHtml(reply, await webhooksPage(app, queues, request)),
  )
  app.post('/workspaces/:ws/webhooks', owner, (request: HookRequest, reply) => add(app, queues, request, reply))
  app.post('/workspaces/:ws/webhooks/:hid/remove', owner, (request: HookRequest, reply) => remove(app, request, reply))
  app.post('/workspaces/:ws/webhooks/:hid/test', owner, (request: HookRequest, reply) => test(app, queues, request, reply))
  app.post('/workspaces/:ws/webhooks/dead-letters/:jid/retry', owner, (request: HookRequest, reply) => retry(app, queues, request, reply))
}

async function webhooksPage(
  app: FastifyInstance,
  queues: Queue[],
  request: HookRequest,
  opts: { error?: string; form?: WebhookForm; result?: SafeHtml } = {},
): Promise<string> {
  const admin = who(request)
  const ws = await loadWorkspace(app, request.params.ws)
  const hooks = await listWebhooks(app.db, { workspace: ws.id })
  const dead = await listDeadLetters(queues, ws.id)
  const body = webhooksBody({ admin, ws, hooks, dead, form: opts.form ?? {}, result: opts.result })
  const done = request.query?.done
  const notice = done && Object.hasOwn(NOTICES, done) ? NOTICES[done]! : null
  return page({ title: `${ws.slug} · webhooks`, admin, workspace: ws, tab: 'webhooks', body, notice, error: opts.error })
}

/** An endpoint is only ever changed through the workspace it belongs to. */
async function ownHook(app: FastifyInstance, wsId: string, id: string) {
  try {
    const hook = await getWebhook(app.db, id)
    if (hook.workspace_id === wsId) return hook
  } catch (err) {
    if (!(err instanceof WebhookError)) throw err
  }
  throw new NotFound('No such endpoint in this workspace.')
}

async function add(app: FastifyInstance, queues: Queue[], request: HookRequest, reply: FastifyReply) {
  const ws = await loadWorkspace(app, request.params.ws)
  const b = request.body
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)
  try {
    await addWebhook(app.db, {
      workspace: ws.id,
      url: one(b.url) ?? '',
      secret: one(b.secret) ?? '',
      // No box ticked is a refusal, not "every event".
      events: b.events === undefined ? [] : [b.events].flat(),
      actor: actorOf(request),
    })
  } catch (err) {
    if (!(err instanceof WebhookError)) throw err
    // The secret is not sent back into the page.
    const form = { url: b.url, events: b.events ?? [] }
    return sendHtml(reply, await webhooksPage(app, queues, request, { error: err.message, form }), 400)
  }
  return reply.redirect(`/workspaces/${seg(ws.id)}/webhooks?done=added`, 303)
}

async function remove(app: FastifyInstance, request: HookRequest, reply: FastifyReply) {
  const ws = await loadWorkspace(app, request.params.ws)
  const hook = await ownHook(app, ws.id, request.params.hid)
  await removeWebhook(app.db, hook._id, actorOf(request))
  return reply.redirect(`/workspaces/${seg(ws.id)}/webhooks?done=removed`, 303)
}

async function test(app: FastifyInstance, queues: Queue[], request: HookRequest, reply: FastifyReply) {
  const ws = await loadWorkspace(app, request.params.ws)
  const hook = await ownHook(app, ws.id, request.params.hid)
  try {
    const res = await testWebhook({ db: app.db, redis: app.redis, prefix: app.config.redisPrefix, actor: actorOf(request) }, hook._id)
    return sendHtml(reply, await webhooksPage(app, queues, request, { result: testResultBox(res) }))
  } catch (err) {
    if (!(err instanceof WebhookError)) throw err
    return sendHtml(reply, await webhooksPage(app, queues, request, { error: err.message }), 503)
  }
}

async function retry(app: FastifyInstance, queues: Queue[], request: HookRequest, reply: FastifyReply) {
  const ws = await loadWorkspace(app, request.params.ws)
  try {
    await retryDeadLetter(queues, app.db, ws.id, request.params.jid, actorOf(request))
  } catch (err) {
    if (!(err instanceof WebhookError)) throw err
    if (err.code === 'unknown_delivery') throw new NotFound(err.message)
    return sendHtml(reply, await webhooksPage(app, queues, request, { error: err.message }), 409)
  }
  return reply.redirect(`/workspaces/${seg(ws.id)}/webhooks?done=retried`, 303)
}
