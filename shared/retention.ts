// Retention periods of a workspace: how long its photos, logs and sessions are kept. Stored on the
// workspace document (workspaces.retention); set by the CLI and the admin panel (tokens/), enforced
// by the worker's scheduled sweep (worker/processors/retention.ts). README "Retention" says what
// disappears and when.

/** The three kinds of data a workspace sets a period for. */
export const RETENTION_KINDS = ['photos', 'logs', 'sessions'] as const
export type RetentionKind = (typeof RETENTION_KINDS)[number]

/** Days each kind is kept after it was received; null = kept for ever (the default). */
export type RetentionSettings = Record<RetentionKind, number | null>

/** What a workspace without settings gets: everything is kept. */
export const KEEP_EVERYTHING: Readonly<RetentionSettings> = Object.freeze({ photos: null, logs: null, sessions: null })

/** A hundred years: a bound, so that "days" can never overflow a date computation. */
export const MAX_RETENTION_DAYS = 36_500

const DAY_MS = 86_400_000

/** A workspace document's settings, with absent or malformed fields read as "keep". */
export function retentionOf(ws: { retention?: Partial<Record<RetentionKind, unknown>> | null }): RetentionSettings {
  const r = ws.retention ?? {}
  const days = (v: unknown) => (isRetentionDays(v) ? v : null)
  return { photos: days(r.photos), logs: days(r.logs), sessions: days(r.sessions) }
}

export function isRetentionDays(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= MAX_RETENTION_DAYS
}

/** Whether any period is set, i.e. whether the sweep has anything to do for the workspace. */
export function hasRetention(r: RetentionSettings): boolean {
  return RETENTION_KINDS.some((k) => r[k] !== null)
}

/** Records received before this instant are expired under a period of `days`. */
export function expiryCutoff(now: Date, days: number): Date {
  return new Date(now.getTime() - days * DAY_MS)
}

/** "30 days" / "keep": one spelling for the CLI, the panel and the README. */
export function describeDays(days: number | null): string {
  return days === null ? 'keep' : `${days} day${days === 1 ? '' : 's'}`
}
