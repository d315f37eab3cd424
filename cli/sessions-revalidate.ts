// `sessions revalidate`: recomputes the normalised fields and `validation` of stored test_sessions
// documents from their raw_body, with the worker's own code (worker/session-document.ts), so a
// document stored under older rules (for example, before the enum lists were corrected to the client's own) reads as a new upload would.
//
// Safety, on MongoDB and on FerretDB v1 alike (no transactions):
// - Only the normalised fields are written. The record itself (ids, raw_body, raw_sha256,
//   received_at, token_id) is never touched, and every update is filtered on {_id, raw_sha256}
//   (plus the document's own workspace_id and session_id, which route it on a sharded cluster),
//   so a document that changed meanwhile is skipped rather than overwritten.
// - A document whose recomputed fields equal the stored ones is not written (idempotent: a
//   second run changes nothing).
// - Resuming after a crash is re-running. Documents are read in _id order and each update stands
//   alone, so a re-run passes over the finished ones as unchanged and goes on where the first
//   stopped. No checkpoint is stored on purpose: correctness never depends on one, and a stale
//   one would make a run after the next rule change skip documents. The cost of a re-run is one
//   more read pass (FerretDB here: about 40,000 documents in 5 s).
// - Memory is bounded: one cursor read in batches of READ_BATCH documents, and updates sent
//   UPDATES_PER_CALL at a time (or sooner, past UPDATE_BYTES of bodies).
//
// Shaped by FerretDB v1 (the local stack), measured here; MongoDB is fast either way:
// - One cursor, not a new `_id > last` query per batch: FerretDB sorts in memory without pushing
//   the limit down, so each such query rescans the collection (4.6 s per batch of 500 at 40,000
//   documents, quadratic overall; one cursor over the same 40,000: 5 s).
// - Few updates per call: FerretDB keeps every statement's read iterator of an `update` command
//   open until the command ends, and a call of 120 statements did not finish in minutes.
// - Each update costs FerretDB a scan of the collection (it pushes down only a filter that is
//   exactly {_id}), 30-60 ms here at 500 documents. On a large local collection a run is slow;
//   on MongoDB the {_id, raw_sha256} filter is served by the _id index.
import { isDeepStrictEqual } from 'node:util'
import { BSON, MongoBulkWriteError, type AnyBulkWriteOperation, type Collection, type Db, type Document, type Filter } from 'mongodb'
import { collections } from '../shared/mongo.ts'
import type { SessionJob } from '../shared/queues.ts'
import { DEFAULT_MAX_DOCUMENT_BYTES } from '../worker/batch-writer.ts'
import { isPlainObject } from '../worker/context.ts'
import { describeError, isPermanentDocumentError } from '../worker/mongo-errors.ts'
import { buildSessionDocument, INVALID_UTF8_ISSUE } from '../worker/session-document.ts'

export const READ_BATCH = 500
const UPDATES_PER_CALL = 10
const UPDATE_BYTES = 16 * 1024 * 1024

/** The record as received: never rewritten here. */
const RECORD_FIELDS = new Set(['_id', 'workspace_id', 'session_id', 'token_id', 'received_at', 'raw_body', 'raw_sha256'])
/** Present only when the storage rule changed a type; removed when a recomputation has none. */
const OPTIONAL_FIELDS = ['storage_notes'] as const

export type SkipReason =
  /** raw_body does not parse as JSON (the worker never stores such a session, but a record is a record). */
  | 'not_json'
  /** raw_body is JSON but not an object. */
  | 'not_an_object'
  /** ids, raw_body or raw_sha256 missing or not strings: nothing to rebuild from. */
  | 'incomplete_record'
  /** buildSessionDocument threw (the worker stores a fallback document in that case). */
  | 'normalisation_failed'
  /** The recomputed document is over the worker's size limit, or the database refused it. */
  | 'refused'
  /** raw_sha256 changed, or the document was removed, between the read and the update. */
  | 'changed_meanwhile'

export interface RevalidateCounts {
  scanned: number
  changed: number
  unchanged: number
  skipped: number
  skipped_by_reason: Partial<Record<SkipReason, number>>
}

