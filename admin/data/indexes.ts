// Indexes the panel's reads need, on top of shared/mongo.ts ensureIndexes. Creating them is
// idempotent. The per-token ones serve "last used" (latest received_at per token_id) and the
// workspace ones "last upload seen"; they live on the one-per-upload collections (sessions,
// log batches, media), never on test_session_logs (one document per log entry).
import type { Db } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { ensureAdminUserIndexes } from '../../tokens/users.ts'

export const UPLOAD_COLLECTIONS = [COLLECTIONS.sessions, COLLECTIONS.logBatches, COLLECTIONS.media] as const

export async function ensureAdminIndexes(db: Db): Promise<void> {
  await ensureAdminUserIndexes(db)
  await Promise.all([
    ...UPLOAD_COLLECTIONS.map((name) => db.collection(name).createIndex({ workspace_id: 1, token_id: 1, received_at: -1 })),
    db.collection(COLLECTIONS.logBatches).createIndex({ workspace_id: 1, received_at: -1 }),
    db.collection(COLLECTIONS.media).createIndex({ workspace_id: 1, received_at: -1 }),
    db.collection(COLLECTIONS.conflicts).createIndex({ workspace_id: 1, received_at: -1 }),
  ])
}
