// `session delete` and `workspace purge`, for the CLI and the admin panel alike: tombstone first
// (deletion/tombstones.ts), then erase (deletion/erase.ts), then the audit entry with what went.
// A run killed part-way is finished by running it again: every step is idempotent, and the
// tombstone written first keeps anything still in flight from coming back meanwhile.
import type { Client as S3Client } from 'minio'
import { isValidId } from '../shared/ids.ts'
import { tokenAdminContext, findWorkspace, type TokenAdminDeps } from '../tokens/context.ts'
import { TokenAdminError } from '../tokens/errors.ts'
import { checkActor } from '../tokens/rules.ts'
import { revokeToken } from '../tokens/tokens.ts'
import { setWorkspaceActive } from '../tokens/workspaces.ts'
import type { DeletionCounts } from './batches.ts'
import { eraseSession, eraseWorkspace, previewDeletion, type DeletionPreview } from './erase.ts'
import { mirrorTombstones, sessionTombstoneId, writeSessionTombstone, writeWorkspaceTombstone } from './tombstones.ts'

export interface DeletionAdminDeps extends TokenAdminDeps {
  s3: S3Client
  bucket: string
  batchSize?: number
}

export interface SessionDeletion extends DeletionCounts {
  workspace: string
  workspace_id: string
  session_id: string
  deleted_at: Date
  /**
   * False when the gateways' Redis mirror was not written: a retry is answered 201 (and dropped by
   * the worker) until a worker re-mirrors it.
   */
  tombstone_mirrored: boolean
}

export interface WorkspacePurge extends DeletionCounts {
  workspace: string
  workspace_id: string
  deleted_at: Date
  /** Tokens revoked by this purge (already revoked ones are pushed again but not counted). */
  tokens_revoked: number
  /** False when a revocation or the deactivation could not be pushed to the gateways (they apply it at the next mirror sync). */
  revocation_pushed: boolean
}

export function createDeletionAdmin(deps: DeletionAdminDeps) {
  const ctx = tokenAdminContext(deps)
  const eraseDeps = { db: deps.db, s3: deps.s3, bucket: deps.bucket, batchSize: deps.batchSize }

  return {
    /** What `deleteSession` would remove now (the panel's confirmation page). */
    async previewSession(slugOrId: string, session: string): Promise<DeletionPreview & { workspace_id: string; workspace: string }> {
      const ws = await findWorkspace(ctx, slugOrId)
      checkSessionId(session)
      return {
        workspace_id: ws._id,
        workspace: ws.slug,
        ...(await previewDeletion(deps.db, { workspace_id: ws._id, session_id: session })),
      }
    },

    async previewWorkspace(slugOrId: string): Promise<DeletionPreview & { workspace_id: string; workspace: string; tokens: number }> {
      const ws = await findWorkspace(ctx, slugOrId)
      const tokens = await ctx.c.tokens.countDocuments({ workspace_id: ws._id, revoked_at: null })
      return { workspace_id: ws._id, workspace: ws.slug, tokens, ...(await previewDeletion(deps.db, { workspace_id: ws._id })) }
    },

    /** Deletes one session: every record and object of it, and a tombstone that answers its retries 409. */
    async deleteSession(slugOrId: string, session: string, actor: string): Promise<SessionDeletion> {
      checkActor(actor)
      checkSessionId(session)
      const ws = await findWorkspace(ctx, slugOrId)
      const at = ctx.now()
      await writeSessionTombstone(deps.db, ws._id, session, at)
      const stored = await ctx.c.deletedSessions.findOne({ _id: sessionTombstoneId(ws._id, session) })
      const deletedAt = stored?.deleted_at ?? at
      // Pushed like a revocation (it takes something away), but not confirmed is not a failure:
      // the worker drops a retry it receives meanwhile, and re-mirrors the tombstone.
      const mirrored = await ctx.mirror(
        'session.delete',
        (r) => mirrorTombstones(r, ctx.prefix, ws, [{ session_id: session, deleted_at: deletedAt }]),
        ctx.revocationPushMs,
      )
      const counts = await eraseSession(eraseDeps, ws._id, session)
      await ctx.audit(actor, 'session.delete', { workspace_id: ws._id, slug: ws.slug, session_id: session, ...counts })
      return {
        workspace: ws.slug,
        workspace_id: ws._id,
        session_id: session,
        deleted_at: deletedAt,
        ...counts,
        tombstone_mirrored: mirrored,
      }
    },

    /** Deactivates a workspace, revokes its tokens, and deletes every record and object of it. */
    async purgeWorkspace(slugOrId: string, actor: string): Promise<WorkspacePurge> {
      checkActor(actor)
      const ws = await findWorkspace(ctx, slugOrId)
      const at = ctx.now()
      // First, so that jobs already queued for it store nothing from now on.
      await writeWorkspaceTombstone(deps.db, ws._id, at)
      const deactivated = await setWorkspaceActive(ctx, ws._id, false, actor)
      let revoked = 0
      let pushed = deactivated.tokens_republished !== null
      // Through the revocation path (audited per token, pushed to every gateway): a reactivated
      // workspace must not bring its old DSNs back.
      for (const t of await ctx.c.tokens.find({ workspace_id: ws._id }, { projection: { _id: 1 } }).toArray()) {
        const r = await revokeToken(ctx, t._id, actor)
        if (!r.already_revoked) revoked++
        pushed &&= r.mirrored
      }
      const counts = await eraseWorkspace(eraseDeps, ws._id)
      await ctx.audit(actor, 'workspace.purge', { workspace_id: ws._id, slug: ws.slug, tokens_revoked: revoked, ...counts })
      return { workspace: ws.slug, workspace_id: ws._id, deleted_at: at, ...counts, tokens_revoked: revoked, revocation_pushed: pushed }
    },
  }
}

export type DeletionAdmin = ReturnType<typeof createDeletionAdmin>

function checkSessionId(session: string): void {
  // The same ids the gateway accepts, so every stored session can be named (and only those).
  if (!isValidId(session))
    throw new TokenAdminError('bad_session_id', `invalid session id ${JSON.stringify(session).slice(0, 140)}: use 1-128 of A-Z a-z 0-9 _ -`)
}
