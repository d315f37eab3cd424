// `session delete` and `workspace purge` (deletion/admin.ts). They are the CLI's only use of
// object storage, so the S3 client is made (and its module loaded) only here.
import type { DeletionCounts } from '../deletion/batches.ts'
import { CliError } from './errors.ts'
import { option, print, unconfirmed, type CommandContext, type CommandHandlers } from './io.ts'

async function deletionAdmin(cx: CommandContext) {
  if (!cx.s3)
    throw new CliError(
      's3_unconfigured',
      'deleting needs object storage: set S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY (a key that may delete)',
    )
  const [{ createS3 }, { createDeletionAdmin }] = await Promise.all([import('../shared/s3.ts'), import('../deletion/admin.ts')])
  return createDeletionAdmin({ ...cx.tokenAdminDeps, s3: createS3(cx.s3), bucket: cx.s3.bucket, batchSize: cx.deletionBatchSize })
}

/** "3 test_sessions, 12 test_session_logs, …; 4 objects (9.1 MB)". */
export function removedLine(c: DeletionCounts): string {
  const docs = Object.entries(c.removed)
    .filter(([, n]) => n > 0)
    .map(([coll, n]) => `${n} ${coll}`)
  return `${docs.length ? docs.join(', ') : 'no documents'}; ${c.objects} object(s), ${c.bytes} bytes`
}

export const deleteCommands: CommandHandlers<'session delete' | 'workspace purge'> = {
  'session delete': async (cx) => {
    const del = await deletionAdmin(cx)
    const res = await del.deleteSession(option(cx.cmd, 'workspace')!, cx.cmd.args.session!, cx.actor)
    print(cx, res, `Session ${res.session_id} of "${res.workspace}" deleted: ${removedLine(res)}.\n`)
    if (!res.tombstone_mirrored)
      cx.io.err(
        'warning: the gateways were not told (Redis did not answer): until a worker re-mirrors the tombstone (about every 30 s), a retry is answered 201 and then dropped by the worker.\n',
      )
  },
  'workspace purge': async (cx) => {
    const del = await deletionAdmin(cx)
    const res = await del.purgeWorkspace(cx.cmd.args.slug!, cx.actor)
    print(
      cx,
      res,
      `Workspace "${res.workspace}" purged and deactivated; ${res.tokens_revoked} token(s) revoked. Removed ${removedLine(res)}.\n`,
    )
    if (!res.revocation_pushed)
      return unconfirmed(cx.io, `the revocation of "${res.workspace}"'s tokens`, `npm run cli -- workspace purge ${res.workspace} --yes`)
  },
}
