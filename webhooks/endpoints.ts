// Webhook endpoints of a workspace: add, list, look up, remove. Used by the admin panel and the
// CLI; every change is written to the audit log (without the secret). The worker only reads
// the collection (worker/webhook-fanout.ts, worker/processors/deliveries.ts).
import { randomBytes } from 'node:crypto'
import type { Db } from 'mongodb'
import { collections, WEBHOOK_EVENTS, type WebhookDoc, type WebhookEvent } from '../shared/mongo.ts'
import { SLUG_PATTERN, WORKSPACE_ID_PATTERN } from '../tokens/rules.ts'
import { WebhookError } from './errors.ts'
import { WEBHOOK_ID_PATTERN } from './events.ts'

export const MAX_URL_LENGTH = 2048
export const MIN_SECRET_LENGTH = 16
export const MAX_SECRET_LENGTH = 256

/** An endpoint as shown: everything but the secret, which is never shown again after `add`. */
export interface WebhookInfo {
  id: string
  workspace_id: string
  workspace: string | null
  url: string
  events: WebhookEvent[]
  created_at: Date
  disabled: boolean
}

export interface AddWebhookInput {
  /** Slug or id. */
  workspace: string
  url: string
  secret: string
  /** Default: every event. */
  events?: readonly string[] | string
  actor: string
}

const newWebhookId = (): string => 'h' + randomBytes(8).toString('hex')

const info = (d: WebhookDoc, slug: string | null): WebhookInfo => ({
  id: d._id,
  workspace_id: d.workspace_id,
  workspace: slug,
  url: d.url,
  events: d.events,
  created_at: d.created_at,
  disabled: d.disabled,
})

/**
 * http or https, a host, no user name or password (they would end up in logs and the panel),
 * no fragment. Where the host points is checked at every delivery, not here: a name can resolve
 * elsewhere tomorrow (webhooks/address-guard.ts).
 */
export function checkUrl(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_URL_LENGTH)
    throw new WebhookError('bad_url', `the URL must be 1 to ${MAX_URL_LENGTH} characters`)
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new WebhookError('bad_url', 'the URL is not a valid absolute URL')
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new WebhookError('bad_url', 'the URL must start with https:// or http://')
  if (!u.hostname) throw new WebhookError('bad_url', 'the URL has no host')
  if (u.username || u.password)
    throw new WebhookError('bad_url', 'the URL must not carry a user name or password; sign with the secret instead')
  if (u.hash) throw new WebhookError('bad_url', 'the URL must not have a #fragment')
  return u.toString()
}

/** Printable ASCII, long enough to be a real HMAC key. */
export function checkSecret(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length < MIN_SECRET_LENGTH || raw.length > MAX_SECRET_LENGTH || !/^[\x21-\x7e]+$/.test(raw))
    throw new WebhookError(
      'bad_secret',
      `the secret must be ${MIN_SECRET_LENGTH} to ${MAX_SECRET_LENGTH} printable characters without spaces (e.g. openssl rand -hex 32)`,
    )
  return raw
}

export function parseEvents(raw: readonly string[] | string | undefined): WebhookEvent[] {
  if (raw === undefined) return [...WEBHOOK_EVENTS]
  const list = (typeof raw === 'string' ? raw.split(',') : [...raw]).map((s) => s.trim()).filter(Boolean)
  if (list.length === 0) throw new WebhookError('bad_events', `name at least one event: ${WEBHOOK_EVENTS.join(', ')}`)
  for (const e of list)
    if (!(WEBHOOK_EVENTS as readonly string[]).includes(e))
      throw new WebhookError('bad_events', `unknown event "${e}" (known: ${WEBHOOK_EVENTS.join(', ')})`)
  // In the canonical order, each once.
  return WEBHOOK_EVENTS.filter((e) => list.includes(e))
}

function checkActor(actor: unknown): string {
  if (typeof actor !== 'string' || actor.trim() === '') throw new WebhookError('bad_actor', 'an actor is required for the audit log')
  return actor
}

async function findWorkspace(db: Db, slugOrId: string): Promise<{ _id: string; slug: string }> {
  const c = collections(db)
  const ws =
    typeof slugOrId !== 'string'
      ? null
      : WORKSPACE_ID_PATTERN.test(slugOrId)
        ? await c.workspaces.findOne({ _id: slugOrId })
        : SLUG_PATTERN.test(slugOrId)
          ? await c.workspaces.findOne({ slug: slugOrId })
          : null
  if (!ws) throw new WebhookError('unknown_workspace', `unknown workspace "${slugOrId}"`)
  return ws
}

async function audit(db: Db, actor: string, action: string, target: Record<string, unknown>): Promise<void> {
  await collections(db).audit.insertOne({ at: new Date(), actor, action, target })
}

export async function addWebhook(db: Db, input: AddWebhookInput): Promise<WebhookInfo> {
  const actor = checkActor(input.actor)
  const url = checkUrl(input.url)
  const secret = checkSecret(input.secret)
  const events = parseEvents(input.events)
  const ws = await findWorkspace(db, input.workspace)
  const doc: WebhookDoc = { _id: newWebhookId(), workspace_id: ws._id, url, secret, events, created_at: new Date(), disabled: false }
  await collections(db).webhooks.insertOne(doc)
  await audit(db, actor, 'webhook.add', { webhook_id: doc._id, workspace_id: ws._id, url, events })
  return info(doc, ws.slug)
}

export async function listWebhooks(db: Db, opts: { workspace?: string } = {}): Promise<WebhookInfo[]> {
  const c = collections(db)
  const filter = opts.workspace === undefined ? {} : { workspace_id: (await findWorkspace(db, opts.workspace))._id }
  const docs = await c.webhooks
    .find(filter, { projection: { secret: 0 } })
    .sort({ created_at: 1 })
    .toArray()
  const slugs = new Map<string, string>()
  const ids = [...new Set(docs.map((d) => d.workspace_id))]
  for (const w of await c.workspaces.find({ _id: { $in: ids } }, { projection: { slug: 1 } }).toArray()) slugs.set(w._id, w.slug)
  return docs.map((d) => info(d, slugs.get(d.workspace_id) ?? null))
}

/** One endpoint, secret included: for the worker and `webhook test` only, never for display. */
export async function getWebhook(db: Db, id: string): Promise<WebhookDoc> {
  const doc = typeof id === 'string' && WEBHOOK_ID_PATTERN.test(id) ? await collections(db).webhooks.findOne({ _id: id }) : null
  if (!doc) throw new WebhookError('unknown_webhook', `unknown webhook "${id}"`)
  return doc
}

/**
 * Removes an endpoint. Deliveries still queued for it then end without a request (the worker
 * reads the endpoint at each attempt); its dead letters stay until retried or cleared.
 */
export async function removeWebhook(db: Db, id: string, actor: string): Promise<WebhookInfo> {
  checkActor(actor)
  const doc = await getWebhook(db, id)
  await collections(db).webhooks.deleteOne({ _id: doc._id })
  await audit(db, actor, 'webhook.remove', { webhook_id: doc._id, workspace_id: doc.workspace_id, url: doc.url })
  const ws = await collections(db).workspaces.findOne({ _id: doc.workspace_id }, { projection: { slug: 1 } })
  return info(doc, ws?.slug ?? null)
}
