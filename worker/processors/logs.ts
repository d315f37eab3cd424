// The `logs` queue: keeps the batch (exact body) in test_session_log_batches and one document
// per entry in test_session_logs. Entry ids are derived from the entry's content, so a replay,
// even of a differently formatted body carrying the same entries, stores nothing twice.
//
// At most LOGS_MAX_ENTRIES entries of a body become documents (a 5 MiB body of
// `[0,0,0,…]` is 2.6 million entries, about 17 minutes of worker time from one request). The
// rest stay in the batch's raw_body, and the batch says so (`truncated`, `stored_entry_count`).
import { UnrecoverableError, type Job } from 'bullmq'
import { createHash } from 'node:crypto'
import type { Document } from 'mongodb'
import { canonicalJson } from '../../shared/json-storage.ts'
import type { LogsJob } from '../../shared/queues.ts'
import type { ValidationIssue } from '../../shared/session-schema.ts'
import {
  checkNotCancelled,
  insertWithFallback,
  isPlainObject,
  own,
  parseReceivedAt,
  validatePayload,
  type ProcessorDeps,
} from '../context.ts'
import { markAccepted } from '../../shared/idempotency.ts'
import { INVALID_UTF8_ISSUE, Notes } from '../session-document.ts'
import { insertedId } from '../webhook-fanout.ts'
import { deletedBefore, erasedAfter } from '../deleted-sessions.ts'

const KNOWN_ENTRY_FIELDS = new Set(['timestamp', 'tag', 'message', 'json', 'media_key'])
/** Entries are written this many at a time, bounding a huge batch's memory and open promises. */
const ENTRY_CHUNK = 500

/**
 * `_id` of a log entry: sha256 of workspace, session, the entry's canonical JSON (`canonicalJson`) and how many
 * identical entries came before it in the same batch (so genuine repeats are all kept).
 */
export function logEntryId(ws: string, session: string, canonicalEntry: string, occurrence: number): string {
  return createHash('sha256').update(`${ws}\n${session}\n${canonicalEntry}\n${occurrence}`).digest('hex')
}

/** Finds the entries array: `{"entries": [...]}` (the client's shape) or a bare array. */
function entriesOf(body: unknown): { entries: unknown[]; issues: ValidationIssue[] } {
  if (Array.isArray(body)) return { entries: body, issues: [{ path: '', message: 'a bare array; expected {"entries": [...]}' }] }
  if (isPlainObject(body)) {
    const entries = own(body, 'entries')
    if (Array.isArray(entries)) {
      const others = Object.keys(body).filter((k) => k !== 'entries')
      return {
        entries,
        issues: others.length ? [{ path: '', message: `unexpected fields besides "entries" (${others.length}); kept in raw_body` }] : [],
      }
    }
    return { entries: [], issues: [{ path: '/entries', message: 'must be an array of log entries' }] }
  }
  return { entries: [], issues: [{ path: '', message: 'must be an object with "entries"' }] }
}

/** The fields every entry document has, normalised or not: where it came from. */
function entryBase(data: LogsJob, receivedAt: Date, index: number, id: string) {
  return {
    _id: id,
    workspace_id: data.workspace_id,
    session_id: data.session_id,
    token_id: data.token_id,
    received_at: receivedAt,
    batch_sha256: data.sha256,
    batch_index: index,
  }
}

function entryDocument(data: LogsJob, receivedAt: Date, entry: unknown, index: number, id: string): Document {
  const base = entryBase(data, receivedAt, index, id)
  const notes = new Notes()
  if (!isPlainObject(entry)) {
    notes.issue('', 'log entry is not an object; kept in value')
    return {
      ...base,
      timestamp: null,
      tag: null,
      message: null,
      json: null,
      media_key: null,
      value: notes.value(entry, ''),
      validation: notes.validation(),
    }
  }
  const str = (key: string) => {
    const v = own(entry, key)
    if (v !== undefined && v !== null && typeof v !== 'string') notes.issue(`/${key}`, 'must be string')
    return notes.value(v, `/${key}`)
  }
  const timestamp = own(entry, 'timestamp')
  if (timestamp === undefined) notes.issue('/timestamp', 'missing')
  const doc: Document = {
    ...base,
    timestamp: notes.date(timestamp, '/timestamp'),
    tag: str('tag'),
    message: str('message'),
    // The spec says a string; real clients send an object. Either is kept.
    json: notes.value(own(entry, 'json'), '/json'),
    media_key: str('media_key'),
    extra: notes.extra(entry, KNOWN_ENTRY_FIELDS, ''),
    validation: notes.validation(),
  }
  if (notes.storage.length > 0) doc.storage_notes = notes.storage
  return doc
}

