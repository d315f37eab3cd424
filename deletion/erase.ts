// Erasing a session's or a whole workspace's records and objects, in deletion/batches.ts's
// bounded, resumable batches. The order is what makes a killed run converge on the next one:
// - documents that name objects (photos, conflicting uploads) go with their objects, objects first;
// - then every object left under the session's (or workspace's) prefixes (objectKeys.sessionPrefixes):
//   uploads no document names yet (media/…: written, their job not run or lost, or a retry's
//   copy), the earlier layout's final photos, conflict copies and staged uploads (staging/…),
//   and the uploads' pending/ markers last;
// - then logs, log batches and conflicting session bodies; the session documents last, so that
//   a half-done run still shows, in test_sessions, what it has not finished.
// Running it again finds what is left and deletes it; nothing it deleted comes back, because the
// caller wrote a tombstone first (deletion/tombstones.ts).
import type { Client as S3Client } from 'minio'
import type { Db, Document, Filter } from 'mongodb'
import { objectKeys } from '../shared/keys.ts'
import { collections } from '../shared/mongo.ts'
import { BatchDeleter, type DeletionCounts } from './batches.ts'

export interface EraseDeps {
  db: Db
  s3: S3Client
  /** The bucket photos are stored in (S3_BUCKET); documents naming another bucket are followed too. */
  bucket: string
  /** Documents (and listed objects) per batch; default 500. */
  batchSize?: number
}

export const DEFAULT_ERASE_BATCH = 500

/** Every record and object of one session. */
export function eraseSession(deps: EraseDeps, ws: string, session: string): Promise<DeletionCounts> {
  return erase(deps, { workspace_id: ws, session_id: session }, objectKeys.sessionPrefixes(ws, session))
}

/** Every record and object of one workspace. */
export function eraseWorkspace(deps: EraseDeps, ws: string): Promise<DeletionCounts> {
  return erase(deps, { workspace_id: ws }, objectKeys.workspacePrefixes(ws))
}

async function erase(deps: EraseDeps, filter: Filter<Document>, prefixes: string[]): Promise<DeletionCounts> {
  const c = collections(deps.db)
  const d = new BatchDeleter({ s3: deps.s3, batchSize: deps.batchSize ?? DEFAULT_ERASE_BATCH })
  await d.deleteAll(c.media, filter, true)
  await d.deleteAll(c.conflicts, { ...filter, media_id: { $ne: null } }, true)
  for (const prefix of prefixes) await d.deletePrefix(deps.bucket, prefix)
  await d.deleteAll(c.logs, filter)
  await d.deleteAll(c.logBatches, filter)
  await d.deleteAll(c.conflicts, filter)
  await d.deleteAll(c.sessions, filter)
  return d.result()
}

export interface DeletionPreview {
  /** Documents per collection that a deletion would remove now. */
  documents: Record<string, number>
  /** Stored photos and conflicting uploads (objects named by documents), and their bytes. */
  objects: number
  bytes: number
}

/** What a deletion would remove now, for the confirmation that names it (the admin panel). */
export async function previewDeletion(db: Db, filter: { workspace_id: string; session_id?: string }): Promise<DeletionPreview> {
  const c = collections(db)
  const documents: Record<string, number> = {}
  for (const coll of [c.sessions, c.logs, c.logBatches, c.media, c.conflicts])
    documents[coll.collectionName] = await coll.countDocuments(filter)
  let objects = 0
  let bytes = 0
  for (const coll of [c.media, c.conflicts]) {
    for await (const d of coll.find({ ...filter, key: { $type: 'string' } }, { projection: { size: 1 } })) {
      objects++
      bytes += typeof d.size === 'number' ? d.size : 0
    }
  }
  return { documents, objects, bytes }
}
