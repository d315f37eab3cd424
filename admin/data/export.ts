// CSV and NDJSON exports of a workspace's sessions for a date range (by received_at). Rows are
// streamed from a MongoDB cursor into the response, a batch at a time, so memory stays flat
// however large the range is. Columns are documented in admin/README-section.md.
import { Readable } from 'node:stream'
import type { Db, Document } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { decodeKeys } from '../views/format.ts'
import { imageKeysOf, readingOf, validityOf } from './readings.ts'

export const CSV_COLUMNS = [
  'session_id',
  'received_at',
  'token_id',
  'state',
  'test_profile_id',
  'session_type',
  'provision_mode',
  'classifier_mode',
  'cloudworks_context',
  'time_started',
  'time_resolved',
  'time_expired',
  'time_read',
  'validity',
  'overall_result',
  'results',
  'results_classifier',
  'classifier_compared',
  'classifier_agreed',
  'image_keys',
  'validation_ok',
  'validation_errors',
  'flags',
  'raw_sha256',
] as const

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : '')
const text = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v))
const json = (v: unknown) => (v === null || v === undefined ? '' : JSON.stringify(decodeKeys(v)))

/**
 * A value a spreadsheet could run as a formula (OWASP CSV injection): one that starts with
 * = + - @, a tab or a carriage return, or their full-width forms ＝ ＋ － ＠ (which some
 * spreadsheets fold to ASCII), possibly after leading white space (ASCII, no-break, ideographic…),
 * which spreadsheets trim before parsing.
 */
export const FORMULA_START = /^[\s\u00a0\u2000-\u200b\u3000\ufeff]*[=+\-@\t\r\uff1d\uff0b\uff0d\uff20]/

/**
 * One CSV field (RFC 4180). A value that could start a formula (FORMULA_START) is prefixed with
 * a single quote, so a spreadsheet never runs it; JSON columns start with `{` and are never
 * affected.
 */
export function csvField(value: string): string {
  let v = value
  if (FORMULA_START.test(v)) v = `'${v}`
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v
}

export function csvRow(doc: Document): string {
  const cfg = (doc.configuration ?? {}) as Record<string, unknown>
  const res = (doc.result ?? {}) as Record<string, unknown>
  const reading = readingOf(doc)
  const validation = (doc.validation ?? {}) as { ok?: unknown; errors?: unknown }
  const cells: Record<(typeof CSV_COLUMNS)[number], string> = {
    session_id: text(doc.session_id),
    received_at: iso(doc.received_at),
    token_id: text(doc.token_id),
    state: text(doc.state),
    test_profile_id: text(doc.test_profile_id),
    session_type: text(cfg.session_type),
    provision_mode: text(cfg.provision_mode),
    classifier_mode: text(cfg.classifier_mode),
    cloudworks_context: text(cfg.cloudworks_context),
    time_started: iso(doc.time_started),
    time_resolved: iso(doc.time_resolved),
    time_expired: iso(doc.time_expired),
    time_read: iso(res.time_read),
    validity: validityOf(doc),
    overall_result: reading.overall ?? '',
    results: json(res.results),
    results_classifier: json(res.results_classifier),
    classifier_compared: String(reading.compared),
    classifier_agreed: String(reading.agreed),
    image_keys: imageKeysOf(doc).join(' '),
    validation_ok: validation.ok === true ? 'true' : 'false',
    validation_errors: Array.isArray(validation.errors) && validation.errors.length ? JSON.stringify(validation.errors) : '',
    flags: json(cfg.flags),
    raw_sha256: text(doc.raw_sha256),
  }
  return CSV_COLUMNS.map((c) => csvField(cells[c])).join(',') + '\r\n'
}

/** The stored document as analysts see it in MongoDB, keys decoded, dates as ISO strings, plus derived fields. */
export function ndjsonLine(doc: Document): string {
  const { _id, ...rest } = doc
  const reading = readingOf(doc)
  const out = {
    ...(decodeKeys(rest) as Record<string, unknown>),
    derived: {
      validity: validityOf(doc),
      overall_result: reading.overall,
      classifier_compared: reading.compared,
      classifier_agreed: reading.agreed,
    },
  }
  return JSON.stringify(out) + '\n'
}

export type ExportFormat = 'csv' | 'ndjson'

export function exportStream(db: Db, workspaceId: string, from: Date, to: Date, format: ExportFormat): Readable {
  const cursor = db
    .collection(COLLECTIONS.sessions)
    .find(
      { workspace_id: workspaceId, received_at: { $gte: from, $lt: to } },
      format === 'csv' ? { projection: { raw_body: 0, metrics: 0, extra: 0 } } : {},
    )
    .sort({ received_at: 1, _id: 1 })
    .batchSize(500)
  async function* lines() {
    try {
      // The UTF-8 byte order mark makes spreadsheet programs read the file as UTF-8.
      if (format === 'csv') yield '\ufeff' + CSV_COLUMNS.join(',') + '\r\n'
      for await (const doc of cursor) yield format === 'csv' ? csvRow(doc) : ndjsonLine(doc)
    } finally {
      await cursor.close()
    }
  }
  // objectMode false + strings: the stream applies backpressure per chunk.
  return Readable.from(lines(), { objectMode: false })
}