export function createLogsProcessor(deps: ProcessorDeps) {
  const log = deps.logger.child({ queue: 'logs' })

  return async function processLogs(
    job: Job,
    _token?: string,
    signal?: AbortSignal,
  ): Promise<{ entries: number; inserted: number; deleted?: true }> {
    const data = validatePayload('logs', job.data)
    const receivedAt = parseReceivedAt(data.received_at)
    const jobLog = log.child({ jobId: job.id })
    if (await deletedBefore(deps, data, receivedAt, jobLog)) return { entries: 0, inserted: 0, deleted: true }
    let body: unknown
    try {
      body = JSON.parse(data.body)
    } catch {
      throw new UnrecoverableError('logs body is not JSON')
    }
    const { entries: all, issues } = entriesOf(body)
    if (data.body_invalid_utf8) issues.push(INVALID_UTF8_ISSUE)
    const truncated = all.length > deps.config.logsMaxEntries
    const entries = truncated ? all.slice(0, deps.config.logsMaxEntries) : all
    if (truncated)
      jobLog.warn(
        { entries: all.length, stored: entries.length, session_id: data.session_id, workspace_id: data.workspace_id },
        'log batch truncated to LOGS_MAX_ENTRIES',
      )

    // The batch first: it carries the exact body, so the record exists even if entries fail.
    const batchBase = {
      workspace_id: data.workspace_id,
      session_id: data.session_id,
      token_id: data.token_id,
      sha256: data.sha256,
      raw_body: data.body,
      received_at: receivedAt,
      entry_count: all.length,
      stored_entry_count: entries.length,
      truncated,
    }
    const batchDoc: Document = { ...batchBase, validation: { ok: issues.length === 0, errors: issues } }
    const batchStored = await insertWithFallback(
      deps.writers.logBatches,
      batchDoc,
      (reason) => ({ ...batchBase, validation: { ok: false, errors: [...issues, { path: 'storage_fallback', message: reason }] } }),
      jobLog,
      'log batch',
    )

    const occurrences = new Map<string, number>()
    let inserted = 0
    for (let start = 0; start < entries.length; start += ENTRY_CHUNK) {
      checkNotCancelled(signal)
      const chunk = entries.slice(start, start + ENTRY_CHUNK)
      const outcomes = await Promise.all(
        chunk.map((entry, i) => {
          const index = start + i
          const canonical = canonicalJson(entry)
          const occurrence = occurrences.get(canonical) ?? 0
          occurrences.set(canonical, occurrence + 1)
          const id = logEntryId(data.workspace_id, data.session_id, canonical, occurrence)
          let doc: Document
          try {
            doc = entryDocument(data, receivedAt, entry, index, id)
          } catch (err) {
            doc = entryFallback(data, receivedAt, index, id, `normalisation failed: ${(err as Error).message}`)
          }
          return insertWithFallback(
            deps.writers.logs,
            doc,
            (reason) => entryFallback(data, receivedAt, index, id, reason),
            jobLog,
            'log entry',
          )
        }),
      )
      inserted += outcomes.filter((o) => o === 'inserted').length
    }
    // Deleted while this job stored: nothing of it stays, nothing is forwarded.
    if (await erasedAfter(deps, data, receivedAt, jobLog)) return { entries: all.length, inserted: 0, deleted: true }

    await deps.webhooks.recordStored({
      event: 'logs.stored',
      workspace_id: data.workspace_id,
      session_id: data.session_id,
      extra: data.sha256,
      record_id: batchStored === 'inserted' ? insertedId(batchDoc) : undefined,
    })
    await markAccepted(deps, 'l', data.workspace_id, data.session_id, data.sha256, data.sha256)
    return { entries: all.length, inserted }
  }
}

/** An entry that cannot be stored as normalised: its place is kept; its content is in the batch's raw_body. */
function entryFallback(data: LogsJob, receivedAt: Date, index: number, id: string, reason: string): Document {
  return {
    ...entryBase(data, receivedAt, index, id),
    timestamp: null,
    tag: null,
    message: null,
    json: null,
    media_key: null,
    validation: {
      ok: false,
      errors: [{ path: 'storage_fallback', message: `entry could not be stored (${reason}); see the batch's raw_body` }],
    },
  }
}
