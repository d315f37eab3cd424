// How a stored session is read for the figures, the filters and the export. One place, so the
// dashboard, the list and the CSV always agree (documented in admin/README-section.md).
import { stringMap } from '../views/format.ts'

export type Outcome = 'positive' | 'negative' | 'other'

/**
 * A result value is positive when it ends in `_pos` or equals `positive`, negative when it ends
 * in `_neg` or equals `negative` (case-insensitive); anything else (`_invalid`, `universal_control_failure`,
 * free text) is "other".
 */
export function outcomeOf(value: string): Outcome {
  const v = value.trim().toLowerCase()
  if (v === 'positive' || v.endsWith('_pos')) return 'positive'
  if (v === 'negative' || v.endsWith('_neg')) return 'negative'
  return 'other'
}

export type Validity = 'too_early' | 'on_time' | 'too_late' | 'unknown'
export const VALIDITY_LABELS: Record<Validity, string> = {
  too_early: 'too early',
  on_time: 'on time',
  too_late: 'too late',
  unknown: 'unknown',
}

/**
 * When the photo was read, against the test's window: before `time_resolved` is too early,
 * from `time_resolved` to `time_expired` (inclusive) is on time, after `time_expired` is too late.
 * Without `time_expired` every read at or after `time_resolved` is on time. Without `time_read`
 * or `time_resolved` the validity is unknown.
 */
export function validityOf(doc: Record<string, unknown>): Validity {
  const read = (doc.result as { time_read?: unknown } | null | undefined)?.time_read
  const resolved = doc.time_resolved
  if (!(read instanceof Date) || !(resolved instanceof Date)) return 'unknown'
  if (read.getTime() < resolved.getTime()) return 'too_early'
  const expired = doc.time_expired
  if (expired instanceof Date && read.getTime() > expired.getTime()) return 'too_late'
  return 'on_time'
}

export interface ReadingSummary {
  results: Map<string, string>
  classifier: Map<string, string>
  /** 'positive' if any user result is positive, else 'negative' if any is negative, else null (no usable result). */
  overall: 'positive' | 'negative' | null
  /** Diagnoses where both the user and the classifier gave a value: how many agree. */
  compared: number
  agreed: number
}

export function readingOf(doc: Record<string, unknown>): ReadingSummary {
  const r = (doc.result ?? null) as { results?: unknown; results_classifier?: unknown } | null
  const results = stringMap(r?.results)
  const classifier = stringMap(r?.results_classifier)
  let overall: ReadingSummary['overall'] = null
  for (const v of results.values()) {
    const o = outcomeOf(v)
    if (o === 'positive') overall = 'positive'
    else if (o === 'negative' && overall === null) overall = 'negative'
  }
  let compared = 0
  let agreed = 0
  for (const [k, v] of results) {
    const c = classifier.get(k)
    if (c === undefined) continue
    compared++
    if (c === v) agreed++
  }
  return { results, classifier, overall, compared, agreed }
}

/** Image keys named by `result.images` (decoded). */
export function imageKeysOf(doc: Record<string, unknown>): string[] {
  return [...stringMap((doc.result as { images?: unknown } | null | undefined)?.images).keys()]
}
