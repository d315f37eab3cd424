// Session jobs exactly as the gateway enqueues them, and the documents a worker makes of them:
// the same payloads and documents feed B2, B3 and the T2 pre-fill, so each ratio compares like with like.
import { Queue } from 'bullmq'
import { createHash, randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Document } from 'mongodb'
import { jobIds } from '../shared/keys.ts'
import { type SessionJob } from '../shared/queues.ts'
import { defaultJobOptions } from '../shared/queue-settings.ts'
import { buildSessionDocument } from '../worker/session-document.ts'
import { sessionTemplates } from './bodies.ts'

const templates = sessionTemplates(200)

export function sessionJob(workspaceId: string, n: number, sessionId = randomUUID()): SessionJob {
  const [before, after] = templates[n % templates.length]!
  const body = before + sessionId + after
  return {
    kind: 'session',
    workspace_id: workspaceId,
    session_id: sessionId,
    token_id: 'tbench',
    received_at: new Date().toISOString(),
    sha256: createHash('sha256').update(body).digest('hex'),
    body,
  }
}

export function sessionDocument(job: SessionJob): Document {
  return buildSessionDocument(job, JSON.parse(job.body) as Record<string, unknown>, new Date(job.received_at))
}

/** Adds `count` session jobs with addBulk (chunks of 1000), as fast as Redis takes them. */
export async function prefillSessions(redis: Redis, prefix: string, workspaceId: string, count: number): Promise<void> {
  const queue = new Queue('sessions', { connection: redis, prefix })
  try {
    for (let start = 0; start < count; start += 1000) {
      const chunk = Array.from({ length: Math.min(1000, count - start) }, (_, i) => {
        const data = sessionJob(workspaceId, start + i)
        return { name: 'session', data, opts: { ...defaultJobOptions, jobId: jobIds.session(workspaceId, data.session_id) } }
      })
      await queue.addBulk(chunk)
    }
  } finally {
    await queue.close()
  }
}