export interface RevalidateResult extends RevalidateCounts {
  /** null: every workspace. */
  workspace: { id: string; slug: string } | null
}

/** The job the gateway would have enqueued for this stored document; null when a field it needs is missing. */
export function sessionJobFromStored(doc: Document): SessionJob | null {
  const { workspace_id, session_id, token_id, received_at, raw_sha256, raw_body } = doc
  if (![workspace_id, session_id, token_id, raw_sha256, raw_body].every((v) => typeof v === 'string')) return null
  const job: SessionJob = {
    kind: 'session',
    workspace_id,
    session_id,
    token_id,
    received_at: received_at instanceof Date ? received_at.toISOString() : String(received_at),
    sha256: raw_sha256,
    body: raw_body,
  }
  // The only trace of invalid UTF-8 is the issue the worker stored (raw_body already holds U+FFFD
  // instead of the bytes). A record whose normalisation failed at ingest has no issues kept, so
  // for such a record this cannot be known: the rebuilt document then lacks that one issue.
  const errors = (doc.validation as { errors?: unknown } | undefined)?.errors
  if (Array.isArray(errors) && errors.some((e) => isPlainObject(e) && e.path === INVALID_UTF8_ISSUE.path)) job.body_invalid_utf8 = true
  return job
}

export type Rebuilt = { update: { $set: Document; $unset?: Document } | null } | { skip: SkipReason }

/**
 * The update that makes `stored` what the worker would store today, or `update: null` when it
 * already is. Compared as the database hands documents back (a BSON round trip), so numbers,
 * dates and key order compare as stored values, not as the JavaScript objects the worker built.
 */
export function rebuild(stored: Document): Rebuilt {
  const job = sessionJobFromStored(stored)
  if (!job) return { skip: 'incomplete_record' }
  let body: unknown
  try {
    body = JSON.parse(job.body)
  } catch {
    return { skip: 'not_json' }
  }
  if (!isPlainObject(body)) return { skip: 'not_an_object' }
  let built: Document
  try {
    built = buildSessionDocument(job, body, stored.received_at instanceof Date ? stored.received_at : new Date(job.received_at))
  } catch {
    return { skip: 'normalisation_failed' }
  }

  const $set: Document = {}
  for (const [k, v] of Object.entries(built)) if (!RECORD_FIELDS.has(k)) $set[k] = v
  const $unset: Document = {}
  for (const k of OPTIONAL_FIELDS) if (!Object.hasOwn($set, k) && Object.hasOwn(stored, k)) $unset[k] = ''

  const asStored = BSON.deserialize(BSON.serialize($set))
  const same =
    Object.keys($unset).length === 0 && Object.keys($set).every((k) => Object.hasOwn(stored, k) && sameStoredValue(stored[k], asStored[k]))
  if (same) return { update: null }
  // The whole document as it would be after the update: the worker's own size rule.
  if (BSON.calculateObjectSize({ ...stored, ...$set }) > DEFAULT_MAX_DOCUMENT_BYTES) return { skip: 'refused' }
  return { update: Object.keys($unset).length > 0 ? { $set, $unset } : { $set } }
}

/**
 * Deep equality of two values as read back from the database. Key order is ignored (a server may
 * reorder), and 0 equals -0: FerretDB stores a client's -0 as 0, MongoDB keeps it, and with strict
 * equality such a document would be rewritten by every run. Anything other than JSON-shaped
 * values (an ObjectId, a Long: never written by the worker) must be strictly equal.
 */
export function sameStoredValue(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime()
  if (Array.isArray(a) || Array.isArray(b))
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameStoredValue(v, b[i]))
  if (!isJsonObject(a) || !isJsonObject(b)) return isDeepStrictEqual(a, b)
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameStoredValue(a[k], b[k]))
}

