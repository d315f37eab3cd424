// `jobs failed` and `jobs retry`: BullMQ's retained failed set, for operators. A job that failed
// for good (an invalid payload, or a transient cause that outlasted every attempt) is kept there,
// never dropped; these commands show it and move it back to waiting once the cause is fixed.
//
// Job bodies are patients' test results (and a session may once have carried its DSN), so only
// metadata is ever printed: queue, id, the ids the job is about, failure reason, attempts, times.
import { Job, Queue } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import type { Db } from 'mongodb'
import { AppError } from '../shared/errors.ts'
import { isValidId } from '../shared/ids.ts'
import { collections } from '../shared/mongo.ts'
import { QUEUE_NAMES, type QueueName } from '../shared/queue-settings.ts'

export interface FailedJobInfo {
  queue: QueueName
  id: string
  /** BullMQ job name: `session`, `conflict`, `logs`, `media`. */
  name: string
  /** From the payload, only when it is a valid id (an invalid payload may hold anything). */
  workspace_id: string | null
  session_id: string | null
  media_id: string | null
  failed_reason: string
  attempts_made: number
  created_at: string | null
  failed_at: string | null
}

export interface RetryOutcome {
  retried: FailedJobInfo[]
  /** Jobs found but not moved (no longer failed, or removed meanwhile), with the reason. */
  skipped: { queue: QueueName; id: string; reason: string }[]
}

export type JobsErrorCode = 'job_not_found' | 'ambiguous_job' | 'job_not_failed'

/** A refused `jobs retry <id>`. */
export class JobsError extends AppError {
  constructor(
    readonly code: JobsErrorCode,
    message: string,
  ) {
    super(message)
  }
}

const iso = (ms: number | undefined | null) => (typeof ms === 'number' && ms > 0 ? new Date(ms).toISOString() : null)

function idField(data: unknown, key: string): string | null {
  const v = typeof data === 'object' && data !== null ? (data as Record<string, unknown>)[key] : undefined
  return isValidId(v) ? v : null
}

/** The printable part of a job: everything but its data, plus the ids the data is about. */
export function describeJob(queue: QueueName, job: Job): FailedJobInfo {
  return {
    queue,
    id: String(job.id),
    name: job.name,
    workspace_id: idField(job.data, 'workspace_id'),
    session_id: idField(job.data, 'session_id'),
    media_id: idField(job.data, 'media_id'),
    failed_reason: job.failedReason ?? '',
    attempts_made: job.attemptsMade,
    created_at: iso(job.timestamp),
    failed_at: iso(job.finishedOn),
  }
}

interface JobsDeps {
  /** Every queue of every shard (a workspace moved to another shard may have left failed jobs in the old one). */
  queues: [QueueName, Queue][]
  audit: ReturnType<typeof collections>['audit']
}

/** The queues a command covers: one, or all. */
const pick = (deps: JobsDeps, queue?: QueueName): [QueueName, Queue][] =>
  deps.queues.filter(([name]) => queue === undefined || name === queue)

/**
 * Moves one failed job back to waiting and audits it. The attempt counters are reset: a retry
 * is a fresh start with the full backoff budget (a job that exhausted its attempts during a
 * long outage would otherwise fail for good at its next error). The audit entry keeps the
 * counts and reason from before.
 */
async function retryOne(deps: JobsDeps, queue: QueueName, job: Job, actor: string): Promise<FailedJobInfo> {
  const info = describeJob(queue, job)
  await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true })
  const { queue: _q, id: _id, name: _n, created_at: _c, ...rest } = info
  await deps.audit.insertOne({ at: new Date(), actor, action: 'job.retry', target: { queue, job_id: info.id, ...rest } })
  return info
}

/** Newest failures first, at most `limit` in all; `total` counts every failed job per queue. */
async function listFailed(
  deps: JobsDeps,
  opts: { queue?: QueueName; limit: number },
): Promise<{ total: Partial<Record<QueueName, number>>; jobs: FailedJobInfo[] }> {
  const total: Partial<Record<QueueName, number>> = {}
  const jobs: FailedJobInfo[] = []
  for (const [name, q] of pick(deps, opts.queue)) {
    total[name] = await q.getFailedCount()
    const ids = await q.getRanges(['failed'], 0, opts.limit - 1)
    // One job at a time: a job's data can be megabytes, and only its metadata is kept.
    for (const id of ids) {
      const job = await Job.fromId(q, id)
      if (job) jobs.push(describeJob(name, job))
    }
  }
  jobs.sort((a, b) => (b.failed_at ?? '').localeCompare(a.failed_at ?? ''))
  return { total, jobs: jobs.slice(0, opts.limit) }
}

/** Retries one job by id; without `queue`, the id is looked up in every queue. */
async function retry(deps: JobsDeps, id: string, opts: { queue?: QueueName; actor: string }): Promise<FailedJobInfo> {
  const found: [QueueName, Job][] = []
  for (const [name, q] of pick(deps, opts.queue)) {
    const job = await Job.fromId(q, id)
    if (job) found.push([name, job])
  }
  if (found.length === 0) throw new JobsError('job_not_found', `no job "${id}"${opts.queue ? ` in queue ${opts.queue}` : ''}`)
  if (found.length > 1)
    throw new JobsError(
      'ambiguous_job',
      `job "${id}" exists in ${found.map(([, j]) => j.queueQualifiedName).join(' and ')}; say which with --queue, or retry all`,
    )
  const [name, job] = found[0]!
  const state = await job.getState()
  if (state !== 'failed') throw new JobsError('job_not_failed', `job "${id}" in ${name} is ${state}, not failed; nothing to retry`)
  return retryOne(deps, name, job, opts.actor)
}

/**
 * Retries every job that is failed when the command starts. The ids are read first, so a job
 * that fails again while the command runs is not retried a second time (no endless loop).
 */
async function retryAll(deps: JobsDeps, opts: { queue?: QueueName; actor: string }): Promise<RetryOutcome> {
  const out: RetryOutcome = { retried: [], skipped: [] }
  for (const [name, q] of pick(deps, opts.queue)) {
    const ids = await q.getRanges(['failed'], 0, -1)
    for (const id of ids) {
      const job = await Job.fromId(q, id)
      if (!job) {
        out.skipped.push({ queue: name, id, reason: 'removed meanwhile' })
        continue
      }
      try {
        out.retried.push(await retryOne(deps, name, job, opts.actor))
      } catch (err) {
        // Typically: it was retried by someone else meanwhile, so it is no longer failed.
        out.skipped.push({ queue: name, id, reason: (err as Error).message.slice(0, 200) })
      }
    }
  }
  return out
}

export function createJobsAdmin(deps: { redis: RedisClient; prefixes: string[]; db: Db }) {
  const jd: JobsDeps = {
    audit: collections(deps.db).audit,
    queues: deps.prefixes.flatMap((prefix) =>
      QUEUE_NAMES.map((name): [QueueName, Queue] => [name, new Queue(name, { connection: deps.redis, prefix })]),
    ),
  }
  return {
    listFailed: (opts: { queue?: QueueName; limit: number }) => listFailed(jd, opts),
    retry: (id: string, opts: { queue?: QueueName; actor: string }) => retry(jd, id, opts),
    retryAll: (opts: { queue?: QueueName; actor: string }) => retryAll(jd, opts),
    async close(): Promise<void> {
      await Promise.all(jd.queues.map(([, q]) => q.close()))
    },
  }
}
