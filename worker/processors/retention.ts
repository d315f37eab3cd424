// The retention run (a `maintenance` job, scheduled by worker/maintenance.ts): deletes what each
// workspace's retention periods (shared/retention.ts) say has expired. README "Retention" is the
// analysts' and operators' version of this comment.
//
// What expires, measured from each record's received_at (when the gateway accepted it):
// - photos: test_session_media documents and their stored objects, and the conflicting uploads
//   of a photo (test_session_conflicts with a media_id, and the objects they name: uploads kept
//   where they were written, or copies under conflicts/ from the earlier layout);
// - logs: test_session_logs entries and test_session_log_batches (the exact bodies);
// - sessions: test_sessions documents and the conflicting bodies of a session. A session that
//   expires takes every record of that session with it, whatever its age (logs, log batches,
//   photos, conflicts), and no record is kept longer than the sessions period: a photo or log
//   expires at the shorter of its own period and the sessions period.
//
// Bounded and resumable: documents are read and deleted RETENTION_BATCH_SIZE at a time, and one run
// deletes at most RETENTION_MAX_PER_RUN; the next run continues. The batches are
// deletion/batches.ts's (objects before the documents that name them), and a session's own
// document goes only after all its records, so a run killed at any point is finished by the next.
import type { Job } from 'bullmq'
import type { Client as S3Client } from 'minio'
import type { Db } from 'mongodb'
import type { Logger } from 'pino'
import { BatchDeleter, BudgetSpent, type DeletionCounts, type RecordCollection } from '../../deletion/batches.ts'
import { collections } from '../../shared/mongo.ts'
import { expiryCutoff, hasRetention, retentionOf, type RetentionSettings } from '../../shared/retention.ts'
import { checkNotCancelled } from '../context.ts'
import type { RetentionMetrics } from '../retention-metrics.ts'

export interface RetentionDeps {
  db: Db
  s3: S3Client
  logger: Logger
  config: { retentionBatchSize: number; retentionMaxPerRun: number }
  metrics?: RetentionMetrics
  /** Clock, for tests. */
  now?: () => Date
}

export type RetentionCollection = RecordCollection

export interface RetentionResult extends DeletionCounts {
  /** 'done': nothing expired is left; 'budget': RETENTION_MAX_PER_RUN was reached, the next run goes on. */
  outcome: 'done' | 'budget'
  /** Workspaces with at least one period set. */
  workspaces: number
}

export function createRetentionProcessor(deps: RetentionDeps) {
  return async function processRetention(_job: Job, _token?: string, signal?: AbortSignal): Promise<RetentionResult> {
    const started = new Date()
    try {
      const result = await runRetention(deps, signal)
      deps.metrics?.runFinished({ startedAt: started, seconds: (Date.now() - started.getTime()) / 1000, outcome: result.outcome })
      deps.logger.info({ ...result, ms: Date.now() - started.getTime() }, 'retention run finished')
      return result
    } catch (err) {
      deps.metrics?.runFailed()
      throw err
    }
  }
}

/** One run over every workspace that has a period set. */
export async function runRetention(deps: RetentionDeps, signal?: AbortSignal): Promise<RetentionResult> {
  const c = collections(deps.db)
  const now = (deps.now ?? (() => new Date()))()
  const run = new Run(deps, signal)
  let workspaces = 0
  try {
    // Read at once (workspaces are few): a cursor held open through a long run could time out.
    const list = await c.workspaces.find({ retention: { $exists: true } }, { projection: { _id: 1, retention: 1 } }).toArray()
    for (const ws of list) {
      const r = retentionOf(ws)
      if (!hasRetention(r)) continue
      workspaces++
      await sweepWorkspace(run, ws._id, r, now)
    }
  } catch (err) {
    if (!(err instanceof BudgetSpent)) throw err
    return run.runResult('budget', workspaces)
  }
  return run.runResult('done', workspaces)
}

/** The shorter of two periods; null (keep) is the longest. */
const shorter = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.min(a, b))

async function sweepWorkspace(run: Run, workspaceId: string, r: RetentionSettings, now: Date): Promise<void> {
  const c = run.c
  const ws = { workspace_id: workspaceId }
  if (r.sessions !== null) {
    const cutoff = expiryCutoff(now, r.sessions)
    await sweepSessions(run, workspaceId, cutoff)
    await run.deleteAll(c.conflicts, { ...ws, media_id: null, received_at: { $lt: cutoff } })
  }
  const photos = shorter(r.photos, r.sessions)
  if (photos !== null) {
    const older = { received_at: { $lt: expiryCutoff(now, photos) } }
    await run.deleteAll(c.media, { ...ws, ...older }, true)
    await run.deleteAll(c.conflicts, { ...ws, media_id: { $ne: null }, ...older }, true)
  }
  const logs = shorter(r.logs, r.sessions)
  if (logs !== null) {
    const older = { received_at: { $lt: expiryCutoff(now, logs) } }
    await run.deleteAll(c.logs, { ...ws, ...older })
    await run.deleteAll(c.logBatches, { ...ws, ...older })
  }
}

/** Expired sessions, a batch at a time: first every record of those sessions, then the sessions. */
async function sweepSessions(run: Run, workspaceId: string, cutoff: Date): Promise<void> {
  const c = run.c
  for (;;) {
    const batch = await c.sessions
      .find({ workspace_id: workspaceId, received_at: { $lt: cutoff } }, { projection: { _id: 1, session_id: 1 } })
      .limit(run.batchLimit())
      .toArray()
    if (batch.length === 0) return
    const of = { workspace_id: workspaceId, session_id: { $in: batch.map((s) => String(s.session_id)) } }
    await run.deleteAll(c.media, of, true)
    await run.deleteAll(c.conflicts, of, true)
    await run.deleteAll(c.logs, of)
    await run.deleteAll(c.logBatches, of)
    // Only as many as the budget still allows: the rest (their records already gone) open the next run.
    await run.deleteIds(c.sessions, batch.slice(0, run.budgetLeft()))
  }
}

/** One run: a batch deleter with the run's budget and metrics, and the collections. */
class Run extends BatchDeleter {
  readonly c

  constructor(deps: RetentionDeps, signal: AbortSignal | undefined) {
    super({
      s3: deps.s3,
      batchSize: deps.config.retentionBatchSize,
      budget: deps.config.retentionMaxPerRun,
      // Checked before every batch: a worker shutting down stops the run here, and the next run goes on.
      beforeBatch: () => checkNotCancelled(signal),
      onDocuments: (collection, n) => deps.metrics?.removed(collection, n),
      onObjects: (objects, bytes) => deps.metrics?.objectsRemoved(objects, bytes),
    })
    this.c = collections(deps.db)
  }

  runResult(outcome: RetentionResult['outcome'], workspaces: number): RetentionResult {
    return { outcome, ...this.result(), workspaces }
  }
}