function isJsonObject(v: unknown): v is Record<string, unknown> {
  if (!isPlainObject(v)) return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

export interface RevalidateOptions {
  db: Db
  actor: string
  workspace: { id: string; slug: string } | null
  /** Called every READ_BATCH documents with the counts so far (changes not yet sent are not counted). */
  onProgress?: (counts: RevalidateCounts) => void
}

function countSkip(counts: RevalidateCounts, reason: SkipReason, n = 1): void {
  if (n <= 0) return
  counts.skipped += n
  counts.skipped_by_reason[reason] = (counts.skipped_by_reason[reason] ?? 0) + n
}

/** Collects updates and sends them UPDATES_PER_CALL at a time (or sooner, past UPDATE_BYTES), counting what they did. */
function updateBatcher(sessions: Collection<Document>, counts: RevalidateCounts) {
  let ops: AnyBulkWriteOperation[] = []
  let opsBytes = 0
  async function flush(): Promise<void> {
    if (ops.length === 0) return
    const sent = ops
    ops = []
    opsBytes = 0
    let matched: number
    let refused = 0
    try {
      matched = (await sessions.bulkWrite(sent, { ordered: false })).matchedCount
    } catch (err) {
      // Unordered: the other updates were applied. A document refused for what it is stays as it
      // was (counted); anything else (server down) ends the run, and a re-run picks up from here.
      if (!(err instanceof MongoBulkWriteError)) throw err
      const errors = [err.writeErrors].flat()
      if (errors.length === 0 || errors.some((e) => !isPermanentDocumentError(e))) throw err
      refused = errors.length
      matched = err.result.matchedCount
    }
    counts.changed += matched
    countSkip(counts, 'refused', refused)
    countSkip(counts, 'changed_meanwhile', sent.length - matched - refused)
  }
  return {
    flush,
    async add(doc: Document, update: Document): Promise<void> {
      // workspace_id and session_id are the planned shard key (bench/README.md, MongoDB sharding
      // plan): with them a sharded cluster sends the update to the one shard that holds the
      // document; on _id alone it would ask every shard. They never change, so the filter still
      // matches exactly the document read.
      const filter = { workspace_id: doc.workspace_id, session_id: doc.session_id, _id: doc._id, raw_sha256: doc.raw_sha256 }
      ops.push({ updateOne: { filter, update } })
      opsBytes += typeof doc.raw_body === 'string' ? doc.raw_body.length : 0
      if (ops.length >= UPDATES_PER_CALL || opsBytes >= UPDATE_BYTES) await flush()
    },
  }
}

export async function revalidateSessions(opts: RevalidateOptions): Promise<RevalidateResult> {
  const c = collections(opts.db)
  const counts: RevalidateCounts = { scanned: 0, changed: 0, unchanged: 0, skipped: 0, skipped_by_reason: {} }
  const batch = updateBatcher(c.sessions, counts)
  const filter: Filter<Document> = opts.workspace ? { workspace_id: opts.workspace.id } : {}
  const cursor = c.sessions.find(filter).sort({ _id: 1 }).batchSize(READ_BATCH)
  let completed = false
  let failure: string | undefined
  try {
    for await (const doc of cursor) {
      counts.scanned++
      const r = rebuild(doc)
      if ('skip' in r) countSkip(counts, r.skip)
      else if (r.update === null) counts.unchanged++
      else await batch.add(doc, r.update)
      if (counts.scanned % READ_BATCH === 0) opts.onProgress?.(counts)
    }
    await batch.flush()
    completed = true
  } catch (err) {
    failure = describeError(err)
    throw err
  } finally {
    await cursor.close().catch(() => {})
    await auditRun(c.audit, opts, counts, completed, failure)
  }
  return { workspace: opts.workspace, ...counts }
}

/** One entry per run, also for a run that stopped half way: what it changed is on record. */
async function auditRun(
  audit: ReturnType<typeof collections>['audit'],
  opts: RevalidateOptions,
  counts: RevalidateCounts,
  completed: boolean,
  failure: string | undefined,
): Promise<void> {
  const target = {
    workspace_id: opts.workspace?.id ?? null,
    slug: opts.workspace?.slug ?? null,
    ...counts,
    completed,
    ...(failure ? { error: failure } : {}),
  }
  await audit.insertOne({ at: new Date(), actor: opts.actor, action: 'sessions.revalidate', target }).catch((err: unknown) => {
    // A run that failed reports its own error, not the audit write's.
    if (completed) throw err
  })
}
