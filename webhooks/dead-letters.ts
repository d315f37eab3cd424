// The dead letters of outbound webhooks: delivery jobs that failed for good (their retry
// schedule ran out, or the endpoint's address is refused). They stay in the deliveries queue's
// failed set until retried; the admin panel lists a workspace's and retries them one by one.
import { Job, type Queue } from 'bullmq'
import type { Db } from 'mongodb'
import { collections } from '../shared/mongo.ts'
import { WebhookError } from './errors.ts'

export interface DeadLetter {
  id: string
  event: string
  endpoint_id: string
  session_id: string | null
  failed_reason: string
  attempts_made: number
  created_at: Date | null
  failed_at: Date | null
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)

function describe(job: Job): DeadLetter {
  const d = (job.data ?? {}) as Record<string, unknown>
  return {
    id: String(job.id),
    event: str(d.event) ?? job.name,
    endpoint_id: str(d.endpoint_id) ?? '',
    session_id: str(d.session_id),
    failed_reason: job.failedReason ?? '',
    attempts_made: job.attemptsMade,
    created_at: job.timestamp ? new Date(job.timestamp) : null,
    failed_at: job.finishedOn ? new Date(job.finishedOn) : null,
  }
}

/**
 * A workspace's dead letters, newest first: at most `limit` of them, out of the newest `scan`
 * failed jobs of each shard's deliveries queue (`queues`, one per shard: a workspace moved to
 * another shard leaves its old dead letters in the old one). `total` counts every workspace's.
 */
export async function listDeadLetters(
  queues: Queue[],
  workspaceId: string,
  opts: { limit?: number; scan?: number } = {},
): Promise<{ total: number; jobs: DeadLetter[] }> {
  let total = 0
  const jobs: DeadLetter[] = []
  for (const queue of queues) {
    total += await queue.getFailedCount()
    const ids = await queue.getRanges(['failed'], 0, (opts.scan ?? 1000) - 1)
    for (const id of ids) {
      if (jobs.length >= (opts.limit ?? 100)) break
      const job = await Job.fromId(queue, id)
      if (!job || (job.data as { workspace_id?: unknown })?.workspace_id !== workspaceId) continue
      jobs.push(describe(job))
    }
  }
  jobs.sort((a, b) => (b.failed_at?.getTime() ?? 0) - (a.failed_at?.getTime() ?? 0))
  return { total, jobs }
}

/**
 * Moves one dead letter of the workspace back to waiting, with the whole retry schedule again
 * (the attempt counter is reset), and audits it. Its delivery id is unchanged, so a receiver
 * that did get an earlier attempt can still tell.
 */
export async function retryDeadLetter(queues: Queue[], db: Db, workspaceId: string, jobId: string, actor: string): Promise<DeadLetter> {
  let job: Job | undefined
  if (typeof jobId === 'string' && /^d\.h[0-9a-f]{16}\.[0-9a-z]{1,64}$/.test(jobId))
    for (const queue of queues) {
      const found = await Job.fromId(queue, jobId)
      if ((found?.data as { workspace_id?: unknown } | undefined)?.workspace_id === workspaceId) job = found
    }
  if (!job || (job.data as { workspace_id?: unknown })?.workspace_id !== workspaceId)
    throw new WebhookError('unknown_delivery', 'No such failed delivery in this workspace.')
  const info = describe(job)
  if ((await job.getState()) !== 'failed')
    throw new WebhookError('delivery_not_failed', 'That delivery is no longer failed (retried already?).')
  await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true })
  await collections(db).audit.insertOne({
    at: new Date(),
    actor,
    action: 'webhook.retry_delivery',
    target: {
      workspace_id: workspaceId,
      delivery_id: info.id,
      endpoint_id: info.endpoint_id,
      event: info.event,
      failed_reason: info.failed_reason,
    },
  })
  return info
}
