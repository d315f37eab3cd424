// Turns a session body into its `test_sessions` document: known fields normalised (dates as
// BSON dates), client JSON made storable (shared/json-storage.ts), unknown fields kept in
// `extra`, and what is wrong with the body listed in `validation`. Nothing here refuses a body.
import type { Document } from 'mongodb'
import { toStorable, type StorageRewrite } from '../shared/json-storage.ts'
import type { SessionJob } from '../shared/queues.ts'
import {
  KNOWN_CONFIGURATION_FIELDS,
  KNOWN_RESULT_FIELDS,
  KNOWN_SESSION_FIELDS,
  parseTimestamp,
  validateSessionBody,
  type ValidationIssue,
} from '../shared/session-schema.ts'
import { isPlainObject, own } from './context.ts'

export const MAX_STORAGE_NOTES = 20

/** The validation issue of a body that was not valid UTF-8 (the job's `body_invalid_utf8`). */
export const INVALID_UTF8_ISSUE: ValidationIssue = {
  path: 'raw_body',
  message: 'the body was not valid UTF-8: raw_body has U+FFFD where the invalid bytes were (raw_sha256 is of the bytes received)',
}

/** Collects issues and storage notes while fields are normalised. */
export class Notes {
  readonly issues: ValidationIssue[]
  readonly storage: { path: string; rule: StorageRewrite }[] = []
  private readonly issuePaths: Set<string>

  constructor(initial: ValidationIssue[] = []) {
    this.issues = [...initial]
    this.issuePaths = new Set(initial.map((i) => i.path))
  }

  /** Adds an issue unless the schema already reported this path. */
  issue(path: string, message: string): void {
    if (this.issuePaths.has(path)) return
    this.issuePaths.add(path)
    this.issues.push({ path, message })
  }

  readonly onRewrite = (path: string, rule: StorageRewrite): void => {
    if (this.storage.length < MAX_STORAGE_NOTES) this.storage.push({ path, rule })
  }

  /** Client JSON at `path`, made storable; undefined (absent) becomes null. */
  value(v: unknown, path: string): unknown {
    return v === undefined ? null : toStorable(v, { path, onRewrite: this.onRewrite })
  }

  /** The named fields of a client object (our names, not the client's keys), each made storable; absent → null. */
  fields(obj: Record<string, unknown>, names: readonly string[], path: string): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const name of names) out[name] = this.value(own(obj, name), `${path}/${name}`)
    return out
  }

  /** A timestamp field: a Date, or null with an issue when present but not a date-time. */
  date(v: unknown, path: string): Date | null {
    if (v === undefined || v === null) return null
    const parsed = parseTimestamp(v)
    if (parsed.issue) this.issue(path, parsed.issue)
    return parsed.date
  }

  /** Fields of `obj` not in `known`, made storable; null when there are none. */
  extra(obj: Record<string, unknown>, known: Set<string>, path: string): Record<string, unknown> | null {
    const rest = Object.create(null) as Record<string, unknown>
    let any = false
    for (const key of Object.keys(obj)) {
      if (known.has(key)) continue
      Object.defineProperty(rest, key, { value: obj[key], enumerable: true, writable: true, configurable: true })
      any = true
    }
    return any ? (toStorable(rest, { path, onRewrite: this.onRewrite }) as Record<string, unknown>) : null
  }

  validation() {
    return { ok: this.issues.length === 0, errors: this.issues }
  }
}

// The normalised fields, in the order they are stored (README: test_sessions).
const CONFIGURATION_FIELDS = [
  'session_type',
  'provision_mode',
  'provision_mode_data',
  'classifier_mode',
  'cloudworks_context',
  'flavor_text',
  'flavor_text_two',
  'output_session_translator_id',
  'output_result_translator_id',
  'flags',
] as const
const RESULT_FIELDS = ['main_image_path', 'raw_image_file_path', 'images', 'results', 'results_classifier'] as const

export function buildSessionDocument(job: SessionJob, body: Record<string, unknown>, receivedAt: Date): Document {
  const notes = new Notes(validateSessionBody(body))
  if (job.body_invalid_utf8) notes.issue(INVALID_UTF8_ISSUE.path, INVALID_UTF8_ISSUE.message)
  const get = (key: string) => own(body, key)

  const id = get('id')
  if (id !== undefined && id !== job.session_id) notes.issue('/id', 'differs from the session id in the URL; the URL id is the one used')

  const cfg = get('configuration')
  const configuration = isPlainObject(cfg)
    ? {
        ...notes.fields(cfg, CONFIGURATION_FIELDS, '/configuration'),
        extra: notes.extra(cfg, KNOWN_CONFIGURATION_FIELDS, '/configuration'),
      }
    : null

  const res = get('result')
  const result = isPlainObject(res)
    ? {
        time_read: notes.date(own(res, 'time_read'), '/result/time_read'),
        ...notes.fields(res, RESULT_FIELDS, '/result'),
        extra: notes.extra(res, KNOWN_RESULT_FIELDS, '/result'),
      }
    : null

  const doc: Document = {
    ...recordFields(job, receivedAt),
    body_id: notes.value(id, '/id'),
    state: notes.value(get('state'), '/state'),
    test_profile_id: notes.value(get('test_profile_id'), '/test_profile_id'),
    time_started: notes.date(get('time_started'), '/time_started'),
    time_resolved: notes.date(get('time_resolved'), '/time_resolved'),
    time_expired: notes.date(get('time_expired'), '/time_expired'),
    configuration,
    result,
    metrics: notes.value(get('metrics'), '/metrics'),
    extra: notes.extra(body, KNOWN_SESSION_FIELDS, ''),
    validation: notes.validation(),
  }
  if (notes.storage.length > 0) doc.storage_notes = notes.storage
  return doc
}

/** What every session record holds, normalised or not: whose it is, when it came, and the exact body. */
function recordFields(job: SessionJob, receivedAt: Date) {
  return {
    workspace_id: job.workspace_id,
    session_id: job.session_id,
    token_id: job.token_id,
    received_at: receivedAt,
    raw_body: job.body,
    raw_sha256: job.sha256,
  }
}

/** The record kept when the normalised document cannot be stored: ids, raw body, and why. */
export function sessionFallbackDocument(job: SessionJob, receivedAt: Date, reason: string, issues: ValidationIssue[] = []): Document {
  return {
    ...recordFields(job, receivedAt),
    validation: {
      ok: false,
      errors: [
        ...issues,
        { path: 'storage_fallback', message: `normalised document could not be stored (${reason}); reprocess from raw_body` },
      ],
    },
  }
}
