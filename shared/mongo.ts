// MongoDB collection names and document shapes. The collections are the analysts' interface
// (documented in README.md): change a field only on purpose, and document the change.
import { MongoClient, type Db, type WriteConcernSettings } from 'mongodb'
import type { Permission } from './permissions.ts'

/** MongoDB's duplicate key error: a unique index refused the document (already stored). */
export const DUPLICATE_KEY = 11000

/** A server error, or one write error of a bulk write, that a unique index raised. */
export function isDuplicateKey(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === DUPLICATE_KEY
}

export interface WorkspaceDoc {
  _id: string
  slug: string
  name: string
  active: boolean
  created_at: Date
  updated_at: Date
  /** Requests per minute per token of this workspace; absent or null = the gateway's RATE_LIMIT_PER_MINUTE, 0 = no limit. */
  rate_limit_per_minute?: number | null
  /**
   * The Redis shard its work goes through (shared/redis-shards.ts), chosen at creation and changed
   * only by `workspace move-shard`; absent = 0 (workspaces created before shards existed).
   */
  redis_shard?: number
  /** Set while `workspace move-shard` runs: the shard it is leaving, whose queued jobs are still draining. */
  redis_shard_moving_from?: number | null
  /** Days each kind of data is kept after it was received; absent, or a kind absent or null = kept for ever (shared/retention.ts). */
  retention?: { photos?: number | null; logs?: number | null; sessions?: number | null }
}

export interface TokenDoc {
  _id: string
  workspace_id: string
  /** sha256 of the token; the token itself is never stored. */
  token_hash: string
  label: string | null
  permissions: Permission[]
  created_at: Date
  /** Set on every change; orders writes to the Redis mirror (see token-registry.ts). */
  updated_at?: Date
  expires_at: Date | null
  revoked_at: Date | null
}

/** The events an outbound webhook endpoint can subscribe to (README "Forwarding"). */
export const WEBHOOK_EVENTS = ['session.stored', 'media.stored', 'logs.stored'] as const
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number]

/**
 * An outbound webhook endpoint of a workspace. `secret` is the HMAC signing secret the worker
 * signs every delivery with, so it is kept as given (a hash could not sign); it is a shared secret
 * with the receiver, not a credential to anything of ours, and is never shown again after `add`.
 * Not in the analysts' interface.
 */
export interface WebhookDoc {
  _id: string
  workspace_id: string
  url: string
  secret: string
  events: WebhookEvent[]
  created_at: Date
  disabled: boolean
}

/**
 * A tombstone (deletion/tombstones.ts): what `session delete` and `workspace purge` leave behind,
 * with no content, so that a phone's retry of a deleted session is answered 409 and a job still
 * queued for it stores nothing. `_id` is "<workspace_id>/<session_id>", or "<workspace_id>/*" for a
 * purged workspace (session_id null: every session it received up to deleted_at). Analysts' interface.
 */
export interface DeletedSessionDoc {
  _id: string
  workspace_id: string
  session_id: string | null
  deleted_at: Date
}

export interface AuditDoc {
  at: Date
  actor: string
  action: string
  target: Record<string, unknown>
}

export const COLLECTIONS = {
  workspaces: 'workspaces',
  tokens: 'tokens',
  audit: 'audit_log',
  sessions: 'test_sessions',
  conflicts: 'test_session_conflicts',
  logs: 'test_session_logs',
  logBatches: 'test_session_log_batches',
  media: 'test_session_media',
  webhooks: 'webhooks',
  deletedSessions: 'deleted_sessions',
} as const

export function collections(db: Db) {
  return {
    workspaces: db.collection<WorkspaceDoc>(COLLECTIONS.workspaces),
    tokens: db.collection<TokenDoc>(COLLECTIONS.tokens),
    audit: db.collection<AuditDoc>(COLLECTIONS.audit),
    sessions: db.collection(COLLECTIONS.sessions),
    conflicts: db.collection(COLLECTIONS.conflicts),
    logs: db.collection(COLLECTIONS.logs),
    logBatches: db.collection(COLLECTIONS.logBatches),
    media: db.collection(COLLECTIONS.media),
    webhooks: db.collection<WebhookDoc>(COLLECTIONS.webhooks),
    deletedSessions: db.collection<DeletedSessionDoc>(COLLECTIONS.deletedSessions),
  }
}

/** Connects with the configured write concern; the database name comes from the URL (default `rdt`). */
export async function connectMongo(url: string, writeConcern: string | number = 'majority'): Promise<{ client: MongoClient; db: Db }> {
  const w: WriteConcernSettings = { w: writeConcern as WriteConcernSettings['w'] }
  const client = new MongoClient(url, { writeConcern: w, serverSelectionTimeoutMS: 5000, appName: 'rdt-ingest' })
  await client.connect()
  const db = client.db(new URL(url).pathname.replace(/^\//, '') || 'rdt')
  return { client, db }
}

/** The unique indexes back the 409s and make every worker write idempotent; creating them is idempotent too. */
export async function ensureIndexes(db: Db): Promise<void> {
  const c = collections(db)
  await Promise.all([
    c.workspaces.createIndex({ slug: 1 }, { unique: true }),
    c.tokens.createIndex({ token_hash: 1 }, { unique: true }),
    c.tokens.createIndex({ workspace_id: 1 }),
    c.audit.createIndex({ at: -1 }),
    c.sessions.createIndex({ workspace_id: 1, session_id: 1 }, { unique: true }),
    c.sessions.createIndex({ workspace_id: 1, received_at: -1 }),
    c.conflicts.createIndex({ workspace_id: 1, session_id: 1, media_id: 1, sha256: 1 }, { unique: true }),
    c.logs.createIndex({ workspace_id: 1, session_id: 1, timestamp: 1 }),
    c.logBatches.createIndex({ workspace_id: 1, session_id: 1, sha256: 1 }, { unique: true }),
    c.media.createIndex({ workspace_id: 1, session_id: 1, media_id: 1 }, { unique: true }),
    c.webhooks.createIndex({ workspace_id: 1 }),
    c.deletedSessions.createIndex({ workspace_id: 1 }),
    // The retention run's queries: a workspace's records received before a cutoff
    // (worker/processors/retention.ts); test_sessions has its own above.
    c.conflicts.createIndex({ workspace_id: 1, received_at: 1 }),
    c.logs.createIndex({ workspace_id: 1, received_at: 1 }),
    c.logBatches.createIndex({ workspace_id: 1, received_at: 1 }),
    c.media.createIndex({ workspace_id: 1, received_at: 1 }),
  ])
}
