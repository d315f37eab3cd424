// What a job does for a deleted session (README "Deletion", deletion/tombstones.ts): it stores
// nothing. The tombstone is checked before a job stores (the usual case: the job was queued
// before the deletion, or Redis had lost the gateway's copy of the tombstone) and again after,
// which closes the race with a deletion running meanwhile: if the tombstone appeared while this
// job stored, everything of the session is erased again (deletion/erase.ts, idempotent).
import type { Logger } from 'pino'
import { eraseSession } from '../deletion/erase.ts'
import type { ProcessorDeps } from './context.ts'

interface JobRecord {
  workspace_id: string
  session_id: string
}

/** Before storing: whether the job must store nothing. */
export async function deletedBefore(deps: ProcessorDeps, data: JobRecord, receivedAt: Date, log: Logger): Promise<boolean> {
  if (!(await deps.tombstones.isDeleted(data.workspace_id, data.session_id, receivedAt))) return false
  log.info({ workspace_id: data.workspace_id, session_id: data.session_id }, 'job of a deleted session dropped')
  return true
}

/** After storing: when the session was deleted meanwhile, erases it again; true when it did. */
export async function erasedAfter(deps: ProcessorDeps, data: JobRecord, receivedAt: Date, log: Logger): Promise<boolean> {
  if (!(await deps.tombstones.isDeleted(data.workspace_id, data.session_id, receivedAt))) return false
  const removed = await eraseSession({ db: deps.db, s3: deps.s3, bucket: deps.config.s3.bucket }, data.workspace_id, data.session_id)
  log.warn(
    { workspace_id: data.workspace_id, session_id: data.session_id, ...removed },
    'session deleted while its job stored; erased again',
  )
  return true
}
