// The conflicts list: resubmissions that reused a session GUID (or a photo id) with different
// content, newest first, paged by time, each session conflict with the original it differs from.
import type { Db, Document } from 'mongodb'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { newestFirst } from './paging.ts'

export const CONFLICTS_PAGE = 20

export interface ConflictsPage {
  rows: Document[]
  /** True when older conflicts follow. */
  more: boolean
  /** The stored session of each session conflict on the page, by session id. */
  originals: Map<string, Document>
}

export async function listConflicts(
  db: Db,
  workspaceId: string,
  opts: { sessionId?: string; before?: Date | null },
): Promise<ConflictsPage> {
  const filter: Record<string, unknown> = { workspace_id: workspaceId }
  if (opts.sessionId) filter.session_id = opts.sessionId
  if (opts.before) filter.received_at = { $lt: opts.before }
  const { rows, more } = await newestFirst(db, COLLECTIONS.conflicts, filter, { field: 'received_at', size: CONFLICTS_PAGE })
  const sessionIds = [...new Set(rows.filter((c) => !c.media_id).map((c) => String(c.session_id)))]
  const originals = await db
    .collection(COLLECTIONS.sessions)
    .find(
      { workspace_id: workspaceId, session_id: { $in: sessionIds } },
      { projection: { session_id: 1, raw_body: 1, received_at: 1, raw_sha256: 1 } },
    )
    .toArray()
  return { rows, more, originals: new Map(originals.map((d) => [String(d.session_id), d])) }
}
