// Setting a workspace's retention periods (shared/retention.ts). Nothing of it is in the token
// mirror, so nothing is re-published: the worker's retention sweep reads the workspace documents
// at each run, so a change applies from the next run.
import { MAX_RETENTION_DAYS, RETENTION_KINDS, retentionOf, type RetentionSettings } from '../shared/retention.ts'
import { findWorkspace, type TokenAdminContext } from './context.ts'
import { TokenAdminError } from './errors.ts'
import { checkActor } from './rules.ts'
import { wsInfo, type WorkspaceInfo } from './workspaces.ts'

export interface WorkspaceRetention extends WorkspaceInfo {
  /** The settings before this call. */
  previous_retention: RetentionSettings
  changed: boolean
}

/** A period: a whole number of days from 1 to MAX_RETENTION_DAYS, or null (keep). */
export function checkRetentionDays(kind: string, days: unknown): number | null {
  if (days === null) return null
  if (typeof days !== 'number' || !Number.isSafeInteger(days) || days < 1 || days > MAX_RETENTION_DAYS) {
    throw new TokenAdminError(
      'bad_retention',
      `invalid ${kind} retention ${JSON.stringify(days)}: use a whole number of days from 1 to ${MAX_RETENTION_DAYS}, or "keep"`,
    )
  }
  return days
}

/**
 * Changes the given periods and leaves the others as they are; an empty `changes` only reads
 * them. Shortening a period makes the next sweep delete what is now older than it: there is no
 * undo, which is why the CLI and the panel name what goes.
 */
export async function setWorkspaceRetention(
  ctx: TokenAdminContext,
  slugOrId: string,
  changes: Partial<Record<keyof RetentionSettings, number | null>>,
  actor: string,
): Promise<WorkspaceRetention> {
  checkActor(actor)
  for (const key of Object.keys(changes)) {
    if (!(RETENTION_KINDS as readonly string[]).includes(key)) throw new TokenAdminError('bad_retention', `unknown retention kind "${key}"`)
  }
  const next: Partial<RetentionSettings> = {}
  for (const kind of RETENTION_KINDS) if (changes[kind] !== undefined) next[kind] = checkRetentionDays(kind, changes[kind])
  const ws = await findWorkspace(ctx, slugOrId)
  const previous = retentionOf(ws)
  const retention: RetentionSettings = { ...previous, ...next }
  const changed = RETENTION_KINDS.some((k) => retention[k] !== previous[k])
  if (!changed) return { ...wsInfo(ws), previous_retention: previous, changed }
  const at = ctx.now()
  await ctx.c.workspaces.updateOne({ _id: ws._id }, { $set: { retention, updated_at: at } })
  await ctx.audit(actor, 'workspace.set_retention', { workspace_id: ws._id, slug: ws.slug, retention, previous })
  return { ...wsInfo({ ...ws, retention, updated_at: at }), previous_retention: previous, changed }
}
