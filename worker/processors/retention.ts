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
// deletes at most RETENTION_MAX_PER_RUN; the next run continues. Each batch removes the objects
// first and the documents after, and a session's own document goes only after all its records:
// a run killed at any point leaves documents that the next run finds again (deleting an object
// that is already gone succeeds), so repeated or concurrent runs converge and never orphan an
// object that no document names.
import type { Job } from 'bullmq'
import type { Client as S3Client } from 'minio'
import type { Collection, Db, Document, Filter } from 'mongodb'
import type { Logger } from 'pino'
import { collections, COLLECTIONS } from '../../shared/mongo.ts'
import { expiryCutoff, hasRetention, retentionOf, type RetentionSettings } from '../../shared/retention.ts'
import { AppError } from '../../shared/errors.ts'
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

export type RetentionCollection = (typeof COLLECTIONS)['sessions' | 'conflicts' | 'logs' | 'logBatches' | 'media']

export interface RetentionResult {
  /** 'done': nothing expired is left; 'budget': RETENTION_MAX_PER_RUN was reached, the next run goes on. */
  outcome: 'done' | 'budget'
  /** Documents deleted per collection. */
  removed: Record<RetentionCollection, number>
  objects: number
  bytes: number
  /** Workspaces with at least one period set. */
  workspaces: number
}

/** An object delete that storage refused (e.g. AccessDenied): the run fails and the next one retries. */
export class RetentionObjectError extends AppError {
  readonly code = 'retention_object_delete_failed'
}

/** The run ran out of its per-run budget; caught inside the run, never thrown out of it. */
class BudgetSpent extends Error {}

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
    return run.result('budget', workspaces)
  }
  return run.result('done', workspaces)
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

/** The state of one run: its budget, its counts, and the batch steps. */
class Run {
  readonly c
  private left: number
  private readonly removed: Record<RetentionCollection, number> = {
    test_sessions: 0,
    test_session_conflicts: 0,
    test_session_logs: 0,
    test_session_log_batches: 0,
    test_session_media: 0,
  }
  private objects = 0
  private bytes = 0

  constructor(
    private readonly deps: RetentionDeps,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.c = collections(deps.db)
    this.left = deps.config.retentionMaxPerRun
  }

  /** Documents the next query may return: a batch, or what is left of the run's budget. */
  batchLimit(): number {
    // Checked before every batch: a worker shutting down stops the run here, and the next run goes on.
    checkNotCancelled(this.signal)
    if (this.left <= 0) throw new BudgetSpent()
    return Math.min(this.deps.config.retentionBatchSize, this.left)
  }

  /** Deletes every document matching `filter`, a batch at a time, with their objects when `withObjects`. */
  async deleteAll(collection: Collection, filter: Filter<Document>, withObjects = false): Promise<void> {
    const projection = withObjects ? { _id: 1, bucket: 1, key: 1, size: 1 } : { _id: 1 }
    for (;;) {
      const batch = await collection.find(filter, { projection }).limit(this.batchLimit()).toArray()
      if (batch.length === 0) return
      if (withObjects) await this.removeObjects(batch)
      await this.deleteIds(collection, batch)
    }
  }

  budgetLeft(): number {
    return Math.max(0, this.left)
  }

  async deleteIds(collection: Collection, docs: Document[]): Promise<void> {
    if (docs.length === 0) return
    const res = await collection.deleteMany({ _id: { $in: docs.map((d) => d._id) } })
    // What this run deleted: a concurrent run may have taken some of them first.
    const n = res.deletedCount
    this.left -= docs.length
    this.removed[collection.collectionName as RetentionCollection] += n
    this.deps.metrics?.removed(collection.collectionName, n)
  }

  /** Removes the documents' objects (grouped by bucket); an object already gone counts as removed. */
  private async removeObjects(docs: Document[]): Promise<void> {
    const byBucket = new Map<string, Document[]>()
    for (const d of docs) {
      if (typeof d.bucket !== 'string' || typeof d.key !== 'string') continue
      byBucket.set(d.bucket, [...(byBucket.get(d.bucket) ?? []), d])
    }
    for (const [bucket, list] of byBucket) {
      const results = await this.deps.s3.removeObjects(
        bucket,
        list.map((d) => d.key as string),
      )
      // Quiet mode: the answer lists only the keys that failed (the client's type says { Error },
      // its parser returns the Error elements themselves; both are read).
      const failed = results
        .map((r) => ((r as { Error?: unknown } | null)?.Error ?? r) as { Code?: string; Key?: string } | null | undefined)
        .filter((e) => e?.Code && e.Code !== 'NoSuchKey')
      if (failed.length > 0) {
        // The documents stay, so the next run tries these objects again.
        throw new RetentionObjectError(`could not delete ${failed.length} object(s) in ${bucket}: ${failed[0]!.Code} (${failed[0]!.Key})`)
      }
      const bytes = list.reduce((sum, d) => sum + (typeof d.size === 'number' ? d.size : 0), 0)
      this.objects += list.length
      this.bytes += bytes
      this.deps.metrics?.objectsRemoved(list.length, bytes)
    }
  }

  result(outcome: RetentionResult['outcome'], workspaces: number): RetentionResult {
    return { outcome, removed: { ...this.removed }, objects: this.objects, bytes: this.bytes, workspaces }
  }
}
