// The test session body as the Cloudworks RDT API describes it, widened to what the real
// client sends (docs/architecture.md §1). It is used to *describe* a body, never to refuse one: a session
// that breaks it is still stored, with `validation.ok = false` and the list of what is wrong,
// because a device answered with an error would retry the same body for ever.
import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'

/** RFC 3339 date-time. The real client writes `2021-01-25T11:02:41.118+00:00`, the spec `...Z`. */
const Timestamp = Type.String({ format: 'date-time' })
/** String-to-string maps (flags, images, results, metrics.data). Flag values are "TRUE"/"FALSE". */
const StringMap = Type.Record(Type.String(), Type.String())
const Text = Type.String({ maxLength: 100_000 })

// The client's enums, in its order, from rd-toolkit's DomainModels.kt (rd-toolkit-support):
// enum classes STATUS, SessionMode, ProvisionMode and ClassifierMode. The client serialises them by name.
// A value outside these lists is still stored (flagged), so a newer client that adds one loses
// nothing; documents stored under an older list are recomputed by `sessions revalidate`.
export const SESSION_STATES = ['BUILDING', 'RUNNING', 'COMPLETE', 'QUEUED'] as const
export const SESSION_TYPES = ['TWO_PHASE', 'ONE_PHASE'] as const
export const PROVISION_MODES = ['TEST_PROFILE', 'CRITERIA_SET_OR', 'CRITERIA_SET_AND'] as const
export const CLASSIFIER_MODES = ['NONE', 'BLIND', 'PRE_POPULATE', 'CHECK_YOUR_WORK', 'AUTHORITY'] as const

export const SessionConfiguration = Type.Object({
  session_type: Type.Enum([...SESSION_TYPES]),
  provision_mode: Type.Enum([...PROVISION_MODES]),
  provision_mode_data: Text,
  classifier_mode: Type.Enum([...CLASSIFIER_MODES]),
  // Absent in real sessions (the client strips them), present in the spec's example.
  flavor_text: Type.Optional(Text),
  flavor_text_two: Type.Optional(Text),
  cloudworks_context: Type.Optional(Text),
  output_session_translator_id: Type.Optional(Text),
  output_result_translator_id: Type.Optional(Text),
  flags: Type.Optional(StringMap),
})

export const SessionResult = Type.Object({
  time_read: Type.Optional(Timestamp),
  // Real clients send main_image_path and images; the spec's example sends raw_image_file_path.
  main_image_path: Type.Optional(Text),
  raw_image_file_path: Type.Optional(Text),
  images: Type.Optional(StringMap),
  results: Type.Optional(StringMap),
  results_classifier: Type.Optional(StringMap),
})

export const SessionBody = Type.Object({
  // The spec's example has no id; the real client sends the session GUID again.
  id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  state: Type.Enum([...SESSION_STATES]),
  test_profile_id: Text,
  time_started: Timestamp,
  time_resolved: Timestamp,
  time_expired: Type.Optional(Timestamp),
  configuration: SessionConfiguration,
  result: Type.Optional(SessionResult),
  // In the spec's example but not in its schema; the real client always sends it.
  metrics: Type.Optional(Type.Object({ data: Type.Optional(StringMap) })),
})
export type SessionBody = Static<typeof SessionBody>

/** The top-level fields the schema knows; anything else is kept in the stored document's `extra`. */
export const KNOWN_SESSION_FIELDS = new Set(Object.keys(SessionBody.properties))
export const KNOWN_CONFIGURATION_FIELDS = new Set(Object.keys(SessionConfiguration.properties))
export const KNOWN_RESULT_FIELDS = new Set(Object.keys(SessionResult.properties))

export interface ValidationIssue {
  /** JSON pointer into the body ('' is the body itself), or a marker such as `storage_fallback`. */
  path: string
  message: string
}

const checker = Compile(SessionBody)
export const MAX_VALIDATION_ERRORS = 50

/** What is wrong with a parsed session body, at most MAX_VALIDATION_ERRORS issues; [] when valid. */
export function validateSessionBody(body: unknown): ValidationIssue[] {
  if (checker.Check(body)) return []
  const out: ValidationIssue[] = []
  const seen = new Set<string>()
  for (const e of checker.Errors(body)) {
    const message = e.keyword === 'required' ? `must have required properties: ${requiredName(e.params)}` : e.message
    const key = `${e.instancePath}\n${message}`
    if (seen.has(key)) continue
    seen.add(key)
    out.push({ path: e.instancePath, message })
    if (out.length >= MAX_VALIDATION_ERRORS) break
  }
  return out
}

function requiredName(params: unknown): string {
  const p = params as { requiredProperties?: unknown; missingProperty?: unknown } | undefined
  const names = p?.requiredProperties ?? p?.missingProperty
  return Array.isArray(names) ? names.join(', ') : String(names ?? '?')
}

// RFC 3339 with an optional fraction; the zone is optional here so a zoneless time can be
// reported (and read as UTC) instead of being parsed in the worker's local time zone.
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?$/

export type ParsedTimestamp = { date: Date; issue?: string } | { date: null; issue: string }

/** Parses a client timestamp into a Date; null (with the reason) when it is not one. */
export function parseTimestamp(value: unknown): ParsedTimestamp {
  if (typeof value !== 'string') return { date: null, issue: `not a date-time string; stored as null` }
  const m = TIMESTAMP.exec(value)
  if (!m) return { date: null, issue: 'not an RFC 3339 date-time; stored as null' }
  const [, y, mo, d, h, mi, s = '00', frac = '', zone] = m
  const ms = frac ? Math.round(Number(`0${frac}`) * 1000) : 0
  let offsetMin = 0
  if (zone && zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1
    const digits = zone.slice(1).replace(':', '')
    offsetMin = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4)))
  }
  const [Y, MO, D, H, MI, S] = [y, mo, d, h, mi, s].map(Number) as [number, number, number, number, number, number]
  if (MO < 1 || MO > 12 || D < 1 || D > 31 || H > 23 || MI > 59 || S > 60)
    return { date: null, issue: 'not a valid date-time; stored as null' }
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999.
  const date = new Date(0)
  date.setUTCFullYear(Y, MO - 1, D)
  date.setUTCHours(H, MI, Math.min(S, 59), ms)
  // 31 February rolls over into March; refuse that instead of storing another day.
  if (date.getUTCDate() !== D) return { date: null, issue: 'not a valid date-time; stored as null' }
  date.setTime(date.getTime() - offsetMin * 60_000)
  if (Number.isNaN(date.getTime())) return { date: null, issue: 'not a valid date-time; stored as null' }
  return zone ? { date } : { date, issue: 'date-time without a UTC offset; read as UTC' }
}
